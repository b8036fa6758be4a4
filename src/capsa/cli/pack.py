"""`capsa pack`, `capsa sign`, `capsa keygen`: writing and signing bundles."""

from __future__ import annotations

import argparse
from typing import Any

import capsa

from ..compare.options import policies_for
from ..errors import ExitCode, UsageError
from ._common import Commands, emit_json, human, progress, signing_keys_for

__all__ = ["register"]


class _Affiliation(argparse.Action):
    """``--affiliation ORG`` belongs to the ``--author`` given just before it."""

    def __call__(self, parser: Any, namespace: Any, value: Any, option: Any = None) -> None:
        namespace.affiliations = [*namespace.affiliations, (len(namespace.author) - 1, value)]


def _authors(args: argparse.Namespace) -> list[Any]:
    from ..format.manifest import Author

    orgs: dict[int, str] = {}
    for i, org in args.affiliations:
        if i < 0 or i in orgs:
            raise UsageError("each --affiliation needs its own --author just before it")
        orgs[i] = org
    return [
        Author(name=name, affiliation=orgs[i]) if i in orgs else name
        for i, name in enumerate(args.author)
    ]


def _parse_role(text: str) -> tuple[str, str]:
    pattern, sep, role = text.rpartition("=")
    return (pattern, role) if sep else ("*", role)


def _pack_policies(args: argparse.Namespace) -> dict[str, Any]:
    """Policies set at pack time: ``--compare PATH=METHOD`` etc. name the output (ignored
    attributes ``PATH=OBJ@ATTR``)."""
    values = [*args.compare, *args.rtol, *args.atol]
    ignores = [v for v in args.ignore_attr if "=" in v and not v.startswith(("/", "*"))]
    if len(ignores) != len(args.ignore_attr) or any("=" not in v for v in values):
        raise UsageError(
            "at pack time, comparison options name the output",
            hint="e.g. --compare hist.h5=hdf5 --ignore-attr hist.h5=/@kid",
        )
    named = sorted({v.rpartition("=")[0] for v in values} | {v.partition("=")[0] for v in ignores})
    return policies_for(
        named, compare=args.compare, ignore_attr=args.ignore_attr, rtol=args.rtol, atol=args.atol
    )


def _pack_from_journal(args: argparse.Namespace) -> Any:
    from ..recording.lineage import pack_from_journal

    return pack_from_journal(
        args.output,
        args.paths,
        compare=_pack_policies(args),
        title=args.title,
        description=args.description,
        authors=_authors(args),
        license=args.license,
        created=args.created,
        publisher=args.publisher,
        level=args.level,
        sign=signing_keys_for(args.sign, args),
        force=args.force,
        progress=progress(args),
        **_external(args),
    )


def cmd_pack(args: argparse.Namespace) -> int:
    if args.from_journal:
        if args.role or args.identifier:
            raise UsageError("--role and --identifier are set from the journal with --from-journal")
        result = _pack_from_journal(args)
    else:
        if args.compare or args.ignore_attr or args.rtol or args.atol:
            raise UsageError("comparison options apply to recorded steps: use --from-journal")
        if not args.paths:
            raise UsageError(
                "nothing to pack", hint="name files or directories, or use --from-journal"
            )
        result = _pack_paths(args)
    return _report_pack(args, result)


def _pack_paths(args: argparse.Namespace) -> Any:
    roles = [_parse_role(r) for r in args.role]
    default = next((r for p, r in roles if p == "*"), "other")
    identifiers = []
    for ident in args.identifier:
        scheme, sep, value = ident.partition(":")
        if not sep or not scheme or not value:
            raise UsageError(
                f"identifier {ident!r} is not SCHEME:VALUE", hint="e.g. doi:10.1234/abc"
            )
        identifiers.append((scheme, value))
    return capsa.pack(
        args.output,
        args.paths,
        title=args.title,
        description=args.description,
        authors=_authors(args),
        license=args.license,
        identifiers=identifiers,
        created=args.created,
        publisher=args.publisher,
        roles=[(p, r) for p, r in roles if p != "*"],
        default_role=default,
        level=args.level,
        sign=signing_keys_for(args.sign, args),
        force=args.force,
        progress=progress(args),
        **_external(args),
    )


def _external(args: argparse.Namespace) -> dict[str, Any]:
    if not args.external:
        return {}
    from ..bundle.external import parse_rule

    return {"external": [parse_rule(x) for x in args.external]}


def _report_pack(args: argparse.Namespace, result: Any) -> int:
    m = result.manifest
    stored = sum(b.stored_size for b in m.blobs.values())
    raw = sum(b.size for b in m.blobs.values())
    if args.json:
        emit_json(
            {
                "bundle": str(result.path),
                "id": result.bundle_id,
                "size": result.size,
                "files": len(m.files),
                "blobs": len(m.blobs),
                "steps": len(m.steps),
                "content_size": raw,
                "stored_size": stored,
            }
        )
    elif not args.quiet:
        steps = f", {len(m.steps)} steps" if m.steps else ""
        print(
            f"packed {len(m.files)} files ({len(m.blobs)} blobs{steps}, {human(raw)} → "
            f"{human(stored)}) into {result.path}"
        )
        print(f"bundle id {result.bundle_id}")
    return ExitCode.OK


