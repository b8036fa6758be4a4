"""`capsa image import|inspect|cache`: making SIF images, what is inside them, the cache of
unpacked images."""

from __future__ import annotations

import argparse
import re
import time
from typing import Any

from ..errors import ExitCode, UsageError
from ._common import Commands, emit_json, human

__all__ = ["parse_age", "register"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> float:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w`` (a bare number is days) in seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if not m:
        raise UsageError(f"not a duration: {text!r}", hint="use e.g. 30d, 12h, 90m")
    return float(m.group(1)) * _UNITS[m.group(2) or "d"]


def cmd_image_import(args: argparse.Namespace) -> int:
    from ..containers.image import import_image

    r = import_image(args.source, args.output, force=args.force, compressor=args.compressor)
    made = f"imported {r.reference} ({r.digest or 'no digest'}) into {r.path}"
    return _report_image(args, r, made, f"{len(r.labels)} labels, ")


def _report_image(args: argparse.Namespace, r: Any, made: str, labels: str = "") -> int:
    if args.json:
        emit_json(vars(r) | {"seconds": round(r.seconds, 3)})
    elif not args.quiet:
        print(made)
        print(
            f"  {human(r.size)} (squashfs {human(r.squashfs_size)}), {len(r.env)} env "
            f"variables, {labels}{r.packages} SBOM components, {r.seconds:.1f} s"
        )
    return ExitCode.OK


def cmd_image_build(args: argparse.Namespace) -> int:
    from ..containers.image import build_image

    r = build_image(args.recipe, args.output, force=args.force, compressor=args.compressor)
    return _report_image(args, r, f"built {args.recipe} into {r.path}")


def _output_options(p: argparse.ArgumentParser) -> None:
    """What import and build share: the SIF they write and how."""
    p.add_argument("-o", "--output", required=True, metavar="OUT.sif")
    p.add_argument("--compressor", choices=("gzip", "zstd", "xz"), default="gzip")
    p.add_argument("--force", action="store_true", help="replace OUT.sif")
    p.add_argument("--json", action="store_true")


def cmd_image_inspect(args: argparse.Namespace) -> int:
    from ..containers.image.describe import describe
    from .sif import _open_image, cmd_sif_inspect

    img, close = _open_image(args)
    try:
        info = describe(img)
    finally:
        close()
    if args.json:
        emit_json(info)
        return ExitCode.OK
    cmd_sif_inspect(args)
    src = info["source"]
    if src:
        print(f"source: {src.get('reference', '?')} {src.get('digest', '')}".rstrip())
    if info["os"]:
        print(f"os: {info['os']}")
    for e in info["env"]:
        print(f"env: {e}")
    for k, v in info["labels"].items():
        print(f"label: {k}={v}")
    if info["packages"]:
        print(f"packages ({len(info['packages'])}, SBOM {info['sbom_format']}):")
        for name, version in info["packages"]:
            print(f"  {name} {version}")
    if info["python"]:
        print(f"python ({len(info['python'])}):")
        for name, version in info["python"]:
            print(f"  {name}=={version}")
    return ExitCode.OK


def cmd_cache_ls(args: argparse.Namespace) -> int:
    from ..containers.runtime.cache import ImageCache

    cache = ImageCache()
    entries = cache.entries()
    if args.json:
        emit_json(
            [
                {
                    "digest": e.digest,
                    "path": str(e.path),
                    "size": e.size,
                    "last_used": e.last_used,
                    "complete": e.complete,
                }
                for e in entries
            ]
        )
        return ExitCode.OK
    now = time.time()
    for e in entries:
        age = max(0.0, now - e.last_used) / 86400
        label = e.digest[:19] if e.complete else "(incomplete)"
        print(f"{label:<20} {human(e.size):>10}  used {age:.1f} days ago  {e.path}")
    if not args.quiet:
        total = sum(e.size for e in entries)
        print(f"{len(entries)} unpacked images, {human(total)} in {cache.root}")
    return ExitCode.OK


def cmd_cache_prune(args: argparse.Namespace) -> int:
    from ..containers.runtime.cache import ImageCache

    older = parse_age(args.older_than) if args.older_than else None
    removed = ImageCache().prune(older)
    if args.json:
        emit_json([{"digest": e.digest, "path": str(e.path), "size": e.size} for e in removed])
    elif not args.quiet:
        print(f"removed {len(removed)} unpacked images, {human(sum(e.size for e in removed))}")
    return ExitCode.OK


def register(c: Commands) -> None:
    image = c.sub.add_parser("image", help="import SIF images, inspect them, clean the cache")
    sub = image.add_subparsers(dest="image_command", required=True, metavar="IMAGE_COMMAND")
    p = sub.add_parser(
        "import",
        parents=[c.common],
        help="make a SIF from a docker/OCI archive, an OCI layout, a directory or a tar",
    )
    p.set_defaults(func=cmd_image_import)
    p.add_argument(
        "source",
        help="docker-archive:FILE.tar, oci-archive:FILE.tar[:TAG], oci:DIR[:TAG], dir:ROOTFS "
        "or tar:ROOTFS.tar",
    )
    _output_options(p)
    p = sub.add_parser(
        "build",
        parents=[c.common],
        help="build a SIF from a recipe: Debian packages, hashed pip requirements, files, env",
    )
    p.set_defaults(func=cmd_image_build)
    p.add_argument("recipe", help="a recipe TOML file (README: capsa image build)")
    _output_options(p)
    p = sub.add_parser(
        "inspect",
        parents=[c.common],
        help="sif inspect, plus the software inside: OS, packages, labels, env, source",
    )
    p.set_defaults(func=cmd_image_inspect)
    p.add_argument("image", help="a SIF file, or a bundle with --member")
    p.add_argument("--member", metavar="PATH", help="the SIF image at PATH inside bundle IMAGE")
    p.add_argument("--json", action="store_true")
    cache = sub.add_parser("cache", help="the cache of unpacked images (bwrap, podman)")
    csub = cache.add_subparsers(dest="cache_command", required=True, metavar="CACHE_COMMAND")
    p = csub.add_parser("ls", parents=[c.common], help="list unpacked images and their sizes")
    p.set_defaults(func=cmd_cache_ls)
    p.add_argument("--json", action="store_true")
    p = csub.add_parser("prune", parents=[c.common], help="remove unpacked images")
    p.set_defaults(func=cmd_cache_prune)
    p.add_argument(
        "--older-than", metavar="D", help="only those unused for D (30d, 12h, 90m; default: all)"
    )
    p.add_argument("--json", action="store_true")
