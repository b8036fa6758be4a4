"""`capsa export`: RO-Crate, in-toto and PROV-JSON views of a bundle (capsa.export).

Wired into the main parser by ``capsa.cli.build_parser`` through :func:`add_parsers`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import capsa

from ..errors import ExistsError, NotFoundError, UsageError
from ._keys import signing_keys

__all__ = ["add_parsers", "cmd_export"]

_DESCRIPTION = """\
Write the bundle's description in other ecosystems' formats; several at once if asked.
--ro-crate: an RO-Crate (Workflow/Provenance Run Crate profiles) as a directory with the payload
extracted, or as a .zip; --in-toto: an in-toto Statement v1 with a SLSA provenance predicate
(signed as a DSSE envelope with --key); --prov: W3C PROV-JSON. An existing target is replaced
only with --force. "-" writes the in-toto or PROV document to standard output."""


def add_parsers(
    sub: Any, common: argparse.ArgumentParser, trust_options_unused: Any = None
) -> None:
    """Register ``export`` on the ``capsa`` subparsers object ``sub``."""
    p = sub.add_parser(
        "export",
        parents=[common],
        help="export a bundle as RO-Crate, in-toto provenance or W3C PROV-JSON",
        description=_DESCRIPTION,
    )
    p.set_defaults(func=cmd_export)
    p.add_argument("bundle")
    p.add_argument(
        "--ro-crate",
        metavar="DIR|FILE.zip",
        help="write an RO-Crate: a directory, or a zip file if the name ends in .zip",
    )
    p.add_argument(
        "--metadata-only",
        action="store_true",
        help="with --ro-crate: write only ro-crate-metadata.json, not the files",
    )
    p.add_argument(
        "--in-toto",
        metavar="FILE",
        help="write an in-toto Statement v1 (SLSA provenance v1 predicate)",
    )
    p.add_argument(
        "--subject",
        action="append",
        default=[],
        metavar="PATH",
        help="with --in-toto: a bundle file to attest (repeatable; default: outputs)",
    )
    p.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="PRIVATE_KEY",
        help="with --in-toto: sign the statement as a DSSE envelope; repeatable",
    )
    p.add_argument("--passphrase-file", metavar="FILE", help="passphrase of an encrypted key")
    p.add_argument("--prov", metavar="FILE", help="write a W3C PROV-JSON document")
    p.add_argument("--force", action="store_true", help="replace existing targets")
    p.add_argument("--json", action="store_true", help="print what was written as JSON")


def _check_file_target(path: str, force: bool) -> None:
    if path == "-":
        return
    p = Path(path)
    if os.path.lexists(p):
        if p.is_dir() and not p.is_symlink():
            raise ExistsError("destination is a directory", where=path, hint="name a file")
        if not force:
            raise ExistsError("destination exists", where=path, hint="use --force to replace it")
    if not p.parent.is_dir():
        raise NotFoundError("directory does not exist", where=str(p.parent))


def _validate(args: argparse.Namespace) -> None:
    targets = [t for t in (args.ro_crate, args.in_toto, args.prov) if t]
    if not targets:
        raise UsageError(
            "nothing to export", hint="give --ro-crate DIR, --in-toto FILE or --prov FILE"
        )
    if args.metadata_only and not args.ro_crate:
        raise UsageError("--metadata-only needs --ro-crate")
    if (args.key or args.subject) and not args.in_toto:
        raise UsageError("--key and --subject need --in-toto")
    if args.in_toto == "-" and args.prov == "-":
        raise UsageError("only one document can go to standard output")
    if args.ro_crate == "-":
        raise UsageError(
            "an RO-Crate cannot go to standard output", hint="name a directory or a .zip"
        )
    real = [os.path.realpath(t) for t in targets if t != "-"]
    if len(set(real)) != len(real):
        raise UsageError("two exports name the same target")


def cmd_export(args: argparse.Namespace) -> int:
    from ..export import rocrate as ro
    from ..export.intoto import intoto_statement, write_intoto
    from ..export.prov import prov_document, write_prov

    _validate(args)
    force = bool(args.force)
    quiet = bool(getattr(args, "quiet", False))
    with capsa.open(args.bundle) as b:
        # Check everything before writing anything: a bad subject, an existing target or a
        # missing key leaves no file half-exported.
        if args.ro_crate:
            ro.crate_metadata(b)
            ro.check_target(args.ro_crate, force=force)
        if args.in_toto:
            intoto_statement(b, args.subject or None)
            _check_file_target(args.in_toto, force)
        if args.prov:
            prov_document(b)
            _check_file_target(args.prov, force)
        keys = signing_keys(args.key, args.passphrase_file) if args.key else []

        written: list[dict[str, Any]] = []
        if args.ro_crate:
            ro.write_crate(
                b,
                args.ro_crate,
                metadata_only=args.metadata_only,
                force=force,
                progress=False if quiet or args.json else None,
            )
            kind = "zip" if args.ro_crate.lower().endswith(".zip") else "directory"
            written.append(
                {
                    "format": "ro-crate",
                    "path": args.ro_crate,
                    "kind": kind,
                    "metadata_only": bool(args.metadata_only),
                    "actions": len(b.manifest.steps),
                }
            )
        if args.in_toto:
            write_intoto(b, args.in_toto, keys=keys, subjects=args.subject or None, force=force)
            written.append(
                {"format": "in-toto", "path": args.in_toto, "signed_by": [k.keyid for k in keys]}
            )
        if args.prov:
            write_prov(b, args.prov, force=force)
            written.append({"format": "prov-json", "path": args.prov})
        to_stdout = "-" in (args.in_toto, args.prov)
        if args.json and not to_stdout:
            sys.stdout.write(
                json.dumps(
                    {"bundle": str(b.path), "id": b.id, "exports": written},
                    indent=2,
                    sort_keys=True,
                )
                + "\n"
            )
        elif not quiet:
            out = sys.stderr if to_stdout else sys.stdout
            for w in written:
                if w["path"] == "-":
                    continue
                extra = ""
                if w["format"] == "ro-crate":
                    extra = f" ({w['kind']}, {w['actions']} actions"
                    extra += ", metadata only)" if w["metadata_only"] else ")"
                elif w["format"] == "in-toto" and w["signed_by"]:
                    extra = f" (DSSE, signed by {', '.join(w['signed_by'])})"
                print(f"{w['format']} written to {w['path']}{extra}", file=out)
    return 0