def cmd_keygen(args: argparse.Namespace) -> int:
    from ..signing.keys import keygen
    from ._keys import passphrase as read_passphrase

    passphrase = read_passphrase(args.passphrase_file)
    priv, pub, keyid = keygen(args.output, passphrase=passphrase or None, force=args.force)
    if args.json:
        emit_json({"private_key": str(priv), "public_key": str(pub), "keyid": keyid})
    elif not args.quiet:
        print(f"wrote {priv} (private, mode 0600{', encrypted' if passphrase else ''}) and {pub}")
        print(f"key id {keyid}")
    return ExitCode.OK


def cmd_sign(args: argparse.Namespace) -> int:
    from ..bundle import sign_bundle

    keyids = sign_bundle(args.bundle, signing_keys_for(args.key, args), replace=args.force)
    if args.json:
        emit_json({"bundle": args.bundle, "signed_by": keyids})
    elif not args.quiet:
        for k in keyids:
            print(f"{args.bundle}: signed by {k}")
    return ExitCode.OK


def register(c: Commands) -> None:
    p = c.add("pack", cmd_pack, "pack files and directories into a bundle")
    p.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="files and directories; with --from-journal: the outputs to pack",
    )
    p.add_argument("-o", "--output", required=True, metavar="OUT.capsa")
    p.add_argument(
        "--from-journal",
        action="store_true",
        help="pack the recorded steps behind the given outputs (all if none)",
    )
    p.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="PATH=METHOD",
        help="with --from-journal: replace the recorded comparison policy of an output "
        "(recorded as set at pack time)",
    )
    p.add_argument("--ignore-attr", action="append", default=[], metavar="PATH=OBJ@ATTR")
    p.add_argument("--rtol", action="append", default=[], metavar="PATH=X")
    p.add_argument("--atol", action="append", default=[], metavar="PATH=X")
    p.add_argument("--title", default="")
    p.add_argument("--description", default="")
    p.add_argument("--author", action="append", default=[], metavar="NAME")
    p.add_argument(
        "--affiliation",
        action=_Affiliation,
        default=[],
        dest="affiliations",
        metavar="ORG",
        help="the organisation of the --author given just before",
    )
    p.add_argument("--publisher", metavar="ORG", help="the organisation publishing the bundle")
    p.add_argument("--license", metavar="SPDX")
    p.add_argument("--identifier", action="append", default=[], metavar="SCHEME:VALUE")
    p.add_argument(
        "--created",
        metavar="YYYY-MM-DDTHH:MM:SSZ",
        help="creation time to record (default: SOURCE_DATE_EPOCH if set, else none)",
    )
    p.add_argument(
        "--external",
        action="append",
        default=[],
        metavar="GLOB=URL_PREFIX",
        help="record matching bundle paths by reference (digest, size, URL_PREFIX + the path "
        "below GLOB's directory), without their bytes; repeatable (more URLs: mirrors)",
    )
    p.add_argument(
        "--role",
        action="append",
        default=[],
        metavar="[GLOB=]ROLE",
        help="role of matching bundle paths: input, output, intermediate, image, other",
    )
    p.add_argument(
        "--level",
        type=int,
        default=3,
        choices=range(1, 20),
        metavar="1-19",
        help="zstd level (default 3)",
    )
    p.add_argument(
        "--sign",
        action="append",
        default=[],
        metavar="PRIVATE_KEY",
        help="sign the bundle with this key; repeatable",
    )
    p.add_argument("--passphrase-file", metavar="FILE", help="passphrase of an encrypted key")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.add_argument("--json", action="store_true")
    p = c.add("keygen", cmd_keygen, "write a new Ed25519 key pair NAME.key / NAME.pub")
    p.add_argument("-o", "--output", required=True, metavar="NAME")
    p.add_argument(
        "--passphrase-file",
        metavar="FILE",
        help="encrypt the private key with this passphrase (or set CAPSA_PASSPHRASE)",
    )
    p.add_argument("--force", action="store_true", help="replace existing key files")
    p.add_argument("--json", action="store_true")
    p = c.add("sign", cmd_sign, "add a signature to a bundle (the bundle id does not change)")
    p.add_argument("bundle")
    p.add_argument("--key", action="append", required=True, metavar="PRIVATE_KEY")
    p.add_argument("--passphrase-file", metavar="FILE")
    p.add_argument("--force", action="store_true", help="replace this key's existing signature")
    p.add_argument("--json", action="store_true")
