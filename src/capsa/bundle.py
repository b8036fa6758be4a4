"""Reading bundles: open and cross-check, list members, random access, extract, verify.

Reading trusts nothing (spec/format.md §10): the container, entry names and order, the manifest
and its agreement with the entries are checked on open; seek tables when a blob is first read;
digests by `verify` and while extracting.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from . import zstdseek
from ._layout import MANIFEST_ENTRY, MIMETYPE, ORDER, blob_entry, classify
from ._zip import ZipEntry, read_directory
from .digest import format_digest, parse_digest
from .errors import Error, FormatError, IntegrityError, NotFoundError, SignatureError
from .manifest import Blob, Manifest, parse_manifest

if TYPE_CHECKING:
    from .keys import PublicKey
    from .signing import SignatureCheck

__all__ = ["Bundle", "Member", "MemberFile", "open_bundle"]

_SMALL_ENTRY = 64 << 20
_CACHE_FRAMES = 4


@dataclass(frozen=True)
class Member:
    """A logical file in a bundle, as `capsa ls` shows it."""

    path: str
    digest: str
    role: str
    size: int
    stored_size: int
    encoding: str
    media_type: str
    mode: str


class Bundle:
    """An open bundle. Use :func:`capsa.open`; close it (or use ``with``) when done."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise NotFoundError("no such bundle", where=str(self.path)) from None
        except IsADirectoryError:
            raise FormatError("is a directory, not a bundle", where=str(self.path)) from None
        try:
            self._load()
        except Error as e:
            os.close(self._fd)
            if e.where is None:
                e.where = str(self.path)
            elif not e.where.startswith(str(self.path)):
                e.where = f"{self.path}: {e.where}"
            raise
        except BaseException:
            os.close(self._fd)
            raise

    def _load(self) -> None:
        st = os.fstat(self._fd)
        if not stat.S_ISREG(st.st_mode):
            raise FormatError("not a regular file")
        self.file_size = st.st_size
        head = os.pread(self._fd, 38 + len(MIMETYPE), 0)
        if head[:4] != b"PK\x03\x04" or head[30:38] != b"mimetype" or head[38:] != MIMETYPE:
            raise FormatError(
                "not a capsa bundle: bad magic (no 'mimetype' entry first)",
                hint="is this the right file?",
            )
        self.entries: list[ZipEntry] = read_directory(self._fd, self.file_size)
        self._by_name = {e.name: e for e in self.entries}
        last = -1
        for e in self.entries:
            kind = classify(e.name)
            if kind == "unknown":
                raise FormatError(
                    "unknown entry name (path traversal or foreign file?)",
                    where=f"entry {e.name!r}",
                )
            if ORDER[kind] < last or (kind in ("mimetype", "manifest") and ORDER[kind] == last):
                raise FormatError("entry out of order", where=f"entry {e.name!r}")
            last = ORDER[kind]
        if self.entries[0].name != "mimetype":
            raise FormatError("not a capsa bundle: 'mimetype' is not the first entry")
        if self._read_small(self.entries[0]) != MIMETYPE:
            raise FormatError("mimetype entry has unexpected content")
        man = self._by_name.get(MANIFEST_ENTRY)
        if man is None:
            raise FormatError("no manifest.json entry")
        self.manifest_bytes: bytes = self._read_small(man)
        self.manifest: Manifest = parse_manifest(self.manifest_bytes)
        self.id = format_digest(hashlib.sha256(self.manifest_bytes).hexdigest())
        self.signature_entries = [e.name for e in self.entries if classify(e.name) == "signature"]
        wanted = {
            blob_entry(parse_digest(d), b.encoding): (d, b) for d, b in self.manifest.blobs.items()
        }
        for e in self.entries:
            if classify(e.name) != "blob":
                continue
            if e.name not in wanted:
                raise FormatError(
                    "blob entry not listed in the manifest (or listed with another encoding)",
                    where=f"entry {e.name!r}",
                )
            _, b = wanted.pop(e.name)
            if e.size != b.stored_size:
                raise IntegrityError(
                    "declared size lie: stored size differs from the manifest",
                    where=f"entry {e.name!r}",
                    expected=str(b.stored_size),
                    found=str(e.size),
                )
            if b.encoding == "identity" and b.size != b.stored_size:
                raise IntegrityError(
                    "declared size lie: identity blob with size != stored size",
                    where=f"entry {e.name!r}",
                )
        if wanted:
            missing = next(iter(wanted))
            raise FormatError(
                "blob listed in the manifest has no entry", where=f"entry {missing!r}"
            )

    def _read_small(self, e: ZipEntry) -> bytes:
        if e.size > _SMALL_ENTRY:
            raise FormatError(f"entry larger than {_SMALL_ENTRY} bytes", where=f"entry {e.name!r}")
        data = os.pread(self._fd, e.size, e.data_offset)
        if zlib.crc32(data) != e.crc:
            raise IntegrityError("CRC-32 mismatch", where=f"entry {e.name!r}")
        return data

    def read_entry(self, name: str) -> bytes:
        """Raw bytes of a small entry (manifest, signature), CRC-checked."""
        e = self._by_name.get(name)
        if e is None:
            raise NotFoundError("no such entry", where=f"{self.path}: {name}")
        return self._read_small(e)

    # -- members ------------------------------------------------------------------------------
    def members(self) -> list[Member]:
        out = []
        for path, f in sorted(self.manifest.files.items()):
            b = self.manifest.blobs[f.digest]
            out.append(
                Member(
                    path, f.digest, f.role, b.size, b.stored_size, b.encoding, b.media_type, f.mode
                )
            )
        return out

    def blob_entry(self, digest: str) -> tuple[Blob, ZipEntry]:
        b = self.manifest.blobs.get(digest)
        if b is None:
            raise NotFoundError("no such blob", where=f"{self.path}: {digest}")
        return b, self._by_name[blob_entry(parse_digest(digest), b.encoding)]

    def open_blob(self, digest: str) -> MemberFile:
        blob, entry = self.blob_entry(digest)
        return MemberFile(self, blob, entry, where=f"{self.path}: {digest}")

    def open_member(self, path: str) -> MemberFile:
        """A seekable, read-only binary file over a member's uncompressed bytes."""
        f = self.manifest.files.get(path)
        if f is None:
            raise NotFoundError(
                "no such member", where=f"{self.path}: {path}", hint="`capsa ls` lists the members"
            )
        blob, entry = self.blob_entry(f.digest)
        return MemberFile(self, blob, entry, where=f"{self.path}: {path}")

    def seek_index(self, blob: Blob, entry: ZipEntry, where: str) -> zstdseek.SeekIndex:
        def read_at(off: int, n: int) -> bytes:
            return self._pread(entry.data_offset + off, n)

        return zstdseek.parse_seek_table(read_at, entry.size, blob.size, where=where)

    def _pread(self, offset: int, n: int) -> bytes:
        data = os.pread(self._fd, n, offset)
        if len(data) != n:
            raise FormatError("bundle truncated while reading", where=str(self.path))
        return data

    # -- lifecycle ----------------------------------------------------------------------------
    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Bundle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # verify and extract live in their own modules; these are the public entry points.
    def verify(
        self,
        level: Literal["structure", "fixity", "full"] = "full",
        *,
        keys: Sequence[PublicKey] = (),
        require_signature: bool | None = None,
        jobs: int = 2,
        progress: bool | None = None,
        deep: bool = False,
    ) -> VerifyReport:
        """Check the bundle at ``level`` (spec/format.md §10.2, spec/signing.md §5).

        ``require_signature`` defaults to True when ``keys`` are given; ``deep`` decompresses
        every zstd-seekable blob and checks its content digest too.
        """
        from .verify import verify_bundle

        return verify_bundle(
            self,
            level=level,
            keys=keys,
            require_signature=require_signature,
            jobs=jobs,
            progress=progress,
            deep=deep,
        )

    def extract(
        self,
        dest: str | os.PathLike[str],
        paths: list[str] | None = None,
        *,
        force: bool = False,
        progress: bool | None = None,
    ) -> list[Path]:
        from .extract import extract_bundle

        return extract_bundle(self, dest, paths, force=force, progress=progress)


