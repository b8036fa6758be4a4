"""Comparison policies from command-line options: ``--compare [PATH=]METHOD``,
``--ignore-attr [PATH=]OBJ@ATTR``, ``--rtol/--atol [PATH=]X`` — one parser for ``capsa run``,
``capsa pack`` and ``capsa diff``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import UsageError
from ..format.policy import ComparePolicy, compare_policy

__all__ = ["per_path", "policies_for", "policy_for"]

_HDF5_OPTIONS = ("ignore_attrs", "rtol", "atol")


def per_path(values: Sequence[str]) -> dict[str | None, str]:
    """``[PATH=]VALUE`` options: None is the default for every output."""
    out: dict[str | None, str] = {}
    for v in values:
        path, sep, value = v.rpartition("=")
        out[path if sep else None] = value
    return out


def _ignores(values: Sequence[str]) -> dict[str | None, list[str]]:
    # OBJ@ATTR starts with "/" or "*"; anything before an "=" otherwise names the output.
    out: dict[str | None, list[str]] = {}
    for v in values:
        path, sep, attr = (
            v.partition("=") if "=" in v and not v.startswith(("/", "*")) else ("", "", v)
        )
        out.setdefault(path if sep else None, []).append(attr)
    return out


def policies_for(
    outputs: Sequence[str],
    *,
    compare: Sequence[str] = (),
    ignore_attr: Sequence[str] = (),
    rtol: Sequence[str] = (),
    atol: Sequence[str] = (),
) -> dict[str, ComparePolicy]:
    """The policy of each output the options name (outputs without one are left out).

    Tolerances and ignored attributes imply ``hdf5``; a method given explicitly must accept the
    options given for it."""
    method, rtols, atols, ignores = (
        per_path(compare),
        per_path(rtol),
        per_path(atol),
        _ignores(ignore_attr),
    )
    for d in (method, rtols, atols, ignores):
        for path in d:
            if path is not None and path not in outputs:
                raise UsageError(
                    "a comparison option names a path that is not an output", where=path
                )
    policies: dict[str, ComparePolicy] = {}
    for out in outputs:

        def pick(d: dict[str | None, Any], out: str = out) -> Any:
            return d.get(out, d.get(None))

        options = {
            "ignore_attrs": tuple(pick(ignores) or ()),
            "rtol": pick(rtols),
            "atol": pick(atols),
        }
        options = {k: v for k, v in options.items() if v}
        m = pick(method) or ("hdf5" if options else None)
        if m is None:
            continue
        policies[out] = _make(m, options, where=out)
    return policies


def policy_for(
    method: str,
    *,
    ignore_attr: Sequence[str] = (),
    rtol: str | None = None,
    atol: str | None = None,
) -> ComparePolicy:
    """One policy (``capsa diff``): ``method`` with the options given."""
    options = {"ignore_attrs": tuple(ignore_attr), "rtol": rtol, "atol": atol}
    return _make(method, {k: v for k, v in options.items() if v}, where=None)


def _make(method: str, options: dict[str, Any], *, where: str | None) -> ComparePolicy:
    if method == "bytes" and options:
        flags = ", ".join(f"--{k.replace('_', '-').removesuffix('s')}" for k in options)
        raise UsageError(
            f"{flags} do not apply to the bytes comparison",
            where=where,
            hint="drop them, or compare with --compare hdf5",
        )
    try:
        return compare_policy(method, **options)
    except UsageError as e:
        e.where = where
        raise
