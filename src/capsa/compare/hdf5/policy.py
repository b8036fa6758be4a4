"""The hdf5 policy's rules: which attributes are ignored, which tolerances apply."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ...errors import UsageError
from ...format.policy import BytesPolicy, Hdf5Policy


@dataclass(frozen=True)
class _Rules:
    exact: frozenset[tuple[str, str]] = frozenset()
    anywhere: frozenset[str] = frozenset()
    rtol: float = 0.0
    atol: float = 0.0
    tolerance: bool = False  # rtol or atol given: floats compare with isclose
    int_atol: bool = False  # atol given: integers may differ by up to atol

    def ignored(self, path: str, name: str) -> str | None:
        """The ignore_attrs rule that covers attribute ``name`` of ``path``, if any."""
        if (path, name) in self.exact:
            return f"{path}@{name}"
        if name in self.anywhere:
            return f"*@{name}"
        return None


def _split_rule(rule: str) -> tuple[str, str]:
    obj, sep, name = rule.rpartition("@")
    if not sep or not name or not (obj == "*" or obj.startswith("/")):
        raise UsageError(
            f"ignored attribute {rule!r} is not OBJECT@NAME",
            hint="e.g. /@kid, /group/dataset@name, or *@kid for any object",
        )
    if obj not in ("*", "/"):
        obj = "/" + "/".join(p for p in obj.split("/") if p)
    return obj, name


def _rules(policy: Hdf5Policy | BytesPolicy | None) -> _Rules:
    if policy is None or isinstance(policy, BytesPolicy):
        return _Rules()  # bytes: nothing is ignored, no tolerance (its 1.1 fields have no effect)
    if not isinstance(policy, Hdf5Policy):
        raise UsageError(
            f"a comparison policy for HDF5 must be an Hdf5Policy, not {type(policy).__name__}"
        )
    exact, anywhere = set(), set()
    for rule in policy.ignore_attrs:
        obj, name = _split_rule(rule)
        if obj == "*":
            anywhere.add(name)
        else:
            exact.add((obj, name))
    rtol = float(policy.rtol) if policy.rtol is not None else 0.0
    atol = float(policy.atol) if policy.atol is not None else 0.0
    return _Rules(
        frozenset(exact),
        frozenset(anywhere),
        rtol,
        atol,
        tolerance=policy.rtol is not None or policy.atol is not None,
        int_atol=policy.atol is not None,
    )


def make_policy(
    ignore_attrs: Sequence[str] = (), rtol: str | None = None, atol: str | None = None
) -> Hdf5Policy:
    """An ``hdf5`` policy from command-line values; bad values are a `UsageError`."""
    try:
        policy = Hdf5Policy(ignore_attrs=tuple(ignore_attrs), rtol=rtol, atol=atol)
    except ValueError:
        bad = next(
            (
                f"--{k} {v!r}"
                for k, v in (("rtol", rtol), ("atol", atol))
                if v is not None and not _is_decimal(v)
            ),
            "the comparison policy",
        )
        raise UsageError(
            f"{bad} is not a non-negative decimal number", hint="e.g. 1e-6 or 0.001"
        ) from None
    _rules(policy)  # checks the attribute rules
    return policy


def _is_decimal(v: str) -> bool:
    return re.fullmatch(r"[0-9]+(\.[0-9]+)?([eE]-?[0-9]+)?", v) is not None
