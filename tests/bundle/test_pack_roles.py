"""Roles by glob, first match wins — also when most patterns are literal paths (as
``pack --from-journal`` gives them, escaped) and the lookup skips the globs."""

from __future__ import annotations

import fnmatch
import importlib

pack_module = importlib.import_module("capsa.bundle.pack")


def _naive(logical: str, roles: list[tuple[str, str]], default: str) -> str:
    return next((r for p, r in roles if fnmatch.fnmatchcase(logical, p)), default)


def test_the_first_matching_pattern_wins_literal_or_glob() -> None:
    roles = [
        ("images/*", "image"),
        ("a.txt", "input"),
        ("*.txt", "output"),
        ("b.txt", "input"),  # after a glob that matches it: the glob wins
        ("odd[*]name", "log"),  # an escaped literal: the file is called odd*name
        ("odd[*]name", "input"),
        ("[[]x]", "intermediate"),
    ]
    names = ["images/x.sif", "a.txt", "b.txt", "c.txt", "odd*name", "oddXname", "[x]", "zzz"]
    table = pack_module._Roles(roles)
    for name in names:
        assert table.role_for(name, "other") == _naive(name, roles, "other"), name
    assert table.role_for("b.txt", "other") == "output"
    assert table.role_for("odd*name", "other") == "log"
    assert table.role_for("oddXname", "other") == "other"
