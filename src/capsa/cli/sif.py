"""`capsa sif inspect`, `capsa sif verify`: SIF images."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import capsa

from ..errors import ExitCode, SignatureError
from ._common import Commands, emit_json, human, trusted_keys

__all__ = ["register"]


def _open_image(args: argparse.Namespace) -> tuple[Any, Callable[[], None]]:
    """The SIF file IMAGE, or with ``--member PATH`` the SIF stored in bundle IMAGE."""
    from ..containers.sif import open_sif, sif_from_file

    if not args.member:
        return open_sif(args.image)
    bundle = capsa.open(args.image)
    try:
        f = bundle.open_member(args.member)
        return sif_from_file(f, f.size, where=f"{args.image}: {args.member}"), bundle.close
    except BaseException:
        bundle.close()
        raise


def cmd_sif_inspect(args: argparse.Namespace) -> int:
    img, close = _open_image(args)
    try:
        info = img.inspect()
    finally:
        close()
    if args.json:
        emit_json(info)
        return ExitCode.OK
    print(f"SIF {args.image}: id {info['id']}, arch {info['arch']}, {len(info['objects'])} objects")
    for o in info["objects"]:
        extra = {
            k: v
            for k, v in o.items()
            if k in ("fs_type", "part_type", "arch", "hash_type", "entity", "format") and v
        }
        detail = " ".join(f"{k}={v}" for k, v in extra.items())
        print(
            f"  {o['id']:>3}  {o['type']:<13} group {o['group']:<2} {human(o['size']):>10}  "
            f"{o['name']}  {detail}".rstrip()
        )
        if o["type"] == "Deffile" and "content" in o:
            for line in o["content"].splitlines():
                print(f"         | {line}")
    return ExitCode.OK


def cmd_sif_verify(args: argparse.Namespace) -> int:
    keys = trusted_keys(args)
    img, close = _open_image(args)
    try:
        results = img.verify_signatures(keys)
    finally:
        close()
    valid = [r for r in results if r.status == "valid"]
    bad = [r for r in results if r.status == "invalid"]
    if args.json:
        emit_json(
            {
                "image": args.image,
                "ok": bool(valid) and not bad,
                "signatures": [vars(r) for r in results],
            }
        )
    elif not args.quiet:
        for r in results:
            print(
                f"signature object {r.descriptor_id} ({r.kind}, group {r.group}): {r.status}"
                + (f" — {r.reason}" if r.reason else "")
                + (f"; keys {', '.join(r.keyids)}" if r.keyids else "")
            )
    if bad:
        raise SignatureError(
            f"signature object {bad[0].descriptor_id} is invalid: {bad[0].reason}", where=args.image
        )
    if not valid:
        raise SignatureError(
            "no DSSE signature by a trusted key",
            where=args.image,
            hint="give the signer's public key with --key"
            if results
            else "the image is not signed",
        )
    return ExitCode.OK


def register(c: Commands) -> None:
    sif = c.sub.add_parser("sif", help="inspect and verify SIF container images")
    sif_sub = sif.add_subparsers(dest="sif_command", required=True, metavar="SIF_COMMAND")
    p = sif_sub.add_parser(
        "inspect", parents=[c.common], help="show a SIF image's header and objects"
    )
    p.set_defaults(func=cmd_sif_inspect)
    p.add_argument("image", help="a SIF file, or a bundle with --member")
    p.add_argument("--member", metavar="PATH", help="the SIF image at PATH inside bundle IMAGE")
    p.add_argument("--json", action="store_true")
    p = sif_sub.add_parser(
        "verify", parents=[c.common], help="check a SIF image's DSSE signatures as Apptainer does"
    )
    p.set_defaults(func=cmd_sif_verify)
    p.add_argument("image", help="a SIF file, or a bundle with --member")
    p.add_argument("--member", metavar="PATH", help="the SIF image at PATH inside bundle IMAGE")
    c.trust_options(p)
    p.add_argument("--json", action="store_true")