@dataclass
class Problem:
    where: str
    what: str
    kind: str  # "format" | "integrity" | "signature"

    def as_error(self) -> Error:
        classes: dict[str, type[Error]] = {"integrity": IntegrityError, "signature": SignatureError}
        return classes.get(self.kind, FormatError)(self.what, where=self.where)


@dataclass
class VerifyReport:
    bundle: str
    bundle_id: str
    level: str
    blobs_checked: int = 0
    bytes_checked: int = 0
    problems: list[Problem] = field(default_factory=list)
    signatures: list[SignatureCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class MemberFile(io.RawIOBase):
    """Random access to one blob: identity blobs by offset, zstd blobs frame by frame.

    Only the frames a read touches are read and decompressed (a few are cached), so
    ``h5py.File(bundle.open_member("x.h5"))`` reads a dataset without inflating the file.
    """

    def __init__(self, bundle: Bundle, blob: Blob, entry: ZipEntry, *, where: str) -> None:
        super().__init__()
        self._bundle = bundle
        self._entry = entry
        self._size = blob.size
        self._where = where
        self._pos = 0
        self._index: zstdseek.SeekIndex | None = None
        if blob.encoding == "zstd-seekable":
            self._index = bundle.seek_index(blob, entry, where)
            self._dctx = zstdseek.new_decompressor()
            self._cache: OrderedDict[int, bytes] = OrderedDict()

    @property
    def size(self) -> int:
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self._size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise ValueError("negative seek position")
        self._pos = pos
        return pos

    def _frame(self, i: int) -> bytes:
        data = self._cache.get(i)
        if data is not None:
            self._cache.move_to_end(i)
            return data
        idx = self._index
        assert idx is not None
        c0, c1 = idx.comp[i], idx.comp[i + 1]
        raw = self._bundle._pread(self._entry.data_offset + c0, c1 - c0)
        data = zstdseek.decompress_frame(
            self._dctx,
            raw,
            idx.decomp[i + 1] - idx.decomp[i],
            idx.checksums[i],
            where=f"{self._where} frame {i}",
        )
        self._cache[i] = data
        if len(self._cache) > _CACHE_FRAMES:
            self._cache.popitem(last=False)
        return data

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        if self.closed:
            raise ValueError("I/O operation on closed file")
        view = memoryview(buffer).cast("B")
        want = min(len(view), max(self._size - self._pos, 0))
        if want <= 0:
            return 0
        if self._index is None:
            data = self._bundle._pread(self._entry.data_offset + self._pos, want)
            view[:want] = data
        else:
            done = 0
            while done < want:
                pos = self._pos + done
                i = self._index.frame_of(pos)
                frame = self._frame(i)
                start = pos - self._index.decomp[i]
                n = min(len(frame) - start, want - done)
                view[done : done + n] = frame[start : start + n]
                done += n
        self._pos += want
        return want

    def readall(self) -> bytes:
        out = bytearray()
        while chunk := self.read(zstdseek.FRAME_SIZE * 4):
            out += chunk
        return bytes(out)


def open_bundle(path: str | os.PathLike[str]) -> Bundle:
    """Open and check a bundle's structure (spec/format.md §10.1). Exported as ``capsa.open``."""
    return Bundle(path)
