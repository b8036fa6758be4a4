"""What a runtime is given and returns: the run specification, the result, the protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ...format.source import ByteSource
from .overlay import Overlay

__all__ = ["CONTAINER_HOME", "DEFAULT_PATH", "Mount", "RunResult", "RunSpec", "Runtime"]

CONTAINER_HOME = "/home/capsa"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    readonly: bool = False


@dataclass(frozen=True)
class RunSpec:
    """What to run: image file (and its digest, the cache key), command, environment, mounts."""

    image: Path | ByteSource | None
    """The SIF: a file, or a byte source holding it (an image blob read in place from a bundle,
    local or remote); a runtime that needs a file of its own asks ``image_extent``. None: the
    host's own root file system, read-only (a step recorded without an image; bwrap only)."""
    image_digest: str | None
    argv: tuple[str, ...]
    env: dict[str, str]
    workdir: str
    work_source: Path
    binds: tuple[Mount, ...] = ()
    network: bool = False
    timeout: float | None = None
    hide: tuple[str, ...] = ()
    """Container paths covered by an empty read-only directory (the journal in ``/work``)."""
    overlay: Overlay | None = None
    """Run the step on an overlay of ``work_source`` (recording): the runtime binds
    ``overlay.merged`` at ``workdir`` and is started through ``overlay.launcher()``."""

    @property
    def work_bind(self) -> Path:
        """What is bound at ``workdir``: the overlay's merged view, or the work directory."""
        return self.overlay.merged if self.overlay is not None else self.work_source

    def image_extent(self) -> tuple[Path, int] | None:
        """(file, offset) where the SIF's bytes lie in a local file, or None (remote)."""
        if self.image is None:
            return None
        if isinstance(self.image, Path):
            return self.image, 0
        return self.image.local_extent()


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
        """True when the image must be a SIF file of its own (not a range of another file)."""
        ...
