"""Verification levels (spec/format.md §10.2): structure, then fixity of every blob.

Every problem is collected and reported once; blobs are checked in parallel, largest first.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

from .._internal.crc import crc32
from .._internal.progress import NullProgress, make_progress
from ..errors import Error, FormatError, IntegrityError, NotFoundError, SignatureError, UsageError
from ..format import zstdseek
from ..format.digest import format_digest
from ..format.manifest import Blob
from ..signing.envelopes import SignatureCheck, check_envelope
from ..signing.keys import PublicKey
from .reader import BundleReader, crc_mismatch

__all__ = ["LEVELS", "Problem", "VerifyReport", "check_signatures", "verify_bundle"]

LEVELS = ("structure", "fixity", "full")
_READ = 4 << 20  # per job; bounds verify's memory (measured 69 MiB at 2 jobs)


@dataclass
class Problem:
    where: str
    what: str
    kind: str  # "format" | "integrity" | "signature"

    def as_error(self) -> Error:
        classes: dict[str, type[Error]] = {
            "integrity": IntegrityError,
            "signature": SignatureError,
            "external": NotFoundError,  # an external reference that cannot be reached (1.3)
        }
        return classes.get(self.kind, FormatError)(self.what, where=self.where)


@dataclass
class VerifyReport:
    bundle: str
    bundle_id: str
    level: str
    deep: bool = False
    threshold: int = 1
    """Distinct trusted keys whose valid signatures were required (when any were)."""
    blobs_checked: int = 0
    bytes_checked: int = 0
    problems: list[Problem] = field(default_factory=list)
    signatures: list[SignatureCheck] = field(default_factory=list)
    external_checked: int = 0
    """References of external blobs checked (``external``; format 1.3)."""

    @property
    def ok(self) -> bool:
        return not self.problems


def check_signatures(
    bundle: BundleReader, keys: Sequence[PublicKey], *, require: bool, threshold: int = 1
) -> tuple[list[SignatureCheck], list[Problem]]:
    """Check every signature entry against the manifest bytes and the trusted ``keys``; with
    ``require``, at least ``threshold`` distinct trusted keys must have signed validly
    (spec/signing.md §5)."""
    checks: list[SignatureCheck] = []
    problems: list[Problem] = []
    for name in bundle.signature_entries:
        where = f"{bundle.path}: {name}"
        try:
            found = check_envelope(name, bundle.read_entry(name), bundle.manifest_bytes, keys)
        except Error as e:  # the entry itself is damaged (CRC)
            found = [SignatureCheck(name, "", "malformed", False, e.what)]
        for check in found:
            checks.append(check)
            if check.status in ("invalid", "malformed"):
                what = (
                    f"malformed signature: {check.reason}"
                    if not check.keyid
                    else f"{check.status} signature ({check.keyid}): {check.reason}"
                )
                problems.append(Problem(where, what, "signature"))
    valid = {c.keyid for c in checks if c.status == "valid" and c.trusted}
    if require and len(valid) < threshold:
        if not checks:
            what = "bundle is not signed"
        elif threshold == 1:
            what = "no valid signature by a trusted key"
        else:
            missing = sorted({k.keyid for k in keys} - valid)
            what = (
                f"valid signatures by {len(valid)} of the trusted keys, {threshold} required "
                f"(not signed by {', '.join(missing)})"
            )
        problems.append(Problem(str(bundle.path), what, "signature"))
    return checks, problems


def verify_bundle(
    bundle: BundleReader,
    *,
    level: Literal["structure", "fixity", "full"] = "full",
    keys: Sequence[PublicKey] = (),
    require_signature: bool | None = None,
    jobs: int = 2,
    progress: bool | None = None,
    deep: bool = False,
    threshold: int | None = None,
    require_all: bool = False,
    external: bool = False,
    blobs: Collection[str] | None = None,
) -> VerifyReport:
    """Check ``bundle`` at ``level`` (spec/format.md §10.2, spec/signing.md §5). Signatures:
    ``threshold`` distinct trusted keys must have signed (default 1 when keys are given);
    ``require_all``: every trusted key."""
    if level not in LEVELS:
        raise UsageError(
            f"unknown verification level {level!r}", hint=f"use one of {', '.join(LEVELS)}"
        )
    needed = _threshold(keys, threshold, require_all, require_signature)
    if require_signature is None:
        require_signature = bool(keys) or needed > 1
    if require_signature and level != "full":
        raise UsageError(
            f"signatures are only checked at level full, not {level}",
            hint="drop --level or the keys",
        )
    bundle.check_local_headers()  # a remote bundle's were left for first use (reader.py)
    report = VerifyReport(str(bundle.path), bundle.id, level, deep=deep, threshold=needed)
    hashing = level in ("fixity", "full")
    # External blobs (1.3) have no entry: `external` checks their references instead.
    # ``blobs``: only those (replay of a remote bundle checks, so fetches, what its steps use).
    stored = {
        d: b
        for d, b in bundle.manifest.blobs.items()
        if b.encoding != "external" and (blobs is None or d in blobs)
    }
    work = sorted(stored.items(), key=lambda kv: -kv[1].size)
    total = sum(b.size for _, b in work) if hashing else 0
    bar = make_progress("verify", total, progress) if hashing else NullProgress()
    lock = threading.Lock()

    def check(item: tuple[str, Blob]) -> None:
        digest, blob = item
        try:
            found = _check_blob(bundle, digest, blob, level, bar, lock, deep)
        except Error as e:
            with lock:
                report.problems.append(Problem(e.where or digest, e.what, _kind(e)))
            return
        with lock:
            report.blobs_checked += 1
            report.bytes_checked += found

    try:
        with ThreadPoolExecutor(max(1, jobs)) as pool:
            list(pool.map(check, work))
    finally:
        bar.close()
    if external:
        from .external import check_external

        report.external_checked, found = check_external(bundle.manifest, deep=deep, jobs=jobs)
        for x in found:
            kind = "integrity" if x.integrity else "external"
            report.problems.append(Problem(f"{bundle.path}: {x.path} ({x.url})", x.what, kind))
    if level == "full":
        report.signatures, problems = check_signatures(
            bundle, keys, require=require_signature, threshold=needed
        )
        report.problems.extend(problems)
    report.problems.sort(key=lambda p: p.where)
    return report


def _threshold(
    keys: Sequence[PublicKey], threshold: int | None, require_all: bool, require: bool | None
) -> int:
    """How many distinct trusted keys must have signed (spec/signing.md §5)."""
    distinct = len({k.keyid for k in keys})
    if require_all and threshold is not None:
        raise UsageError("--require-all and --threshold exclude each other")
    if require_all or threshold is not None:
        if require is False:
            raise UsageError(
                "--require-all and --threshold check signatures", hint="drop --no-require-signature"
            )
        needed = distinct if require_all else int(threshold or 0)
        if not 1 <= needed <= distinct:
            raise UsageError(
                f"a threshold of {needed} needs between 1 and {distinct} trusted keys"
                if not require_all
                else "--require-all needs at least one trusted key",
                hint="give the keys with --key or --trusted-keys",
            )
        return needed
    return 1


def _kind(e: Error) -> str:
    return "integrity" if isinstance(e, IntegrityError) else "format"


def _hash_stored(
    bundle: BundleReader,
    entry_offset: int,
    size: int,
    bar: NullProgress,
    lock: threading.Lock,
    *,
    progress: bool = True,
) -> tuple[str, int]:
    """SHA-256 and CRC-32 of ``size`` stored bytes, read once."""
    sha = hashlib.sha256()
    crc = 0
    done = 0
    while done < size:
        chunk = bundle.read_at(entry_offset + done, min(_READ, size - done))
        sha.update(chunk)
        crc = crc32(chunk, crc)
        done += len(chunk)
        if progress:
            with lock:
                bar.update(len(chunk))
    return format_digest(sha.hexdigest()), crc


def _check_blob(
    bundle: BundleReader,
    digest: str,
    blob: Blob,
    level: str,
    bar: NullProgress,
    lock: threading.Lock,
    deep: bool,
) -> int:
    """Fixity of one blob; returns the number of content bytes it covers (spec §10.2).

    An identity blob's stored bytes are its content. A zstd-seekable blob is checked by the
    SHA-256 of its stored bytes (signed in the manifest) unless ``deep`` or the bundle predates
    format 1.1; then every frame is decompressed and the content digest computed. Either way
    every stored byte is read once, and its CRC-32 is checked against the ZIP headers' (§3.1).
    """
    _, entry = bundle.blob_entry(digest)
    where = f"blob {digest}"
    index = bundle.seek_index(blob, entry, where) if blob.encoding == "zstd-seekable" else None
    if level == "structure":
        return 0
    if index is None or (blob.stored_digest is not None and not deep):
        expected = digest if index is None else blob.stored_digest
        found, crc = _hash_stored(
            bundle, entry.data_offset, entry.size, bar, lock, progress=index is None
        )
        if index is not None:
            with lock:
                bar.update(blob.size)
        if found != expected:
            what = "digest mismatch" if index is None else "digest mismatch (stored bytes)"
            raise IntegrityError(what, where=where, expected=expected, found=found)
        if crc != entry.crc:
            raise crc_mismatch(where)
        return blob.size
    sha = hashlib.sha256()
    crc = 0
    done = 0
    dctx = zstdseek.new_decompressor()
    i = 0
    while i < index.frames:
        # Read as many whole frames as fit in one read, then decompress them one by one.
        j = i + 1
        while j < index.frames and index.comp[j + 1] - index.comp[i] <= _READ:
            j += 1
        base = index.comp[i]
        raw = bundle.read_at(entry.data_offset + base, index.comp[j] - base)
        crc = crc32(raw, crc)
        view = memoryview(raw)
        for k in range(i, j):
            frame = view[index.comp[k] - base : index.comp[k + 1] - base]
            data = zstdseek.decompress_frame(
                dctx,
                frame,
                index.decomp[k + 1] - index.decomp[k],
                index.checksums[k],
                where=f"{where} frame {k}",
            )
            sha.update(data)
            done += len(data)
            with lock:
                bar.update(len(data))
        i = j
    found = format_digest(sha.hexdigest())
    if found != digest:
        raise IntegrityError("digest mismatch", where=where, expected=digest, found=found)
    table = index.comp[-1]
    crc = crc32(bundle.read_at(entry.data_offset + table, entry.size - table), crc)
    if crc != entry.crc:
        raise crc_mismatch(where)
    return done
