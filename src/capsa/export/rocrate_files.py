"""Writing an RO-Crate: a directory with the payload extracted, or a .zip (the metadata is
built by :mod:`.rocrate`)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from .._internal.atomic import atomic_output, check_destination
from ..bundle import Bundle
from ..errors import ExistsError, IntegrityError, NotFoundError
from ._common import dumps
from .rocrate import _CHUNK, _ZIP_TIME, MANIFEST, METADATA, README, crate_metadata, readme_text

__all__ = ["check_target", "write_crate"]


def write_crate(
    bundle: Bundle,
    target: str | os.PathLike[str],
    *,
    metadata_only: bool = False,
    force: bool = False,
    progress: bool | None = None,
) -> Path:
    """Write the crate to ``target``: a directory, or a zip file when the name ends in ``.zip``.

    The payload (every bundle file and ``capsa-manifest.json``) is streamed from the bundle and
    checked against its digest; ``metadata_only`` writes ``ro-crate-metadata.json`` alone.
    A directory target must not exist or be empty unless ``force`` (then crate files in it are
    replaced, other files are left alone); a zip target is replaced only with ``force``.
    """
    doc = dumps(crate_metadata(bundle))
    out = Path(target)
    if out.name.lower().endswith(".zip"):
        _write_zip(bundle, out, doc, metadata_only=metadata_only, force=force)
    else:
        _write_dir(bundle, out, doc, metadata_only=metadata_only, force=force, progress=progress)
    return out


def check_target(target: str | os.PathLike[str], *, force: bool) -> None:
    """Raise ExistsError/NotFoundError now if :func:`write_crate` could not write ``target``."""
    out = Path(target)
    if out.name.lower().endswith(".zip"):
        check_destination(out, force=force)
        return
    if not out.parent.is_dir():
        raise NotFoundError("directory does not exist", where=str(out.parent))
    if os.path.lexists(out):
        if out.is_symlink() or not out.is_dir():
            raise ExistsError(
                "destination exists and is not a directory",
                where=str(out),
                hint="choose a new directory, or a name ending in .zip",
            )
        if not force and any(out.iterdir()):
            raise ExistsError(
                "destination directory is not empty",
                where=str(out),
                hint="use --force to write the crate into it",
            )


def _write_dir(
    bundle: Bundle,
    out: Path,
    doc: bytes,
    *,
    metadata_only: bool,
    force: bool,
    progress: bool | None,
) -> None:
    check_target(out, force=force)
    readme = readme_text(bundle)
    if out.is_dir() and any(out.iterdir()):
        # --force into a non-empty directory: replace the crate's files in place.
        if not metadata_only:
            bundle.extract(out, force=True, progress=progress)
            with atomic_output(out / MANIFEST, force=True) as f:
                f.write(bundle.manifest_bytes)
            with atomic_output(out / README, force=True) as f:
                f.write(readme)
        with atomic_output(out / METADATA, force=True) as f:
            f.write(doc)
        return
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        if not metadata_only:
            bundle.extract(tmp, progress=progress)
            (tmp / MANIFEST).write_bytes(bundle.manifest_bytes)
            (tmp / README).write_bytes(readme)
        (tmp / METADATA).write_bytes(doc)
        mask = os.umask(0)
        os.umask(mask)
        tmp.chmod(0o777 & ~mask)
        try:
            tmp.rename(out)  # replaces an empty directory, fails on a non-empty one
        except OSError as e:
            raise ExistsError(
                "destination appeared while writing",
                where=str(out),
                hint="use --force to write the crate into it",
            ) from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _zip_info(name: str, mode: int, compress: bool) -> zipfile.ZipInfo:
    zi = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    zi.external_attr = (0o100000 | mode) << 16
    zi.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    return zi


def _write_zip(bundle: Bundle, out: Path, doc: bytes, *, metadata_only: bool, force: bool) -> None:
    m = bundle.manifest
    with atomic_output(out, force=force) as f, zipfile.ZipFile(f, "w", allowZip64=True) as zf:
        zf.writestr(_zip_info(METADATA, 0o644, True), doc)
        if metadata_only:
            return
        zf.writestr(_zip_info(MANIFEST, 0o644, True), bundle.manifest_bytes)
        zf.writestr(_zip_info(README, 0o644, True), readme_text(bundle))
        for path, entry in sorted(m.files.items()):
            blob = m.blobs[entry.digest]
            compress = blob.media_type != "application/vnd.sylabs.sif"
            zi = _zip_info(path, 0o755 if entry.mode == "0755" else 0o644, compress)
            zi.file_size = blob.size
            h = hashlib.sha256()
            with (
                bundle.open_member(path) as src,
                zf.open(zi, "w", force_zip64=blob.size >= 1 << 31) as dst,
            ):
                while chunk := src.read(_CHUNK):
                    h.update(chunk)
                    dst.write(chunk)
            if f"sha256:{h.hexdigest()}" != entry.digest:
                raise IntegrityError(
                    "digest mismatch while exporting",
                    where=f"{bundle.path}: {path}",
                    expected=entry.digest,
                    found=f"sha256:{h.hexdigest()}",
                )
