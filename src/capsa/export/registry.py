"""The exporter registry: each format says how to check a target before anything is written,
and how to write it. ``capsa export`` checks every requested export first, then writes them, so a
bad target or subject leaves nothing half-exported."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .._internal.atomic import check_destination
from ..bundle import Bundle

__all__ = ["Exporter", "exporter", "exporters", "register_exporter"]

Options = dict[str, Any]
"""What the command line gave: ``force``, ``progress``, and the format's own options."""


@dataclass(frozen=True)
class Exporter:
    name: str
    """The format and its option: ``ro-crate`` is ``--ro-crate TARGET``."""
    check: Callable[[Bundle, str, Options], None]
    """Raise capsa's error now if ``write`` could not succeed (builds the document once)."""
    write: Callable[[Bundle, str, Options], dict[str, Any]]
    """Write it; returns what the report says about it (without ``format`` and ``path``)."""
    stdout: bool = False
    """Whether ``-`` (standard output) is a valid target."""
    describe: Callable[[dict[str, Any]], str] = field(default=lambda written: "")
    """A short parenthesised note for the human report."""


_REGISTRY: dict[str, Exporter] = {}


def register_exporter(e: Exporter) -> None:
    _REGISTRY[e.name] = e


def exporters() -> list[Exporter]:
    return list(_REGISTRY.values())


def exporter(name: str) -> Exporter:
    return _REGISTRY[name]


def check_file(target: str, options: Options) -> None:
    """The check of a one-file export (``-`` is standard output)."""
    if target != "-":
        check_destination(target, force=bool(options.get("force")))


def _rocrate() -> Exporter:
    from . import rocrate_files as ro
    from .rocrate import crate_metadata

    def check(b: Bundle, target: str, o: Options) -> None:
        crate_metadata(b)
        ro.check_target(target, force=bool(o.get("force")))

    def write(b: Bundle, target: str, o: Options) -> dict[str, Any]:
        only = bool(o.get("metadata_only"))
        ro.write_crate(
            b, target, metadata_only=only, force=bool(o.get("force")), progress=o.get("progress")
        )
        kind = "zip" if target.lower().endswith(".zip") else "directory"
        return {"kind": kind, "metadata_only": only, "actions": len(b.manifest.steps)}

    def describe(w: dict[str, Any]) -> str:
        return f"{w['kind']}, {w['actions']} actions" + (
            ", metadata only" if w["metadata_only"] else ""
        )

    return Exporter("ro-crate", check, write, describe=describe)


def _intoto() -> Exporter:
    from .intoto import intoto_statement, write_intoto

    def check(b: Bundle, target: str, o: Options) -> None:
        intoto_statement(b, o.get("subjects") or None)
        check_file(target, o)

    def write(b: Bundle, target: str, o: Options) -> dict[str, Any]:
        keys = o.get("keys") or []
        write_intoto(
            b, target, keys=keys, subjects=o.get("subjects") or None, force=bool(o.get("force"))
        )
        return {"signed_by": [k.keyid for k in keys]}

    def describe(w: dict[str, Any]) -> str:
        return f"DSSE, signed by {', '.join(w['signed_by'])}" if w["signed_by"] else ""

    return Exporter("in-toto", check, write, stdout=True, describe=describe)


def _prov() -> Exporter:
    from .prov import prov_document, write_prov

    def check(b: Bundle, target: str, o: Options) -> None:
        prov_document(b)
        check_file(target, o)

    def write(b: Bundle, target: str, o: Options) -> dict[str, Any]:
        write_prov(b, target, force=bool(o.get("force")))
        return {}

    return Exporter("prov-json", check, write, stdout=True)


for _make in (_rocrate, _intoto, _prov):
    register_exporter(_make())
