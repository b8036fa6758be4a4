"""``capsa.pack``: map files to bundle paths and roles, seal them with a manifest (spec §7).

The bundle is written to a temporary file beside the output and renamed into place; signatures
are written with it (spec/signing.md). The streaming itself is in :mod:`.writer`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import stat
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

from pydantic import TypeAdapter, ValidationError

from .._internal.atomic import atomic_output
from .._internal.fs import ConfinedPath
from .._internal.progress import format_size, make_progress
from ..errors import IntegrityError, NotFoundError, UsageError
from ..format import zstdseek
from ..format.digest import format_digest
from ..format.layout import MANIFEST_ENTRY, MIMETYPE, MIMETYPE_ENTRY
from ..format.manifest import (
    FORMAT_VERSION,
    MAX_MANIFEST,
    Author,
    BundleMeta,
    FileEntry,
    Identifier,
    Manifest,
    Role,
    Step,
    encode_manifest,
)
from ..format.names import LogicalPath, explain, file_dir_conflict
from ..signing.envelopes import envelope_for, signature_entry
from ..signing.keys import PrivateKey
from .external import Externals
from .writer import _Packer

ROLES: tuple[str, ...] = get_args(Role)

__all__ = ["ROLES", "PackResult", "collect_paths", "created_timestamp", "pack"]


@dataclass(frozen=True)
class PackResult:
    path: Path
    manifest: Manifest
    bundle_id: str
    size: int


class _Roles:
    """``roles`` (glob, role) pairs, first match wins, looked up without trying every glob on
    every file: ``pack --from-journal`` gives one escaped literal path per file, and 10,000
    files times 10,000 fnmatch calls took minutes."""

    _ESCAPE = re.compile(r"\[([*?[])\]")

    def __init__(self, roles: Sequence[tuple[str, str]]) -> None:
        self.literal: dict[str, tuple[int, str]] = {}
        self.globs: list[tuple[int, str, str]] = []
        for i, (pattern, role) in enumerate(roles):
            plain = self._ESCAPE.sub("", pattern)
            if any(c in plain for c in "*?["):
                self.globs.append((i, pattern, role))
            else:
                self.literal.setdefault(self._ESCAPE.sub(r"\1", pattern), (i, role))

    def role_for(self, logical: str, default: str) -> str:
        found = self.literal.get(logical)
        for i, pattern, role in self.globs:
            if found is not None and found[0] < i:
                break
            if fnmatch.fnmatchcase(logical, pattern):
                return role
        return found[1] if found is not None else default


def _role_for(logical: str, roles: Sequence[tuple[str, str]] | _Roles, default: str) -> str:
    table = roles if isinstance(roles, _Roles) else _Roles(roles)
    return table.role_for(logical, default)


def collect_paths(paths: Iterable[str | os.PathLike[str]]) -> dict[str, Path]:
    """Map logical bundle paths to files: a file by its name, a directory's files under its name."""
    out: dict[str, Path] = {}

    def add(logical: str, p: Path) -> None:
        if logical in out:
            raise UsageError(
                f"two inputs map to the same bundle path {logical!r}",
                where=str(p),
                hint="rename one or pack from a common parent directory",
            )
        out[logical] = p

    for item in paths:
        p = Path(item)
        try:
            st = p.stat()
        except FileNotFoundError:
            raise NotFoundError("no such file or directory", where=str(p)) from None
        if stat.S_ISREG(st.st_mode):
            add(p.resolve().name if p.name in ("", ".", "..") else p.name, p)
        elif stat.S_ISDIR(st.st_mode):
            base = p.resolve().name
            for root, dirs, files in os.walk(p):
                rootp = Path(root)
                for d in dirs:
                    if (rootp / d).is_symlink():
                        raise UsageError(
                            "symbolic link to a directory is not followed",
                            where=str(rootp / d),
                            hint="name its target explicitly",
                        )
                dirs.sort()
                for name in sorted(files):
                    fp = rootp / name
                    if fp.is_symlink():
                        raise UsageError(
                            "symbolic link is not followed",
                            where=str(fp),
                            hint="name its target explicitly",
                        )
                    if not fp.is_file():
                        raise UsageError("not a regular file", where=str(fp))
                    rel = fp.relative_to(p).as_posix()
                    add(f"{base}/{rel}" if base else rel, fp)
        else:
            raise UsageError("not a regular file or directory", where=str(p))
    return out


