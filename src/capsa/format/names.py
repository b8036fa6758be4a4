"""Strings with rules: digests, logical and container paths, step names, environment names
(spec/format.md §2, §2.1), and one readable line for a model error that breaks one of them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import AfterValidator, Field

__all__ = [
    "MAX_PATH_BYTES",
    "MAX_STEP_NAME_BYTES",
    "ContainerPath",
    "Decimal",
    "Digest",
    "EnvName",
    "HostPath",
    "LogicalPath",
    "NoNul",
    "StepName",
    "explain",
    "file_dir_conflict",
    "show_loc",
]

Digest = Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$", description="sha256:<64 hex>")]
MAX_PATH_BYTES = 4096
"""Longest logical or container path, in bytes of UTF-8 (spec §2)."""
MAX_STEP_NAME_BYTES = 200
"""Longest step name, in bytes of UTF-8: ``logs/<name>.stdout`` must stay one file name (§2.1)."""


def _utf8_at_most(limit: int) -> AfterValidator:
    def check(v: str) -> str:
        if v.isascii():  # one byte per character (and no surrogate): no need to encode
            n = len(v)
        else:
            try:
                n = len(v.encode("utf-8"))
            except UnicodeEncodeError:
                raise ValueError("not valid UTF-8 (a lone surrogate)") from None
        if n > limit:
            raise ValueError(f"{n} bytes of UTF-8, more than {limit}")
        return v

    return AfterValidator(check)


# Logical paths: relative, '/'-separated, no empty, '.' or '..' segments, no NUL/backslash.
_CHAR = r"[^/\\\x00-\x1f]"
_NODOT = r"[^/\\\x00-\x1f.]"
# Any segment but "." and "..", without look-around (pydantic's regex engine has none).
_SEGMENT = rf"(?:{_NODOT}{_CHAR}*|\.{_NODOT}{_CHAR}*|\.\.{_CHAR}+)"
LogicalPath = Annotated[
    str,
    Field(
        pattern=rf"^{_SEGMENT}(/{_SEGMENT})*$",
        max_length=MAX_PATH_BYTES,
        description="relative POSIX path inside the bundle; no '.', '..' or empty segments",
    ),
    _utf8_at_most(MAX_PATH_BYTES),
]
ContainerPath = Annotated[
    str,
    Field(
        pattern=rf"^(/{_SEGMENT})+$",
        max_length=MAX_PATH_BYTES,
        description="absolute POSIX path inside the container, not '/'; no '.', '..' or empty "
        "segments",
    ),
    _utf8_at_most(MAX_PATH_BYTES),
]
StepName = Annotated[
    str,
    Field(
        pattern=rf"^{_SEGMENT}$",
        max_length=MAX_STEP_NAME_BYTES,
        description="one path segment: no '/', backslash or control character, not '.' or '..'",
    ),
    _utf8_at_most(MAX_STEP_NAME_BYTES),
]
EnvName = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        max_length=255,
        description="an environment variable name: letters, digits and '_', not starting with "
        "a digit",
    ),
]
NoNul = Annotated[str, Field(pattern=r"^[^\x00]*$", description="no NUL character")]
"""A string that reaches execve (argv, env values): NUL would truncate it."""
HostPath = Annotated[
    str,
    Field(
        pattern=r"^/[^\x00]*$",
        max_length=MAX_PATH_BYTES,
        description="an absolute path without NUL",
    ),
]
Decimal = Annotated[
    str,
    Field(
        pattern=r"^[0-9]+(\.[0-9]+)?([eE]-?[0-9]+)?$",
        description="a non-negative decimal number as a string",
    ),
]


def file_dir_conflict(paths: Iterable[str]) -> str | None:
    """A path that is also a parent directory of another path (``a`` and ``a/b``), or None.

    Every proper prefix is looked up: comparing sorted neighbours is not enough, because
    ``a.txt`` sorts between ``a`` and ``a/b``.
    """
    names = set(paths)
    for path in sorted(names):
        parts = path.split("/")
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            if prefix in names:
                return prefix
    return None


def _pattern_help() -> dict[str, str]:
    out = {}
    for t in (LogicalPath, ContainerPath, StepName, EnvName, NoNul, HostPath, Digest):
        for info in t.__metadata__:  # type: ignore[attr-defined]
            for m in getattr(info, "metadata", ()):
                if getattr(m, "pattern", None) and info.description:
                    out[m.pattern] = info.description
    return out


_PATTERN_HELP = _pattern_help()


def show_loc(part: object) -> str:
    """A location segment as it may be printed: short, and no control character reaches a
    terminal (a hostile key could hold escape sequences)."""
    text = str(part)
    if not text.isprintable():
        text = repr(text)
    return text if len(text) <= 60 else text[:57] + "..."


def explain(error: Any) -> str:
    """One readable line for a pydantic error: a pattern becomes the rule it stands for."""
    if error.get("type") == "string_pattern_mismatch":
        pattern = (error.get("ctx") or {}).get("pattern", "")
        rule = _PATTERN_HELP.get(pattern, "not allowed here")
        return f"{str(error.get('input'))[:80]!r} is not allowed: {rule}"
    return str(error.get("msg", "invalid"))
