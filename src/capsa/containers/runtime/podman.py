"""podman runtime: the same unpacked root file system as bwrap, run by ``podman run --rootfs``,
so one bundle can be replayed under two independent runtimes.

The isolation contract of spec/recording.md §1: the root read-only, fresh /tmp, /home and $HOME,
the work directory bound read-write, no network, hostname ``capsa``, no host environment
(``--unsetenv-all``: podman's own defaults dropped, but for HOSTNAME=capsa), the invoking
user with no capabilities (``--userns host`` as root, ``keep-id`` rootless), no new privileges;
the caller's resource limits are kept (podman would otherwise raise them). Containers are
removed (``--rm``, and by name after a timeout). runc is used when installed: crun refuses
hybrid cgroup hierarchies.
"""

from __future__ import annotations

import os
import resource
import secrets
import shutil
import subprocess
from pathlib import Path

from ...errors import RuntimeError_
from ._proc import run_captured
from .base import CONTAINER_HOME, RunResult, RunSpec
from .cache import ImageCache
from .unpacked import check_command, make_mount_points, unpack

__all__ = ["PodmanRuntime"]

_HOST_VARS = ("PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "XDG_RUNTIME_DIR", "CONTAINERS_CONF")
INSTALL_HINT = "Debian: apt-get install podman runc"


def _limit(kind: int, name: str) -> list[str]:
    soft, hard = resource.getrlimit(kind)
    if kind == resource.RLIMIT_NPROC:
        # Never more processes than pids exist; some kernels refuse a larger limit.
        try:
            pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
        except (OSError, ValueError):
            pid_max = 1 << 22
        soft, hard = (min(v if v >= 0 else pid_max, pid_max) for v in (soft, hard))
    if soft < 0 or hard < 0:
        return []  # unlimited: podman's own default is no lower than the caller's
    return ["--ulimit", f"{name}={soft}:{hard}"]


class PodmanRuntime:
    name = "podman"

    def __init__(self, cache: ImageCache | None = None) -> None:
        self.cache = cache or ImageCache()
        self._version: str | None = None

    def _podman(self) -> str:
        path = shutil.which("podman")
        if path is None:
            raise RuntimeError_("podman is not installed", hint=INSTALL_HINT)
        return path

    def version(self) -> str:
        if self._version is None:
            out = subprocess.run([self._podman(), "--version"], capture_output=True, text=True)
            words = out.stdout.strip().split()
            self._version = words[-1] if words else "unknown"
        return self._version

    def needs_file(self) -> bool:
        return False

    def prepare(self, spec: RunSpec) -> tuple[Path, dict[str, str]]:
        if spec.image is None or spec.image_digest is None:
            raise RuntimeError_(
                f"{self.name} cannot run a step without an image",
                hint="record it with --runtime bwrap (it runs on the host's software, read-only)",
            )
        return unpack(self.cache, spec)

    def command(self, spec: RunSpec, rootfs: Path, env: dict[str, str], name: str) -> list[str]:
        cmd = [self._podman()]
        if shutil.which("runc"):
            cmd += ["--runtime", "runc"]
        root = os.geteuid() == 0
        cmd += [
            "run",
            "--rm",
            "--name",
            name,
            "--network",
            "host" if spec.network else "none",
            "--hostname",
            "capsa",
            "--read-only",
            "--read-only-tmpfs=false",
            "--no-hosts",
            "--tmpfs",
            "/tmp:rw,mode=755,notmpcopyup",
            "--tmpfs",
            "/home:rw,mode=755,notmpcopyup",
            "--tmpfs",
            f"{CONTAINER_HOME}:rw,mode=755,notmpcopyup",
            "--userns",
            "host" if root else "keep-id",
            "--user",
            f"{os.getuid()}:{os.getgid()}",
            "--cap-drop",
            "all",
            "--security-opt",
            "no-new-privileges",
            "--security-opt",
            "label=disable",
            "--pids-limit",
            "-1",
            *_limit(resource.RLIMIT_NOFILE, "nofile"),
            *_limit(resource.RLIMIT_NPROC, "nproc"),
            "--log-driver",
            "none",
            "--unsetenv-all",
            "--volume",
            _work_volume(spec),
        ]
        for b in spec.binds:
            cmd += ["--volume", f"{b.source}:{b.target}:{'ro' if b.readonly else 'rw'}"]
        for hidden in spec.hide:
            cmd += ["--tmpfs", f"{hidden}:ro,notmpcopyup"]
        cmd += ["--workdir", spec.workdir]
        for k, v in sorted(env.items()):
            cmd += ["--env", f"{k}={v}"]
        # ":O": podman's mount points go to an overlay of its own, the shared cache stays as
        # unpacked (bwrap sees exactly the same tree).
        return [*cmd, "--rootfs", f"{rootfs}:O", *spec.argv]

    def run(self, spec: RunSpec, stdout: Path, stderr: Path, *, echo: bool = False) -> RunResult:
        rootfs, env = self.prepare(spec)
        check_command(rootfs, spec, env)
        make_mount_points(rootfs, [spec.workdir, *(b.target for b in spec.binds), *spec.hide])
        name = f"capsa-{secrets.token_hex(6)}"
        cmd = self.command(spec, rootfs, env, name)
        host = {k: os.environ[k] for k in _HOST_VARS if k in os.environ}
        try:
            code, timed_out = run_captured(
                cmd, host, stdout, stderr, timeout=spec.timeout, echo=echo
            )
        finally:
            # A killed podman client (timeout, Ctrl-C) leaves its container behind.
            subprocess.run(
                [self._podman(), "rm", "--force", "--ignore", "--time", "0", name],
                capture_output=True,
            )
        if code in (125, 126, 127) and not timed_out:
            _raise_for_podman_failure(stderr)
        return RunResult(code, stdout, stderr, self.name, self.version(), timed_out, cmd)


def _work_volume(spec: RunSpec) -> str:
    """The work directory; when recording, podman's own overlay volume of the project, whose
    upper layer is exactly the step's writes (spec/recording.md §3.1): capsa's overlay launcher
    would put podman in a user namespace of one id, where rootful podman cannot start."""
    ov = spec.overlay
    if ov is None:
        return f"{spec.work_bind}:{spec.workdir}:rw"
    return f"{ov.lower}:{spec.workdir}:O,upperdir={ov.upper},workdir={ov.work}"


def _raise_for_podman_failure(stderr: Path) -> None:
    """podman's own failures (not the command's) are runtime errors with a remedy."""
    try:
        tail = stderr.read_bytes()[-4096:].decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return
    last = tail[-1] if tail else ""
    if last.startswith("Error: "):
        raise RuntimeError_(
            f"podman failed: {last.removeprefix('Error: ')}",
            hint="check `podman info`; rootless podman needs subuid/subgid ranges",
        )
