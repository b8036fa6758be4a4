"""The ``root`` method: ROOT files by content, read with uproot (the ``root`` extra;
spec/format.md §7.5 "ROOT content").

Content: directories and keys by name and class (the highest cycle of each name), TTree and
RNTuple branches (C++ type, entry count, every value: NaN equals NaN, with tolerances), any
other object (histograms, TObjString, TNamed, TGraph, …) by every streamed member — and, for a
class uproot cannot read, by its uncompressed streamed bytes. Never content: file, directory and
key times (TDatime), UUIDs, the file name in the header, cycle numbers, seek offsets, compression
and basket layout. Branches are read in chunks of ``STEP_BYTES`` from both files in lockstep,
with uproot's caches off, so memory stays bounded. ``b`` is the reference.
"""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar

from ...format.policy import RootPolicy
from ..base import Diff, Difference, Source, differ, plural
from ..rules import Globs, Tolerances, own_policy, show
from ..volatile import mark, volatile_kind
from ._objects import diff_members, label, same
from ._read import (
    DIR_CLASSES,
    RNTUPLE,
    TREE_CLASSES,
    cannot_interpret,
    canon,
    cycles,
    open_root,
    raw_payload,
    reading,
    walk,
)
from ._tree import (
    STEP_BYTES,
    Tally,
    compare_branch,
    compare_field,
    leaves,
    rntuple_fields,
    signature,
)

__all__ = ["STEP_BYTES", "RootComparator", "is_root"]


def is_root(head: bytes) -> bool:
    return head[:4] == b"root"


class RootComparator:
    method: ClassVar[str] = "root"
    label: ClassVar[str] = "ROOT content"

    def diff(
        self,
        a: Source,
        b: Source,
        policy: Any,
        *,
        max_items: int = 10,
        names: tuple[str, str] | None = None,
    ) -> Diff:
        policy = own_policy(policy, RootPolicy)
        la, lb = names or (str(a), str(b))
        out = Diff(la, lb)
        with contextlib.ExitStack() as stack:
            fa = open_root(a, la)
            stack.callback(fa.close)
            fb = open_root(b, lb)
            stack.callback(fb.close)
            _Differ(policy, max_items, out, (la, lb)).run(fa, fb)
        return out


def _join(path: tuple[str, ...]) -> str:
    return "/".join(path)


