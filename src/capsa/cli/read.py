"""`capsa ls`, `capsa cat`, `capsa extract`, `capsa verify`: reading and checking bundles."""

from __future__ import annotations

import argparse
import json
import sys

import capsa

from ..errors import ExitCode
from ._common import Commands, emit_json, human, progress, trusted_keys

__all__ = ["register"]


def cmd_ls(args: argparse.Namespace) -> int:
    # Streamed, one member at a time: a production bundle lists 10^5-10^6 files.
    with capsa.open(args.bundle) as b:
        members = b.members()
        out = sys.stdout
        if args.json:
            head = json.dumps(
                {"bundle": str(b.path), "format": b.manifest.capsa, "id": b.id, "members": []},
                indent=2,
                sort_keys=True,
            )
            out.write(head[: head.rindex("[") + 1])  # the same text as one json.dumps(…, indent=2)
            for i, m in enumerate(members):
                item = json.dumps(vars(m), indent=2, sort_keys=True).replace("\n", "\n    ")
                out.write(("," if i else "") + "\n    " + item)
            out.write("\n  ]\n}\n" if members else "]\n}\n")
            return ExitCode.OK
        # Sizes, encoding and digest are the blob's: format each blob once, not each file.
        blobs = b.manifest.blobs
        cols = {
            d: (human(blobs[d].size), human(blobs[d].stored_size), blobs[d].encoding, d[7:19])
            for d in {m.digest for m in members}
        }
        header = ("ROLE", "SIZE", "STORED", "ENCODING", "DIGEST")
        widths = [len(h) for h in header]
        widths[0] = max([widths[0], *(len(m.role) for m in members)])
        for row in cols.values():
            widths[1:] = [max(w, len(c)) for w, c in zip(widths[1:], row, strict=True)]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths) + "  {}\n"
        out.write(fmt.format(*header, "PATH"))
        for m in members:
            out.write(fmt.format(m.role, *cols[m.digest], m.path))
    return ExitCode.OK


def cmd_cat(args: argparse.Namespace) -> int:
    with capsa.open(args.bundle) as b:
        try:
            b.copy_member(args.path, sys.stdout.buffer, offset=args.offset, length=args.length)
        finally:
            sys.stdout.buffer.flush()
    return ExitCode.OK


def cmd_extract(args: argparse.Namespace) -> int:
    with capsa.open(args.bundle) as b:
        written = b.extract(
            args.directory, args.paths or None, force=args.force, progress=progress(args)
        )
    if args.json:
        emit_json(
            {
                "bundle": args.bundle,
                "directory": args.directory,
                "extracted": [str(p) for p in written],
            }
        )
    elif not args.quiet:
        print(f"extracted {len(written)} files into {args.directory}")
    return ExitCode.OK


def cmd_fetch(args: argparse.Namespace) -> int:
    from ..bundle.external import external_paths

    with capsa.open(args.bundle) as b:
        wanted = args.paths or external_paths(b.manifest)
        written = (
            b.extract(args.directory, wanted, force=args.force, progress=progress(args))
            if wanted
            else []
        )
    if args.json:
        fetched = [str(p) for p in written]
        emit_json({"bundle": args.bundle, "directory": args.directory, "fetched": fetched})
    elif not args.quiet:
        print(f"fetched {len(written)} files into {args.directory}, every SHA-256 checked")
    return ExitCode.OK


