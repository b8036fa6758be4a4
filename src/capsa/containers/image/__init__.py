"""Making SIF images from where users have them (``capsa image import``): layers applied in
pure Python, squashed reproducibly by squashfs-tools-ng's ``tar2sqfs``, wrapped by capsa's SIF
writer. The same input gives the same SIF bytes."""

from __future__ import annotations

import calendar
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..._internal.atomic import atomic_output, check_destination
from ...errors import FormatError, RuntimeError_, UsageError
from ..sif import SifObject, arch_of_machine, write_sif
from .layers import Tree
from .metadata import image_env, install_metadata, labels_of, sbom
from .sources import TRANSPORTS, ImageSource, open_source

__all__ = [
    "COMPRESSORS",
    "TRANSPORTS",
    "ImportResult",
    "build_image",
    "image_env",
    "import_image",
    "squash",
]

COMPRESSORS = ("gzip", "zstd", "xz")
"""squashfs compressors offered; gzip is the default because every Apptainer reads it."""
_SIF_ARCHES = {"amd64", "arm64", "386", "arm", "ppc64le", "s390x", "riscv64", "mips64le"}
SBOM_CYCLONEDX_JSON = 1


@dataclass(frozen=True)
class ImportResult:
    path: str
    reference: str
    digest: str
    env: dict[str, str]
    labels: dict[str, str]
    size: int
    squashfs_size: int
    packages: int
    seconds: float


def _epoch(source: ImageSource) -> int:
    """SOURCE_DATE_EPOCH, else the image config's ``created``, else 0."""
    sde = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if sde:
        try:
            return int(sde)
        except ValueError as e:
            raise UsageError(f"SOURCE_DATE_EPOCH is not an integer: {sde!r}") from e
    created = str(source.config.get("created") or "")
    if created:
        try:
            return calendar.timegm(time.strptime(created[:19], "%Y-%m-%dT%H:%M:%S"))
        except ValueError:
            pass
    return 0


def squash(tree: Tree, dest: Path, mtime: int, compressor: str) -> None:
    """Write ``tree`` as a squashfs image with ``tar2sqfs`` (all times ``mtime``)."""
    tar2sqfs = shutil.which("tar2sqfs")
    if tar2sqfs is None:
        raise RuntimeError_(
            "tar2sqfs is not installed",
            hint="Debian: apt-get install squashfs-tools-ng",
        )
    cmd = [
        tar2sqfs,
        "--quiet",
        "--force",
        "--no-skip",
        "--compressor",
        compressor,
        # gzip's level 9 (tar2sqfs' default) takes three times as long for 0.6 % less.
        *(["--comp-extra", "level=6"] if compressor == "gzip" else []),
        "--defaults",
        f"uid=0,gid=0,mode=0755,mtime={max(mtime, 0)}",
        str(dest),
    ]
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=err, stderr=err)
        assert proc.stdin is not None
        try:
            tree.write_tar(proc.stdin, max(mtime, 0))  # type: ignore[arg-type]
            proc.stdin.close()
        except BrokenPipeError:
            pass
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        if proc.wait() != 0:
            err.seek(0)
            tail = err.read().decode("utf-8", "replace").strip().splitlines()[-1:] or ["?"]
            raise RuntimeError_(f"tar2sqfs failed: {tail[0]}")


def _json_bytes(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def _seal(
    tree: Tree,
    source: ImageSource,
    deffile: str,
    mtime: int,
    out: str | os.PathLike[str],
    *,
    force: bool,
    compressor: str,
    started: float,
) -> ImportResult:
    """Apptainer's metadata into ``tree``, then squash it and write the SIF."""
    config = source.oci_config
    labels = labels_of(config, source.reference, source.digest, source.transport)
    inspect_doc = install_metadata(tree, config, labels, deffile)
    bom = sbom(tree, source.reference, source.digest)
    with tempfile.TemporaryDirectory(prefix="capsa-image-") as tmp:
        part = Path(tmp) / "rootfs.squashfs"
        squash(tree, part, mtime, compressor)
        arch = str(source.config.get("architecture") or "")
        if arch not in _SIF_ARCHES:
            arch = arch_of_machine(platform.machine())
        objects = [
            SifObject("Deffile", deffile.encode()),
            SifObject("Labels", _json_bytes(labels), name="labels.json"),
            SifObject("GenericJSON", _json_bytes(inspect_doc), name="inspect-metadata.json"),
            SifObject("GenericJSON", _json_bytes(config), name="oci-config.json"),
            SifObject(
                "SBOM",
                _json_bytes(bom),
                name="sbom.cdx.json",
                extra=SBOM_CYCLONEDX_JSON.to_bytes(4, "little"),
            ),
            SifObject.partition(part, arch=arch, name="rootfs.squashfs"),
        ]
        with atomic_output(out, force=force) as f:
            write_sif(f, objects)
        squashfs_size = part.stat().st_size
    return ImportResult(
        os.fspath(out),
        source.reference,
        source.digest,
        image_env(config),
        labels,
        Path(out).stat().st_size,
        squashfs_size,
        len(bom["components"]),
        time.monotonic() - started,
    )


def _check_compressor(compressor: str) -> None:
    if compressor not in COMPRESSORS:
        raise UsageError(f"unknown compressor {compressor!r}", hint=f"use {', '.join(COMPRESSORS)}")


def import_image(
    src: str, out: str | os.PathLike[str], *, force: bool = False, compressor: str = "gzip"
) -> ImportResult:
    """Import image ``src`` (``TRANSPORT:LOCATION``) as the SIF file ``out``."""
    started = time.monotonic()
    _check_compressor(compressor)
    check_destination(out, force=force)
    source = open_source(src)
    try:
        with Tree() as tree:
            for name, opener in source.layers:
                with opener() as stream:
                    tree.add_layer(stream, where=f"{source.location}: layer {name}")
            if source.directory:
                tree.add_directory(source.directory)
            if not tree.nodes:
                raise FormatError("the image is empty", where=source.location)
            deffile = f"Bootstrap: {source.transport}\nFrom: {source.reference}\n"
            return _seal(
                tree,
                source,
                deffile,
                _epoch(source),
                out,
                force=force,
                compressor=compressor,
                started=started,
            )
    finally:
        source.close()


def build_image(
    recipe: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    force: bool = False,
    compressor: str = "gzip",
) -> ImportResult:
    """Build the SIF ``out`` from a recipe (``containers/image/build.py``); the recipe is the
    SIF's deffile."""
    from .build import build_rootfs, load_recipe

    started = time.monotonic()
    _check_compressor(compressor)
    check_destination(out, force=force)
    r = load_recipe(recipe)
    config = {
        "Env": [f"{k}={v}" for k, v in r.env.items()],
        "Labels": r.labels,
    }
    reference = f"debian:{r.suite} ({Path(r.path).name})"
    source = ImageSource("capsa-build", str(r.path), reference, "", {"config": config}, [])
    with Tree() as tree:
        build_rootfs(r, tree)
        return _seal(
            tree, source, r.text, r.epoch, out, force=force, compressor=compressor, started=started
        )