_LOGICAL_PATH: TypeAdapter[str] = TypeAdapter(LogicalPath)


def _check_logical_paths(logicals: Sequence[str]) -> None:
    """Refuse, before anything is written, paths the manifest would reject (spec §2, §7.4)."""
    for logical in logicals:
        try:
            _LOGICAL_PATH.validate_python(logical)
        except ValidationError as e:
            raise UsageError(
                f"not a valid bundle path: {explain(e.errors()[0])}",
                where=repr(logical),
                hint="bundle paths are UTF-8 (spec/format.md §2); rename the file",
            ) from None
    conflict = file_dir_conflict(logicals)
    if conflict is not None:
        raise UsageError(f"bundle path {conflict!r} is both a file and a directory")


def _file_entry_size(logical: str, role: str) -> int:
    """Bytes a file adds to the manifest at least (its ``files`` entry, spec §7.4, §8)."""
    key = json.dumps(logical, ensure_ascii=False).encode()
    return len(key) + len(f':{{"digest":"sha256:{"0" * 64}","mode":"0644","role":"{role}"}},')


def _check_manifest_size(size: int, *, early: bool) -> None:
    """A writer never writes a manifest a reader refuses (spec §3.5)."""
    if size <= MAX_MANIFEST:
        return
    what = "the file list alone makes" if early else "it makes"
    raise UsageError(
        f"too many files for one bundle: {what} a manifest of {format_size(size)}, more than the "
        f"{format_size(MAX_MANIFEST)} a reader accepts (spec/format.md §3.5)",
        hint="split the analysis into several bundles (about 500 000 files each at most)",
    )


def _same_file(p: Path, st: os.stat_result) -> bool:
    try:
        other = p.stat()
    except OSError:
        return False
    return (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino)


def created_timestamp(created: str | None) -> str | None:
    """``created`` if given, else SOURCE_DATE_EPOCH as UTC, else None: never the clock."""
    if created is not None:
        return created
    sde = os.environ.get("SOURCE_DATE_EPOCH")
    if sde:
        try:
            return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(sde)))
        except (ValueError, OverflowError) as e:
            raise UsageError(f"SOURCE_DATE_EPOCH is not an integer: {sde!r}") from e
    return None


def _meta(
    title: str,
    description: str,
    authors: Sequence[str | Author],
    license: str | None,
    identifiers: Sequence[tuple[str, str]],
    created: str | None,
    publisher: str | None = None,
) -> BundleMeta:
    return BundleMeta(
        publisher=publisher,
        title=title,
        description=description,
        authors=tuple(a if isinstance(a, Author) else Author(name=a) for a in authors),
        license=license,
        identifiers=tuple(Identifier(scheme=s, value=v) for s, v in identifiers),
        created=created,
    )


