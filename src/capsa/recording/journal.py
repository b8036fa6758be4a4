"""The journal of recorded steps in ``.capsa/`` of a work directory (spec/recording.md §3).

One JSON file per step, ``journal/NNNNNN.json``, claimed with an exclusive hard link after being
written completely, so a crash or Ctrl-C never leaves a partial record and two concurrent
``capsa run`` never share a number. Standard output and error are kept content-addressed in
``blobs/sha256/<hex>`` so that packing can include them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import FormatError, NotFoundError
from ..format.canonical import canonical_json
from ..format.digest import format_digest, parse_digest
from ..format.manifest import Step

__all__ = ["JOURNAL_VERSION", "Journal", "JournalEntry", "current", "find_project"]

JOURNAL_VERSION = "1"
STATE_DIR = ".capsa"


class JournalEntry(BaseModel):
    """A recorded step plus what only the recording host knows."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    journal: Literal["1"] = "1"
    seq: int
    step: Step
    image_path: str
    """Absolute path of the SIF image on the recording host; empty for a step without one."""
    undeclared_outputs: tuple[str, ...] = ()
    """Outputs found in the work directory that the command line did not declare."""
    deleted: tuple[str, ...] = ()
    """Paths of the work directory the step removed."""
    capture: Literal["overlay", "snapshot", ""] = ""
    """How the step's writes were found (spec/recording.md §3.1); empty in older records."""
    check: tuple[str, ...] | None = None
    """``capsa run --check``: what the recorded policies accept of the two runs' differences."""
    status: Literal["ok", "failed", "forgotten"]
    """``forgotten``: a ``capsa forget`` tombstone for the step of that name."""
    reason: str = ""


def current(entries: list[JournalEntry]) -> list[JournalEntry]:
    """The latest record of each step name, in recording order: a later record of a name
    supersedes the earlier ones, a ``forgotten`` tombstone drops the name."""
    latest: dict[str, JournalEntry] = {}
    for e in sorted(entries, key=lambda e: e.seq):
        latest[e.step.name] = e
    return sorted((e for e in latest.values() if e.status != "forgotten"), key=lambda e: e.seq)


def find_project(start: Path | None = None) -> Path:
    """The work directory whose ``.capsa/`` holds the journal: the nearest one upwards, else cwd."""
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / STATE_DIR / "journal").is_dir():
            return d
    return here


class Journal:
    def __init__(self, project: Path) -> None:
        self.project = project
        self.state = project / STATE_DIR
        self.dir = self.state / "journal"
        self.blobs = self.state / "blobs" / "sha256"

    def entries(self) -> list[JournalEntry]:
        if not self.dir.is_dir():
            return []
        out = []
        for p in sorted(self.dir.glob("[0-9]*.json")):
            try:
                out.append(JournalEntry.model_validate_json(p.read_bytes()))
            except (ValidationError, OSError) as e:
                raise FormatError(
                    f"damaged journal record: {e}".splitlines()[0],
                    where=str(p),
                    hint="move it aside; other records are unaffected",
                ) from e
        return sorted(out, key=lambda e: e.seq)

    def current(self) -> list[JournalEntry]:
        """The latest record of each step name (see :func:`current`)."""
        return current(self.entries())

    def forget(self, name: str) -> JournalEntry:
        """Drop the step ``name`` from what is packed (its records stay, for ``log --all``)."""
        found = [e for e in self.current() if e.step.name == name]
        if not found:
            raise NotFoundError(
                f"no recorded step named {name!r}",
                where=str(self.dir),
                hint="`capsa log` lists them",
            )
        last = found[-1]
        return self.append(
            step=last.step, image_path=last.image_path, status="forgotten", reason="capsa forget"
        )

    def next_seq(self) -> int:
        existing = [int(p.stem) for p in self.dir.glob("[0-9]*.json")] if self.dir.is_dir() else []
        return max(existing, default=0) + 1

    def append(self, **fields: object) -> JournalEntry:
        """Write a record atomically under the next free number and return it."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".record.", dir=self.dir)
        try:
            while True:
                seq = self.next_seq()
                entry = JournalEntry(seq=seq, **fields)  # type: ignore[arg-type,unused-ignore]
                data = canonical_json(entry.model_dump(mode="json", exclude_none=True))
                os.ftruncate(fd, 0)
                os.pwrite(fd, data, 0)
                os.fsync(fd)
                try:
                    os.link(tmp, self.dir / f"{seq:06d}.json")
                    return entry
                except FileExistsError:
                    continue  # another capsa run took this number; take the next
        finally:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def store(self, path: Path) -> str:
        """Keep a file capsa wrote (stdout, stderr) in the journal's blob store; return its
        digest."""
        h = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        if not self._has(h.hexdigest()):
            tmp = self._tmp(h.hexdigest())
            shutil.copyfile(path, tmp)
            os.replace(tmp, self.blobs / h.hexdigest())
        return format_digest(h.hexdigest())

    def store_bytes(self, data: bytes) -> str:
        """Keep ``data`` (a provenance log already read) in the blob store; return its digest."""
        hexd = hashlib.sha256(data).hexdigest()
        if not self._has(hexd):
            tmp = self._tmp(hexd)
            tmp.write_bytes(data)
            os.replace(tmp, self.blobs / hexd)
        return format_digest(hexd)

    def _has(self, hexd: str) -> bool:
        # A regular file only: anything else (a link planted by hand) is replaced, not trusted.
        with contextlib.suppress(OSError):
            return stat.S_ISREG((self.blobs / hexd).lstat().st_mode)
        return False

    def _tmp(self, hexd: str) -> Path:
        self.blobs.mkdir(parents=True, exist_ok=True)
        return self.blobs / f".{hexd}.{os.getpid()}.tmp"

    def blob_path(self, digest: str) -> Path:
        return self.blobs / parse_digest(digest)
