"""`capsa export`: RO-Crate, in-toto and PROV-JSON views of a bundle (capsa.export).

Wired into the main parser by ``capsa.cli.build_parser`` through :func:`add_parsers`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import capsa

from ..errors import UsageError
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


# Which registered exporter each option names.
_OPTIONS = {"ro_crate": "ro-crate", "in_toto": "in-toto", "prov": "prov-json"}


def cmd_export(args: argparse.Namespace) -> int:
    from ..export.registry import exporter

    _validate(args)
    quiet = bool(getattr(args, "quiet", False))
    options: dict[str, Any] = {
        "force": bool(args.force),
        "progress": False if quiet or args.json else None,
        "metadata_only": bool(args.metadata_only),
        "subjects": args.subject,
    }
    wanted = [(exporter(name), getattr(args, opt)) for opt, name in _OPTIONS.items()]
    wanted = [(e, target) for e, target in wanted if target]
    with capsa.open(args.bundle) as b:
        # Check everything before writing anything: a bad subject, an existing target or a
        # missing key leaves no file half-exported.
        for e, target in wanted:
            e.check(b, target, options)
        options["keys"] = signing_keys(args.key, args.passphrase_file) if args.key else []
        written = [
            {"format": e.name, "path": target, **e.write(b, target, options)}
            for e, target in wanted
        ]
        to_stdout = "-" in (t for _, t in wanted)
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
            for (e, target), w in zip(wanted, written, strict=True):
                if target == "-":
                    continue
                note = e.describe(w)
                print(f"{e.name} written to {target}" + (f" ({note})" if note else ""), file=out)
    return 0
