"""Mount an overlay over the project, then exec the runtime (spec/recording.md §3.1).

    python -I -S _overlay_launch.py STATUS LOWER UPPER WORK MERGED -- RUNTIME ARGS...

Run as a file with the standard library only (``-I -S``: no site packages, fast start). In a new
user and mount namespace that maps the caller to itself (so files keep their owner and the
runtime runs unprivileged as before), it makes ``/`` private, mounts overlayfs
(``lowerdir=LOWER,upperdir=UPPER,workdir=WORK,userxattr``) at MERGED and execs the runtime, which
binds MERGED at /work. If the overlay cannot be set up, it writes the reason to STATUS and exits
125 before anything runs, so the caller can fall back.
"""

import ctypes
import os
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
FAILED = 125


def _escape(path: str) -> str:
    # overlayfs option syntax: a backslash before '\', ',' and ':' in a directory name.
    return path.replace("\\", "\\\\").replace(",", "\\,").replace(":", "\\:")


def _fail(status: str, why: str) -> None:
    fd = os.open(status, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, why.encode() + b"\n")
    finally:
        os.close(fd)
    if __name__ == "__main__":
        sys.exit(FAILED)
    raise OSError(why)  # in a forked child: subprocess reports it to the parent


def enter(status: str, lower: str, upper: str, work: str, merged: str) -> None:
    """In this process: a new user and mount namespace with the overlay mounted at MERGED (also
    called in a forked child just before exec: only libc calls and small writes)."""
    uid, gid = os.geteuid(), os.getegid()
    # The C library is already loaded; find_library() would fork ldconfig.
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0:
        _fail(status, f"cannot create a user namespace: {os.strerror(ctypes.get_errno())}")
    try:
        for name, text in (
            ("setgroups", "deny"),
            ("uid_map", f"{uid} {uid} 1"),
            ("gid_map", f"{gid} {gid} 1"),
        ):
            fd = os.open(f"/proc/self/{name}", os.O_WRONLY)
            try:
                os.write(fd, text.encode())
            finally:
                os.close(fd)
    except OSError as e:
        _fail(status, f"cannot map the user into the namespace: {e.strerror}")
    if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        _fail(status, f"cannot make mounts private: {os.strerror(ctypes.get_errno())}")
    opts = f"lowerdir={_escape(lower)},upperdir={_escape(upper)},workdir={_escape(work)},userxattr"
    if libc.mount(b"overlay", merged.encode(), b"overlay", 0, opts.encode()) != 0:
        _fail(status, f"cannot mount overlayfs: {os.strerror(ctypes.get_errno())}")


def main(argv: list[str]) -> None:
    status, lower, upper, work, merged, sep, *cmd = argv
    if sep != "--" or not cmd:
        _fail(status, "usage: STATUS LOWER UPPER WORK MERGED -- CMD...")
    enter(status, lower, upper, work, merged)
    try:
        os.execvp(cmd[0], cmd)
    except OSError as e:
        _fail(status, f"cannot run {cmd[0]}: {e.strerror}")


if __name__ == "__main__":
    main(sys.argv[1:])