class _Differ:
    def __init__(self, policy: RootPolicy, max_items: int, out: Diff, labels: tuple[str, str]):
        self.keys = Globs(policy.ignore_keys)
        self.branches = Globs(policy.ignore_branches)
        self.tol = Tolerances(policy)
        self.max_items = max_items
        self.out = out
        self.labels = labels

    def differ(self, path: str, kind: str, text: str, **detail: Any) -> Difference:
        d = Difference(path, kind, {**detail, "text": text})
        self.out.differences.append(d)
        return d

    def ignore(self, path: str, kind: str, text: str, **detail: Any) -> None:
        self.out.ignored.append(Difference(path, kind, {**detail, "text": text}))

    def run(self, fa: Any, fb: Any) -> None:
        self._bookkeeping(fa, fb)
        ka = dict(walk(fa, self.labels[0]))
        kb = dict(walk(fb, self.labels[1]))
        covered: tuple[str, ...] | None = None
        for path in sorted(ka.keys() | kb.keys()):
            if covered is not None and path[: len(covered)] == covered:
                continue
            covered = None
            name = _join(path)
            a, b = ka.get(path), kb.get(path)
            rule = self.keys.match(name)
            if a is None or b is None:
                present = b if a is None else a
                assert present is not None
                kind = "missing" if a is None else "extra"
                text = f"{present.fClassName} only in {'b' if a is None else 'a'}"
                if present.fClassName in DIR_CLASSES:
                    covered = path
                self.note(name, kind, text, rule, object=present.fClassName)
                continue
            if a.fClassName != b.fClassName:
                text = f"{a.fClassName} vs {b.fClassName}"
                self.note(name, "class", text, rule, a=a.fClassName, b=b.fClassName)
                if DIR_CLASSES.count(a.fClassName) or DIR_CLASSES.count(b.fClassName):
                    covered = path
                continue
            cls = b.fClassName
            if cls in DIR_CLASSES:
                continue
            if rule and (cls in TREE_CLASSES or cls == RNTUPLE):
                self.ignore(name, "tree", f"{cls} not compared [{rule}]", rule=rule)
                continue
            self._key(name, cls, a, b, rule)

    def _bookkeeping(self, fa: Any, fb: Any) -> None:
        """What differs but is never content, named in the report as ignored."""
        notes = []
        with contextlib.suppress(Exception):
            if fa.file.uuid != fb.file.uuid:
                notes.append("file UUIDs")
        with contextlib.suppress(Exception):
            if (fa.fDatimeC, fa.fDatimeM) != (fb.fDatimeC, fb.fDatimeM):
                notes.append("directory times")
        with contextlib.suppress(Exception):
            ta = [k.fDatime for k in fa._keys]
            tb = [k.fDatime for k in fb._keys]
            if ta != tb:
                notes.append("key times")
        with contextlib.suppress(Exception):
            if fa.file.fCompress != fb.file.fCompress:
                notes.append(f"compression ({fa.file.fCompress} vs {fb.file.fCompress})")
        with contextlib.suppress(Exception):
            if fa.file.fEND != fb.file.fEND:
                notes.append(f"file layout ({fa.file.fEND} vs {fb.file.fEND} bytes)")
        ca, cb = cycles(fa, self.labels[0]), cycles(fb, self.labels[1])
        if ca != cb:
            notes.append("cycle numbers")
        if notes:
            self.ignore("", "bookkeeping", ", ".join(notes) + " differ (never content)")

    def _key(self, name: str, cls: str, a: Any, b: Any, rule: str | None) -> None:
        if cls in TREE_CLASSES or cls == RNTUPLE:
            with reading(self.labels[0]):
                ta = a.get()
            with reading(self.labels[1]):
                tb = b.get()
            if cls == RNTUPLE:
                self._rntuple(name, ta, tb)
            else:
                self._tree(name, ta, tb)
            return
        try:
            with reading(self.labels[1]):
                ob = canon(b.get())
            with reading(self.labels[0]):
                oa = canon(a.get())
        except Exception as e:
            if not isinstance(e, (*cannot_interpret(), *_format_errors())):
                raise
            if raw_payload(a, self.labels[0]) != raw_payload(b, self.labels[1]):
                text = f"{cls}: streamed bytes differ (uproot cannot read this class)"
                self.note(name, "object", text, rule, object=cls)
            return
        tol = self.tol.at(name)
        members = diff_members(oa, ob, tol)
        if not members:
            if tol != (0.0, 0.0) and not same(oa, ob):
                self.ignore(
                    name, "object", f"{cls}: equal within tolerance", **self.tol.describe(name)
                )
            return
        first = members[0]
        text = f"{cls}: {label(first['member'])} {first['text']}"
        if len(members) > 1:
            text += f" (and {plural(len(members) - 1, 'more member')})"
        detail = {"object": cls, "members": members[: max(1, self.max_items)]}
        if rule:
            self.ignore(name, "object", f"{text} [{rule}]", rule=rule, **detail)
            return
        d = self.differ(name, "object", text, **detail)
        kinds = {volatile_kind(str(m.get("a")), str(m.get("b"))) for m in members}
        if None not in kinds:
            mark(
                d,
                "+".join(sorted({k for x in kinds if x for k in x.split("+")})),
                ignore_keys=[name],
            )

    def note(self, where: str, kind: str, text: str, rule: str | None, **detail: Any) -> None:
        """A difference, or an ignored one when a rule covers ``where``."""
        if rule:
            self.ignore(where, kind, f"{text} [{rule}]", rule=rule, **detail)
        else:
            self.differ(where, kind, text, **detail)

    def _tree(self, name: str, ta: Any, tb: Any) -> None:
        la, lb = self.labels
        with reading(la):
            title_a = str(ta.title)
        with reading(lb):
            title_b = str(tb.title)
        if title_a != title_b:
            self.differ(name, "title", f"{show(title_a)} vs {show(title_b)}")
        ba, bb = leaves(ta, la), leaves(tb, lb)

        def values(branch: str, tol: tuple[float, float]) -> Tally:
            return compare_branch(ba[branch], bb[branch], self.labels, tol, self.max_items)

        sa = {k: signature(v) for k, v in ba.items()}
        sb = {k: signature(v) for k, v in bb.items()}
        self._columns(name, (ta, tb), (sa, sb), "branch", values)

    def _rntuple(self, name: str, ra: Any, rb: Any) -> None:
        fa, fb = rntuple_fields(ra, self.labels[0]), rntuple_fields(rb, self.labels[1])

        def values(field: str, tol: tuple[float, float]) -> Tally:
            return compare_field(ra, rb, field, self.labels, tol, self.max_items)

        sa = {k: (v, v) for k, v in fa.items()}
        sb = {k: (v, v) for k, v in fb.items()}
        self._columns(name, (ra, rb), (sa, sb), "field", values)

    def _columns(
        self,
        name: str,
        tables: tuple[Any, Any],
        types: tuple[dict[str, tuple[str, str]], dict[str, tuple[str, str]]],
        what: str,
        values: Any,
    ) -> None:
        """Entry counts, then each branch (field): only in one, its type, its values."""
        with reading(self.labels[0]):
            na = int(tables[0].num_entries)
        with reading(self.labels[1]):
            nb = int(tables[1].num_entries)
        if na != nb:
            text = f"{na} entries in a, {nb} in b (values not compared)"
            self.differ(name, "entries", text, entries_a=na, entries_b=nb)
        sa, sb = types
        for col in sorted(sa.keys() | sb.keys()):
            where = f"{name}/{col}"
            rule = self.branches.match(where)
            if col not in sa or col not in sb:
                kind = "missing" if col not in sa else "extra"
                self.note(where, kind, f"{what} only in {'b' if col not in sa else 'a'}", rule)
            elif sa[col] != sb[col]:
                (ta, ia), (tb, ib) = sa[col], sb[col]
                text = f"type {ta} vs {tb}" if ta != tb else f"read as {ia} vs {ib}"
                self.note(where, "type", text, rule, a=ta, b=tb)
            elif rule:
                self.ignore(where, "branch", f"not compared [{rule}]", rule=rule)
            elif na == nb:
                self._report(where, values(col, self.tol.at(where)), sb[col][0])

    def _report(self, where: str, t: Tally, typename: str) -> None:
        detail: dict[str, Any] = {"entries": t.entries, "type": typename, "read_as": sorted(t.how)}
        if t.count:
            text = differ(t.count, "entry", t.entries)
            if t.first:
                text += f" (first at entry {t.first[0]}"
                if t.shown is not None:
                    text += f": {show(t.shown[0])} vs {show(t.shown[1])}"
                text += ")"
            if t.max_abs:
                detail["max_abs"] = t.max_abs
                text += f"; max abs {t.max_abs:.6g}"
            self.differ(where, "branch", text, count=t.count, first=t.first, **detail)
        if t.tolerated:
            text = f"{t.tolerated} of {t.entries} entries within tolerance"
            self.ignore(
                where,
                "branch",
                text,
                count=t.tolerated,
                within_tolerance=True,
                **detail,
                **self.tol.describe(where),
            )


def _format_errors() -> tuple[type[BaseException], ...]:
    from ...errors import FormatError

    return (FormatError,)
