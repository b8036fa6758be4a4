"""What the runtimes that run an unpacked root file system (bwrap, podman) share: the image's
own environment, mount points on the read-only root, and the check that the command exists."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from ..._internal.fs import open_dir, open_root
from ...errors import Error, RuntimeError_
from ..sif import SifImage, open_sif
from .base import RunSpec
from .cache import ImageCache

__all__ = ["check_command", "image_env", "make_mount_points", "step_env", "unpack"]

_OCI_CONFIG = "oci-config.json"
_MAX_CONFIG = 1 << 20


def image_env(img: SifImage) -> dict[str, str]:
    """The image's environment: ``Env`` of its ``oci-config.json`` object (what Apptainer and
    ``capsa image import`` store for an image made from an OCI image); {} when there is none."""
    for d in img.of_type("GenericJSON"):
        if d.name != _OCI_CONFIG or d.size > _MAX_CONFIG:
            continue
        try:
            doc = json.loads(img.read_object(d, limit=_MAX_CONFIG))
        except (Error, ValueError, UnicodeDecodeError):
            return {}
        env: dict[str, str] = {}
        for item in (doc.get("Env") if isinstance(doc, dict) else None) or []:
            if isinstance(item, str) and "=" in item:
                key, _, value = item.partition("=")
                env[key] = value
        return env
    return {}


def step_env(img: SifImage, spec: RunSpec) -> dict[str, str]:
    """The image's environment, then the step's over it: what ``apptainer exec --cleanenv``
    gives a step whose variables come as ``APPTAINERENV_*`` (spec/recording.md §1)."""
    return {**image_env(img), **spec.env}


def unpack(cache: ImageCache, spec: RunSpec) -> tuple[Path, dict[str, str]]:
    """The image's unpacked root file system (from the cache) and the environment to run in:
    the image's, then the step's."""
    if spec.image is None or spec.image_digest is None:
        raise RuntimeError_("a step without an image has no root file system to unpack")
    img, close = open_sif(spec.image)
    try:
        root = cache.rootfs(img, spec.image_digest, extent=spec.image_extent())
        return root, step_env(img, spec)
    finally:
        close()


def make_mount_points(rootfs: Path, targets: list[str]) -> None:
    """Create mount points on the (read-only when mounted) unpacked root, confined to it: an
    image may hold links that point out of it."""
    for target in targets:
        with contextlib.suppress(OSError):
            root_fd = open_root(rootfs)
            try:
                os.close(open_dir(root_fd, target.strip("/").split("/"), create=True))
            finally:
                os.close(root_fd)


def check_command(rootfs: Path, spec: RunSpec, env: dict[str, str]) -> None:
    """Refuse a command the image does not have before starting it (one clear line)."""
    prog = spec.argv[0]
    if "/" in prog:
        if not prog.startswith("/") or os.path.lexists(rootfs / prog.lstrip("/")):
            return  # relative to the work directory, or present: let the runtime decide
    elif any(
        os.path.lexists(rootfs / d.lstrip("/") / prog)
        for d in env.get("PATH", "/usr/bin:/bin").split(":")
        if d
    ):
        return
    raise RuntimeError_(
        f"command not found in the image: {prog}",
        where=str(spec.image or "the host"),
        hint="check the command name, the image and PATH",
    )
