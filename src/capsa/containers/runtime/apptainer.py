"""Apptainer / SingularityCE runtime, for HPC sites where it is installed.

spython builds the command line, but two of its habits are worked around: it hard-codes the
``singularity`` binary name (so the real binary is substituted), and its ``environ`` replaces
the whole process environment (so we build the complete environment ourselves, passing the step's
variables as ``APPTAINERENV_*``/``SINGULARITYENV_*``, which ``--cleanenv`` lets through). The
process is run by capsa, not spython, because spython decodes and merges stdout and stderr, and a
recorded step needs both streams byte for byte.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from ...errors import RuntimeError_
from ._proc import run_with_overlay
from .base import CONTAINER_HOME, RunResult, RunSpec
from .cache import cache_root

__all__ = ["ApptainerRuntime"]


def _empty_dir() -> Path:
    """An empty directory of the user's own, bound over paths the step must not see."""
    return cache_root() / "empty"


# Host variables the runtime binary itself may need (not passed into the container).
_HOST_VARS = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "TMPDIR",
    "XDG_RUNTIME_DIR",
    "APPTAINER_CACHEDIR",
    "APPTAINER_TMPDIR",
    "SINGULARITY_CACHEDIR",
    "SINGULARITY_TMPDIR",
)


class ApptainerRuntime:
    def __init__(self, binary: str = "apptainer") -> None:
        self.name = binary
        self._version: str | None = None

    def _binary(self) -> str:
        path = shutil.which(self.name)
        if path is None:
            raise RuntimeError_(
                f"{self.name} is not installed", hint="install it, or use --runtime bwrap"
            )
        return path

    def version(self) -> str:
        if self._version is None:
            out = subprocess.run([self._binary(), "--version"], capture_output=True, text=True)
            words = out.stdout.strip().split()
            self._version = words[-1] if words else "unknown"
        return self._version

    def command(self, spec: RunSpec) -> tuple[list[str], dict[str, str]]:
        from spython.main import Client

        cmd = Client._init_command("exec")
        cmd = [c for c in cmd if c not in ("--quiet", "--debug")]
        cmd[0] = self._binary()  # spython always says "singularity"
        binds = [f"{spec.work_bind}:{spec.workdir}"]
        binds += [f"{b.source}:{b.target}:{'ro' if b.readonly else 'rw'}" for b in spec.binds]
        binds += [f"{_empty_dir()}:{hidden}:ro" for hidden in spec.hide]
        cmd += Client._generate_bind_list(binds)
        cmd += [
            "--containall",
            "--cleanenv",
            "--home",
            CONTAINER_HOME,
            "--pwd",
            spec.workdir,
            "--hostname",
            "capsa",
        ]
        if not spec.network:
            cmd += ["--net", "--network", "none"]
        cmd += [str(spec.image), *spec.argv]
        prefix = "APPTAINERENV_" if self.name == "apptainer" else "SINGULARITYENV_"
        env = {k: os.environ[k] for k in _HOST_VARS if k in os.environ}
        env.update({prefix + k: v for k, v in spec.env.items() if k != "HOME"})
        return cmd, env

    def needs_file(self) -> bool:
        return True

    def run(self, spec: RunSpec, stdout: Path, stderr: Path, *, echo: bool = False) -> RunResult:
        if spec.hide:
            _empty_dir().mkdir(mode=0o755, parents=True, exist_ok=True)
        if spec.image is None:
            raise RuntimeError_(
                f"{self.name} cannot run a step without an image",
                hint="record it with --runtime bwrap (it runs on the host's software, read-only)",
            )
        if not isinstance(spec.image, Path):
            raise RuntimeError_(
                f"{self.name} needs the image as a file of its own",
                hint="extract it from the bundle first",
            )
        cmd, env = self.command(spec)
        code, timed_out = run_with_overlay(cmd, env, stdout, stderr, spec, echo=echo)
        return RunResult(code, stdout, stderr, self.name, self.version(), timed_out, cmd)