def cmd_verify(args: argparse.Namespace) -> int:
    keys = trusted_keys(args)
    with capsa.open(args.bundle) as b:
        report = b.verify(
            level=args.level,
            keys=keys,
            require_signature=args.require_signature,
            jobs=args.jobs,
            progress=progress(args),
            deep=args.deep,
            threshold=args.threshold,
            require_all=args.require_all,
            external=args.external,
        )
        externals = sum(1 for blob in b.manifest.blobs.values() if blob.encoding == "external")
        stored_only = 0
        if not args.deep and report.level != "structure":
            blobs = b.manifest.blobs.values()
            stored_only = sum(1 for blob in blobs if blob.stored_digest is not None)
    if args.json:
        emit_json(
            {
                "bundle": report.bundle,
                "id": report.bundle_id,
                "level": report.level,
                "deep": report.deep,
                "threshold": report.threshold,
                "ok": report.ok,
                "blobs_checked": report.blobs_checked,
                "bytes_checked": report.bytes_checked,
                "external_checked": report.external_checked,
                "signatures": [vars(c) for c in report.signatures],
                "problems": [vars(p) for p in report.problems],
            }
        )
    else:
        for p in report.problems:
            print(f"capsa: {p.kind} problem: {p.where}: {p.what}", file=sys.stderr)
        if not args.quiet:
            for c in report.signatures:
                trust = "trusted" if c.trusted else "not trusted"
                print(
                    f"signature {c.keyid or '?'}: {c.status}, {trust}"
                    + (f" ({c.reason})" if c.reason and c.status != "valid" else "")
                )
            verdict = "OK" if report.ok else f"FAILED ({len(report.problems)} problems)"
            print(
                f"{report.bundle}: {verdict} at level {report.level}; "
                f"{report.blobs_checked} blobs, {human(report.bytes_checked)} checked; "
                f"id {report.bundle_id}"
            )
            if report.external_checked:
                print(f"{report.external_checked} external references checked")
            elif externals and report.ok:
                print(
                    f"note: {externals} external blobs were not checked; --external checks "
                    "their URLs (with --deep, their digests)"
                )
            if stored_only and report.ok:
                print(
                    f"note: {stored_only} compressed blobs were checked as stored (their signed "
                    "digests); --deep also decompresses them and checks their content"
                )
    if report.ok:
        return ExitCode.OK
    return max(p.as_error().exit_code for p in report.problems)


def register(c: Commands) -> None:
    p = c.add("ls", cmd_ls, "list the files in a bundle")
    p.add_argument("bundle")
    p.add_argument("--json", action="store_true")
    p = c.add("cat", cmd_cat, "write a member's bytes to standard output")
    p.add_argument("bundle")
    p.add_argument("path")
    p.add_argument("--offset", type=int, default=0, help="start at this byte")
    p.add_argument("--length", type=int, help="write at most this many bytes")
    p = c.add("extract", cmd_extract, "extract members (all by default) into a directory")
    p.add_argument("bundle")
    p.add_argument("paths", nargs="*", metavar="PATH")
    p.add_argument("-C", "--directory", default=".", metavar="DIR")
    p.add_argument("--force", action="store_true", help="replace existing files")
    p.add_argument("--json", action="store_true")
    p = c.add(
        "fetch",
        cmd_fetch,
        "download a bundle's external files (all, or PATHs) into a directory, checked by digest",
    )
    p.add_argument("bundle")
    p.add_argument("paths", nargs="*", metavar="PATH")
    p.add_argument("-C", "--directory", default=".", metavar="DIR")
    p.add_argument("--force", action="store_true", help="replace existing files")
    p.add_argument("--json", action="store_true")
    p = c.add("verify", cmd_verify, "check a bundle: structure, digest of every blob, signatures")
    p.add_argument("bundle")
    p.add_argument(
        "--level",
        choices=("structure", "fixity", "full"),
        default="full",
        help="structure; fixity (+ every digest); full (+ signatures, default)",
    )
    c.trust_options(p)
    p.add_argument(
        "--require-signature",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="fail unless a trusted key signed the bundle (default: when keys are given)",
    )
    p.add_argument(
        "--threshold",
        type=int,
        metavar="N",
        help="require valid signatures by at least N distinct trusted keys (default 1)",
    )
    p.add_argument(
        "--require-all",
        action="store_true",
        help="require a valid signature by every trusted key",
    )
    p.add_argument(
        "--deep",
        action="store_true",
        help="also decompress every compressed blob and check its content digest",
    )
    p.add_argument(
        "--external",
        action="store_true",
        help="also check that every external blob's URLs answer with its size (--deep: digest)",
    )
    p.add_argument("--jobs", type=int, default=2, metavar="N")
    p.add_argument("--json", action="store_true")
