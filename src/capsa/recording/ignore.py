"""Which files a step writes are not outputs: ``.capsaignore`` in the project, plus defaults
(spec/recording.md §3.2). A pattern is an ``fnmatch`` glob over the path relative to the project;
one ending in ``/`` matches a directory and everything below it; a pattern without ``/`` also
matches a file name in any directory (as in .gitignore); ``#`` starts a comment."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from pathlib import Path

from ..errors import UsageError

__all__ = ["DEFAULT_IGNORES", "IGNORE_FILE", "Ignores"]

IGNORE_FILE = ".capsaignore"
DEFAULT_IGNORES = (".capsa/", ".snakemake/", "slurm-*.out")
"""capsa's own state, Snakemake's bookkeeping, a batch system's job logs."""


class Ignores:
    def __init__(
        self, patterns: Iterable[str], *, where: str = IGNORE_FILE, defaults: Iterable[str] = ()
    ) -> None:
        self.patterns: list[str] = []
        rules: list[str] = []
        numbered = [(0, p) for p in defaults] + list(enumerate(patterns, 1))
        for n, raw in numbered:
            p = raw.strip()
            if not p or p.startswith("#"):
                continue
            at = f"{where}:{n}"
            if p.startswith("!"):
                raise UsageError("negated patterns are not supported", where=at)
            if p.startswith("/") or ".." in p.split("/"):
                raise UsageError(
                    f"pattern {p!r} must be relative to the project", where=at, hint="e.g. logs/"
                )
            self.patterns.append(p)
            body = fnmatch.translate(p.rstrip("/")).removesuffix(r"\Z")
            rules.append(
                (rf"(?:.*/)?{body}" if "/" not in p.rstrip("/") else body)
                + (r"(?:/.*)?\Z" if p.endswith("/") else r"\Z")
            )
        self._re = re.compile("|".join(f"(?:{r})" for r in rules)) if rules else None

    @classmethod
    def for_project(cls, project: Path) -> Ignores:
        f = project / IGNORE_FILE
        extra = f.read_text(encoding="utf-8").splitlines() if f.is_file() else []
        return cls(extra, defaults=DEFAULT_IGNORES)

    def __call__(self, rel: str) -> bool:
        """Whether ``rel`` (relative to the project) is ignored."""
        return self._re is not None and self._re.match(rel) is not None