def pack(
    output: str | os.PathLike[str],
    paths: Iterable[str | os.PathLike[str]] | None = None,
    *,
    files: dict[str, str | os.PathLike[str] | ConfinedPath] | None = None,
    title: str = "",
    description: str = "",
    authors: Sequence[str | Author] = (),
    license: str | None = None,
    identifiers: Sequence[tuple[str, str]] = (),
    created: str | None = None,
    publisher: str | None = None,
    roles: Sequence[tuple[str, str]] = (),
    default_role: str = "other",
    steps: Sequence[Step] = (),
    sign: Sequence[PrivateKey] = (),
    expected: dict[str, str] | None = None,
    level: int = zstdseek.LEVEL,
    force: bool = False,
    progress: bool | None = None,
    external: Sequence[tuple[str, str]] = (),
) -> PackResult:
    """Pack files and directories into a bundle at ``output`` (spec/format.md).

    ``paths`` are mapped to bundle paths by :func:`collect_paths`; ``files`` maps bundle paths to
    files explicitly. ``authors`` are names or :class:`Author` (ORCID, affiliation);
    ``publisher`` the publishing organisation. ``roles`` is a list of (glob over bundle paths,
    role), first match wins.
    Each key in ``sign`` adds a signature over the manifest (spec/signing.md). ``expected`` maps
    bundle paths to the digests they must have (recorded steps): a file that changed since is
    refused with IntegrityError while it is packed, so nothing is hashed twice.
    The bundle is written to a temporary file beside ``output`` and renamed into place; an
    existing ``output`` is only replaced with ``force``. ``external`` (glob, URL prefix) pairs
    record matching bundle paths by reference (bundle/external.py, spec §5.4).
    """
    mapping: dict[str, Path | ConfinedPath] = dict(collect_paths(paths or []))
    if os.path.exists(output):
        # Packing the directory that holds the old bundle must not pack the old bundle.
        out_stat = os.stat(output)
        mapping = {
            k: p
            for k, p in mapping.items()
            if isinstance(p, ConfinedPath) or not _same_file(p, out_stat)
        }
    for logical, p in (files or {}).items():
        if logical in mapping:
            raise UsageError(f"bundle path {logical!r} given twice")
        mapping[logical] = p if isinstance(p, ConfinedPath) else Path(p)
    if not mapping:
        raise UsageError("nothing to pack", hint="name at least one file or directory")
    for _, role in roles:
        if role not in ROLES:
            raise UsageError(f"unknown role {role!r}", hint=f"use one of {', '.join(ROLES)}")
    if default_role not in ROLES:
        raise UsageError(f"unknown role {default_role!r}", hint=f"use one of {', '.join(ROLES)}")
    try:
        meta = _meta(
            title,
            description,
            authors,
            license,
            identifiers,
            created_timestamp(created),
            publisher,
        )
    except ValidationError as e:
        raise UsageError(f"invalid bundle metadata: {e.errors()[0]['msg']}") from e
    ordered = sorted(mapping.items(), key=lambda kv: kv[0].encode())
    _check_logical_paths(list(mapping))
    role_table = _Roles(roles)
    _check_manifest_size(
        sum(_file_entry_size(k, _role_for(k, role_table, default_role)) for k in mapping),
        early=True,
    )
    total = 0
    for _, p in ordered:
        try:
            total += os.stat(p.root / p.rel if isinstance(p, ConfinedPath) else p).st_size
        except FileNotFoundError as e:
            raise NotFoundError(f"cannot read: {e.strerror}", where=str(p)) from e
    bar = make_progress("pack", total, progress)
    entries: dict[str, FileEntry] = {}
    ext = Externals(external)
    with atomic_output(output, force=force) as out:
        packer = _Packer(out, level, bar)
        try:
            packer.zip.add_bytes(MIMETYPE_ENTRY, MIMETYPE)
            for logical, p in ordered:
                try:
                    urls = ext.urls_for(logical)
                    if urls:
                        digest, st_mode = ext.add(p, logical, urls)
                    else:
                        digest, _, st_mode = packer.add_file(p, logical)
                    mode = "0755" if st_mode & 0o111 else "0644"
                except FileNotFoundError as e:
                    # Only a vanished input is "not found"; any other OSError (permission denied,
                    # disk full while writing the bundle) stays an I/O error (exit 10).
                    raise NotFoundError(f"cannot read: {e.strerror}", where=str(p)) from e
                want = (expected or {}).get(logical)
                if want is not None and want != digest:
                    raise IntegrityError(
                        f"{logical} changed since it was recorded",
                        where=str(p),
                        expected=want,
                        found=digest,
                        hint="re-run the step that made it",
                    )
                entries[logical] = FileEntry(
                    digest=digest,
                    role=_role_for(logical, role_table, default_role),  # type: ignore[arg-type]
                    mode=mode,  # type: ignore[arg-type]
                )
            manifest = Manifest(
                capsa=FORMAT_VERSION,
                bundle=meta,
                blobs=dict(sorted({**ext.blobs, **packer.blobs}.items())),
                files=entries,
                steps=tuple(steps),
            )
            data = encode_manifest(manifest)
            _check_manifest_size(len(data), early=False)
            packer.zip.add_bytes(MANIFEST_ENTRY, data)
            signers = {signature_entry(k.keyid): k for k in sign}  # one slot per key
            for name, key in sorted(signers.items()):
                packer.zip.add_bytes(name, envelope_for(data, key))
            packer.zip.close()
            packer.wait_synced()
        finally:
            packer.close()
            bar.close()
        size = out.tell()
    return PackResult(Path(output), manifest, format_digest(hashlib.sha256(data).hexdigest()), size)
