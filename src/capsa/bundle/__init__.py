"""Bundles: read (open, members, random access), verify, extract, write (pack) and countersign
(spec/format.md §10, spec/signing.md §4)."""

from __future__ import annotations

from .bundle import Bundle, open_bundle
from .countersign import sign_bundle
from .pack import PackResult, pack
from .reader import BundleReader, Member, MemberFile
from .verify import LEVELS, Problem, VerifyReport

__all__ = [
    "LEVELS",
    "Bundle",
    "BundleReader",
    "Member",
    "MemberFile",
    "PackResult",
    "Problem",
    "VerifyReport",
    "open_bundle",
    "pack",
    "sign_bundle",
]
