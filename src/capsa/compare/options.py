"""Comparison policies from command-line options — the one parser for ``capsa run`` (a policy
per ``--output``, ``[PATH=]VALUE``) and ``capsa diff`` (one policy for two files).

``--compare METHOD`` names the method (``auto``: by content); every other option sets one field
of a method's policy model (:data:`capsa.format.policy.MODELS`) and is a usage error for a
method without that field. Without ``--compare``, the options imply the one method that takes
them all (``--rtol``/``--atol``/``--ignore-attr`` alone: ``hdf5``, as before).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from ..errors import FormatError, UsageError
from ..format.policy import METHODS, MODELS, ComparePolicy, compare_policy

__all__ = [
    "OPTIONS",
    "Option",
    "add_options",
    "auto_policy",
    "per_path",
    "policies_for",
    "policy_for",
]

AUTO = "auto"


@dataclass(frozen=True)
class Option:
    flag: str
    field: str
    """The policy field it sets."""
    metavar: str
    help: str
    many: bool = True
    """Repeatable: the values make a tuple."""
    pathlike: bool = True
    """Values may contain "=": a PATH= prefix is taken only when PATH is an output."""

    @property
    def dest(self) -> str:
        return self.flag[2:].replace("-", "_")

    def methods(self) -> list[str]:
        return [m for m in METHODS if m != "bytes" and self.field in MODELS[m].model_fields]


OPTIONS: tuple[Option, ...] = (
    Option(
        "--ignore-attr",
        "ignore_attrs",
        "OBJ@ATTR",
        "hdf5: an attribute allowed to differ, e.g. /@kid, or *@kid at any object",
    ),
    Option(
        "--ignore-key",
        "ignore_keys",
        "GLOB",
        "root: objects or directories not compared, e.g. 'META/*'",
    ),
    Option(
        "--ignore-branch",
        "ignore_branches",
        "GLOB",
        "root: TREE/BRANCH not compared, e.g. 'events/*_timing'",
    ),
    Option(
        "--ignore-line",
        "ignore_lines",
        "REGEX",
        "text, csv: lines left out of both files, e.g. '^# written '",
    ),
    Option(
        "--ignore-column",
        "ignore_columns",
        "NAME",
        "csv: a column (header name or glob) not compared",
    ),
    Option(
        "--ignore-pointer",
        "ignore_pointers",
        "POINTER",
        "json: a member not compared, a JSON pointer or glob, e.g. /created or /runs/*/host",
    ),
    Option(
        "--rtol",
        "rtol",
        "X",
        "hdf5, root, csv, json: relative tolerance for floating-point values",
        many=False,
        pathlike=False,
    ),
    Option(
        "--atol",
        "atol",
        "X",
        "hdf5, root, csv, json: absolute tolerance (hdf5: also for integers)",
        many=False,
        pathlike=False,
    ),
    Option(
        "--tolerance",
        "tolerances",
        "WHERE:RTOL[:ATOL]",
        "root, csv, json: a tolerance for the branches, columns or pointers a glob matches, "
        "e.g. 'events/energy:1e-6'",
    ),
    Option(
        "--delimiter",
        "delimiter",
        "CHAR",
        "csv: the field separator (default ','; 'tab' for TSV)",
        many=False,
        pathlike=False,
    ),
    Option(
        "--max-pixel-diff",
        "pixel_tolerance",
        "N",
        "image: a pixel is the same when no channel differs by more than N",
        many=False,
        pathlike=False,
    ),
    Option(
        "--max-differing-pixels",
        "max_differing",
        "FRACTION",
        "image: the share of pixels allowed to differ, e.g. 0.001",
        many=False,
        pathlike=False,
    ),
)
_BY_FIELD = {o.field: o for o in OPTIONS}
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?([eE]-?[0-9]+)?")


def add_options(p: argparse.ArgumentParser, *, per_output: bool) -> None:
    """``--compare`` and every method option, documented, on ``p``."""
    prefix = "[PATH=]" if per_output else ""
    names = ", ".join(METHODS)
    g = p.add_argument_group(
        "comparison",
        "how outputs are compared on replay (default: identical bytes); an option applies to "
        "one output with PATH=, else to every output"
        if per_output
        else "default: detected by content (both files must be of one kind)",
    )
    g.add_argument(
        "--compare",
        action="append" if per_output else "store",
        default=[] if per_output else None,
        metavar=f"{prefix}METHOD",
        help=f"one of {names}, or auto (detected by content"
        + (", recorded as the method found)" if per_output else ")"),
    )
    for o in OPTIONS:
        g.add_argument(
            o.flag,
            action="append" if per_output or o.many else "store",
            default=[] if per_output or o.many else None,
            metavar=prefix + o.metavar,
            help=o.help,
        )


def per_path(values: Sequence[str]) -> dict[str | None, str]:
    """``[PATH=]VALUE`` options: None is the default for every output."""
    out: dict[str | None, str] = {}
    for v in values:
        path, sep, value = v.rpartition("=")
        out[path if sep else None] = value
    return out


def _split(o: Option, values: Sequence[str], outputs: Sequence[str]) -> dict[str | None, list[str]]:
    out: dict[str | None, list[str]] = {}
    for v in values:
        path: str | None = None
        if o.pathlike:
            named = [p for p in outputs if v.startswith(p + "=")]
            if named:
                path = max(named, key=len)
                v = v[len(path) + 1 :]
        else:
            head, sep, rest = v.rpartition("=")
            if sep:
                path, v = head, rest
        out.setdefault(path, []).append(v)
    return out


def _value(o: Option, raw: list[str], where: str | None) -> Any:
    def one(v: str) -> Any:
        if o.field in ("rtol", "atol", "max_differing"):
            if not _DECIMAL.fullmatch(v):
                raise UsageError(
                    f"{o.flag} {v!r} is not a non-negative decimal number",
                    where=where,
                    hint="e.g. 1e-6 or 0.001",
                )
            return v
        if o.field == "pixel_tolerance":
            if not v.isdigit():
                raise UsageError(f"{o.flag} {v!r} is not a whole number ≥ 0", where=where)
            return int(v)
        if o.field == "delimiter":
            return {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";"}.get(v, v)
        if o.field == "tolerances":
            return _tolerance(v, where)
        return v

    return tuple(one(v) for v in raw) if o.many else one(raw[-1])


def _tolerance(v: str, where: str | None) -> dict[str, str]:
    parts = v.rsplit(":", 2)
    if (
        len(parts) == 3
        and _DECIMAL.fullmatch(parts[1])
        and _DECIMAL.fullmatch(parts[2])
        and parts[0]
    ):
        return {"where": parts[0], "rtol": parts[1], "atol": parts[2]}
    glob, sep, rtol = v.rpartition(":")
    if sep and glob and _DECIMAL.fullmatch(rtol):
        return {"where": glob, "rtol": rtol}
    raise UsageError(
        f"--tolerance {v!r} is not WHERE:RTOL[:ATOL]",
        where=where,
        hint="e.g. 'events/energy:1e-6' or 'energy:0:1e-9'",
    )


def _flags(fields: Sequence[str]) -> str:
    return ", ".join(_BY_FIELD[f].flag for f in fields)


def _check(method: str, fields: Mapping[str, Any], where: str | None) -> None:
    wrong = [f for f in fields if f not in MODELS[method].model_fields or method == "bytes"]
    if wrong:
        takes = sorted({m for f in wrong for m in _BY_FIELD[f].methods()})
        raise UsageError(
            f"{_flags(wrong)} {'does' if len(wrong) == 1 else 'do'} not apply to the "
            f"{method} comparison",
            where=where,
            hint=f"{'it applies' if len(wrong) == 1 else 'they apply'} to {', '.join(takes)}: "
            "name that method with --compare, or drop it",
        )


def _implied(fields: Mapping[str, Any], where: str | None) -> str:
    takes = [
        m for m in METHODS if m != "bytes" and all(f in MODELS[m].model_fields for f in fields)
    ]
    if "hdf5" in takes:
        return "hdf5"  # --rtol/--atol/--ignore-attr alone, as before 1.2
    if len(takes) == 1:
        return takes[0]
    raise UsageError(
        f"{_flags(list(fields))}: which comparison?",
        where=where,
        hint=f"{'they apply to ' + ', '.join(takes) if takes else 'no one method takes them all'}; "
        "name the method with --compare",
    )


def _make(method: str, fields: dict[str, Any], where: str | None) -> ComparePolicy:
    _check(method, fields, where)
    try:
        return compare_policy(method, **fields)
    except UsageError as e:
        e.where = where
        raise


AutoResolver = Callable[[BinaryIO], ComparePolicy]


def auto_policy(f: BinaryIO) -> ComparePolicy:
    """What ``--compare auto`` records for a file: the method its content is, or bytes."""
    from .registry import detect_policy

    found = detect_policy(f, f)
    return found if found is not None else compare_policy("bytes")


def policies_for(
    outputs: Sequence[str], **values: Sequence[str]
) -> dict[str, ComparePolicy | AutoResolver]:
    """The policy of each output the options name (outputs without one are left out); for
    ``auto``, a function that reads the output once it exists and gives its policy.

    ``values``: ``compare`` and each option's dest (``ignore_line``, ``rtol``, …), the raw
    ``[PATH=]VALUE`` strings as given."""
    methods = per_path(values.get("compare", ()))
    given: dict[str, dict[str | None, list[str]]] = {
        o.field: _split(o, values.get(o.dest, ()), outputs) for o in OPTIONS if values.get(o.dest)
    }
    unknown = [o for o in values if o != "compare" and o not in {x.dest for x in OPTIONS}]
    if unknown:
        raise TypeError(f"unknown comparison options {unknown}")
    named: list[Mapping[str | None, Any]] = [methods, *given.values()]
    for d in named:
        for path in d:
            if path is not None and path not in outputs:
                raise UsageError(
                    "a comparison option names a path that is not an output", where=path
                )
    policies: dict[str, ComparePolicy | AutoResolver] = {}
    used: set[str] = set()  # options given for every output that some output's method took
    for out in outputs:
        method = methods.get(out, methods.get(None))
        fields, defaults = {}, []
        for f, by_path in given.items():
            raw = by_path.get(out)
            if raw is None and None in by_path:
                # Without PATH=: for every output whose method takes it (any, if none is named).
                if method not in (None, AUTO) and f not in MODELS[method].model_fields:
                    continue
                if method is None and methods:
                    continue
                raw = by_path[None]
                defaults.append(f)
            if raw:
                fields[f] = _value(_BY_FIELD[f], raw, out)
        if method == AUTO:
            if fields:
                raise UsageError(
                    f"--compare auto takes no method options ({_flags(list(fields))})",
                    where=out,
                    hint="name the method the options are for with --compare PATH=METHOD",
                )
            policies[out] = auto_policy
            continue
        if method is None and not fields:
            continue
        policies[out] = _make(method or _implied(fields, out), fields, out)
        used.update(defaults)
    unused = [f for f, by_path in given.items() if None in by_path and f not in used]
    if unused and outputs:
        chosen = [methods.get(o, methods.get(None)) for o in outputs]
        first = next((m for m in chosen if m not in (None, AUTO)), None)
        if first is not None:
            _check(first, dict.fromkeys(unused), None)
        raise UsageError(
            f"{_flags(unused)} {'applies' if len(unused) == 1 else 'apply'} to no output's "
            "comparison",
            hint="name the method with --compare [PATH=]METHOD",
        )
    return policies


def policy_for(a: Any, b: Any, *, compare: str | None = None, **values: Any) -> ComparePolicy:
    """One policy for ``capsa diff A B``: ``compare`` (None or auto: the method both files'
    content is, a FormatError when they are not of one known kind) with the options given."""
    fields = {}
    for o in OPTIONS:
        raw = values.get(o.dest)
        if raw:
            fields[o.field] = _value(
                o, list(raw) if isinstance(raw, (list, tuple)) else [raw], None
            )
    if compare not in (None, AUTO):
        if compare not in METHODS:
            raise UsageError(
                f"unknown comparison {compare!r}", hint=f"use one of {', '.join(METHODS)} or auto"
            )
        return _make(compare, fields, None)
    from .registry import detect, detect_policy, entry

    found = detect_policy(a, b)
    if found is None:
        ka, kb = detect(a), detect(b)
        what = (
            "neither file is of a kind capsa compares by content"
            if ka is None and kb is None
            else f"A is {_kind(ka)} but B is {_kind(kb)}"
        )
        raise FormatError(what, hint="name the method with --compare; bytes compares any two files")
    base = found.model_dump(exclude={"method"}, exclude_none=True)
    try:
        _check(found.method, fields, None)
    except UsageError as e:
        e.what = f"{e.what} (both files are {entry(found.method).label})"
        raise
    return _make(found.method, base | fields, None)


def _kind(method: str | None) -> str:
    from .registry import entry

    return "of no kind capsa knows" if method is None else entry(method).label
