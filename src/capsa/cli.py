"""The `capsa` command: a thin argparse layer over the public API.

Every failure is one line on stderr and a documented exit code (README "Exit codes");
``-v`` adds the traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import capsa

from ._cli_export import add_parsers as add_export_parsers
from .errors import Error, ExistsError, SignatureError, UsageError

__all__ = ["main"]

EXIT_OK = 0
EXIT_IO = 10
EXIT_INTERRUPTED = 130


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(n)  # pragma: no cover


def _progress(args: argparse.Namespace) -> bool | None:
    return False if args.quiet else None


def _emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _parse_role(text: str) -> tuple[str, str]:
    pattern, sep, role = text.rpartition("=")
    return (pattern, role) if sep else ("*", role)


def _pack_from_journal(args: argparse.Namespace) -> Any:
    from .lineage import pack_from_journal

    return pack_from_journal(
        args.output,
        args.paths,
        title=args.title,
        description=args.description,
        authors=args.author,
        license=args.license,
        created=args.created,
        level=args.level,
        sign=_signing_keys(args.sign, args),
        force=args.force,
        progress=_progress(args),
    )


def cmd_pack(args: argparse.Namespace) -> int:
    if args.from_journal:
        if args.role or args.identifier:
            raise UsageError("--role and --identifier are set from the journal with --from-journal")
        result = _pack_from_journal(args)
    else:
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
        authors=args.author,
        license=args.license,
        identifiers=identifiers,
        created=args.created,
        roles=[(p, r) for p, r in roles if p != "*"],
        default_role=default,
        level=args.level,
        sign=_signing_keys(args.sign, args),
        force=args.force,
        progress=_progress(args),
    )


def _report_pack(args: argparse.Namespace, result: Any) -> int:
    m = result.manifest
    stored = sum(b.stored_size for b in m.blobs.values())
    raw = sum(b.size for b in m.blobs.values())
    if args.json:
        _emit_json(
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
            f"packed {len(m.files)} files ({len(m.blobs)} blobs{steps}, {_human(raw)} → "
            f"{_human(stored)}) into {result.path}"
        )
        print(f"bundle id {result.bundle_id}")
    return EXIT_OK


def cmd_ls(args: argparse.Namespace) -> int:
    with capsa.open(args.bundle) as b:
        members = b.members()
        if args.json:
            _emit_json(
                {
                    "bundle": str(b.path),
                    "id": b.id,
                    "format": b.manifest.capsa,
                    "members": [vars(m) for m in members],
                }
            )
            return EXIT_OK
        rows = [
            (m.role, _human(m.size), _human(m.stored_size), m.encoding, m.digest[7:19], m.path)
            for m in members
        ]
        header = ("ROLE", "SIZE", "STORED", "ENCODING", "DIGEST", "PATH")
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
        for r in [header, *rows]:
            print("  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=True)) + "  " + r[5])
    return EXIT_OK


def cmd_cat(args: argparse.Namespace) -> int:
    if args.offset < 0 or (args.length is not None and args.length < 0):
        raise UsageError("--offset and --length must not be negative")
    import hashlib

    from .digest import format_digest
    from .errors import IntegrityError

    with capsa.open(args.bundle) as b, b.open_member(args.path) as f:
        whole = not args.offset and args.length is None
        sha = hashlib.sha256() if whole else None  # a whole member is checked as it streams
        if args.offset:
            f.seek(args.offset)
        remaining = args.length if args.length is not None else f.size
        out = sys.stdout.buffer
        while remaining > 0 and (chunk := f.read(min(4 << 20, remaining))):
            out.write(chunk)
            if sha is not None:
                sha.update(chunk)
            remaining -= len(chunk)
        out.flush()
        expected = b.manifest.files[args.path].digest
        if sha is not None and format_digest(sha.hexdigest()) != expected:
            raise IntegrityError(
                "digest mismatch: the bytes written are damaged",
                where=f"{args.bundle}: {args.path}",
                expected=expected,
            )
    return EXIT_OK


def cmd_extract(args: argparse.Namespace) -> int:
    with capsa.open(args.bundle) as b:
        written = b.extract(
            args.directory, args.paths or None, force=args.force, progress=_progress(args)
        )
    if args.json:
        _emit_json(
            {
                "bundle": args.bundle,
                "directory": args.directory,
                "extracted": [str(p) for p in written],
            }
        )
    elif not args.quiet:
        print(f"extracted {len(written)} files into {args.directory}")
    return EXIT_OK


def _signing_keys(paths: list[str], args: argparse.Namespace) -> list[Any]:
    from ._cli_keys import signing_keys

    return signing_keys(paths, getattr(args, "passphrase_file", None))


def _trusted_keys(args: argparse.Namespace) -> list[Any]:
    from .signing import load_trusted_keys

    return load_trusted_keys(args.key, args.trusted_keys)


def cmd_keygen(args: argparse.Namespace) -> int:
    from ._cli_keys import passphrase as read_passphrase
    from .keys import keygen

    passphrase = read_passphrase(args.passphrase_file)
    priv, pub, keyid = keygen(args.output, passphrase=passphrase or None, force=args.force)
    if args.json:
        _emit_json({"private_key": str(priv), "public_key": str(pub), "keyid": keyid})
    elif not args.quiet:
        print(f"wrote {priv} (private, mode 0600{', encrypted' if passphrase else ''}) and {pub}")
        print(f"key id {keyid}")
    return EXIT_OK


def cmd_sign(args: argparse.Namespace) -> int:
    from .signing import sign_bundle

    keyids = sign_bundle(args.bundle, _signing_keys(args.key, args), replace=args.force)
    if args.json:
        _emit_json({"bundle": args.bundle, "signed_by": keyids})
    elif not args.quiet:
        for k in keyids:
            print(f"{args.bundle}: signed by {k}")
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    keys = _trusted_keys(args)
    with capsa.open(args.bundle) as b:
        report = b.verify(
            level=args.level,
            keys=keys,
            require_signature=args.require_signature,
            jobs=args.jobs,
            progress=_progress(args),
            deep=args.deep,
        )
    if args.json:
        _emit_json(
            {
                "bundle": report.bundle,
                "id": report.bundle_id,
                "level": report.level,
                "ok": report.ok,
                "blobs_checked": report.blobs_checked,
                "bytes_checked": report.bytes_checked,
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
                f"{report.blobs_checked} blobs, {_human(report.bytes_checked)} checked; "
                f"id {report.bundle_id}"
            )
    if report.ok:
        return EXIT_OK
    return max(p.as_error().exit_code for p in report.problems)


def _open_image(args: argparse.Namespace) -> tuple[Any, Callable[[], None]]:
    """The SIF file IMAGE, or with ``--member PATH`` the SIF stored in bundle IMAGE."""
    from .sif import open_sif, sif_from_file

    if not args.member:
        return open_sif(args.image)
    bundle = capsa.open(args.image)
    try:
        f = bundle.open_member(args.member)
        return sif_from_file(f, f.size, where=f"{args.image}: {args.member}"), bundle.close
    except BaseException:
        bundle.close()
        raise


def _per_path(values: list[str], what: str) -> dict[str | None, str]:
    """``[PATH=]VALUE`` options: None is the default for every output."""
    out: dict[str | None, str] = {}
    for v in values:
        path, sep, value = v.rpartition("=")
        out[path if sep else None] = value
    return out


def _policies(args: argparse.Namespace) -> dict[str, Any]:
    from .manifest import ComparePolicy

    method = _per_path(args.compare, "--compare")
    rtol, atol = _per_path(args.rtol, "--rtol"), _per_path(args.atol, "--atol")
    ignores: dict[str | None, list[str]] = {}
    for v in args.ignore_attr:
        path, sep, attr = (
            v.partition("=") if "=" in v and not v.startswith(("/", "*")) else ("", "", v)
        )
        ignores.setdefault(path if sep else None, []).append(attr)
    policies = {}
    for out in args.output:

        def pick(d: dict[str | None, Any], out: str = out) -> Any:
            return d.get(out, d.get(None))

        m = pick(method) or ("hdf5" if pick(ignores) or pick(rtol) or pick(atol) else None)
        if m is None:
            continue
        if m not in ("bytes", "hdf5"):
            raise UsageError(f"unknown comparison {m!r}", hint="use bytes or hdf5")
        try:
            policies[out] = ComparePolicy(
                method=m,  # type: ignore[arg-type]
                ignore_attrs=tuple(ignores.get(out, ignores.get(None, []))),
                rtol=pick(rtol),
                atol=pick(atol),
            )
        except ValueError as e:
            raise UsageError(f"invalid comparison policy for {out}: {e}".splitlines()[0]) from e
    return policies


def cmd_run(args: argparse.Namespace) -> int:
    from .record import run_step

    argv = args.command[1:] if args.command[:1] == ["--"] else args.command
    env = {}
    for kv in args.env:
        k, sep, v = kv.partition("=")
        if not sep or not k:
            raise UsageError(f"--env {kv!r} is not KEY=VALUE")
        env[k] = v
    outcome = run_step(
        args.image,
        argv,
        inputs=args.input,
        outputs=args.output,
        name=args.name,
        env=env,
        compare=_policies(args),
        runtime=args.runtime,
        network=args.network,
        timeout=args.timeout,
        provenance=args.provenance,
        echo=not args.json,
    )
    e = outcome.entry
    if args.json:
        _emit_json(e.model_dump(mode="json", exclude_none=True))
    elif not args.quiet:
        print(
            f"capsa: recorded step {e.step.name!r} (#{e.seq}): {e.status}"
            + (f" ({e.reason})" if e.reason else "")
            + f"; {len(e.step.outputs)} outputs",
            file=sys.stderr,
        )
        if e.undeclared_outputs:
            print(
                "capsa: undeclared outputs recorded: " + ", ".join(e.undeclared_outputs),
                file=sys.stderr,
            )
    if outcome.exit_code != 0:
        return outcome.exit_code
    return EXIT_OK if e.status == "ok" else 1


def cmd_log(args: argparse.Namespace) -> int:
    from .journal import Journal, find_project

    entries = Journal(find_project()).entries()
    if args.json:
        _emit_json([e.model_dump(mode="json", exclude_none=True) for e in entries])
        return EXIT_OK
    for e in entries:
        outs = ", ".join(o.path for o in e.step.outputs) or "-"
        print(
            f"#{e.seq:<3} {e.step.name:<16} {e.status:<6} image {e.step.image[7:19]}  "
            f"{' '.join(e.step.argv)}  → {outs}"
        )
    return EXIT_OK


def _print_replay(report: Any) -> None:
    print(
        f"replayed {report.bundle_id} ({len(report.steps)} steps, {report.mode} mode, "
        f"runtime {report.runtime} {report.runtime_version})"
    )
    for st in report.steps:
        extra = f" — {st.reason}" if st.reason else ""
        print(f"step {st.name}: {st.status}{extra} ({st.duration_s:.1f} s)")
        if st.stderr_tail and st.status != "ok":
            for line in st.stderr_tail.rstrip().splitlines()[-5:]:
                print(f"    | {line}")
        for o in st.outputs:
            print(f"  {o.verdict:<11} {o.path}" + (f"  ({o.note})" if o.note else ""))
            for d in o.differences[:20]:
                print(f"      {d.get('summary') or d}")
            for d in o.ignored[:20]:
                print(f"      ignored: {d.get('summary') or d}")
    counts = report.counts()
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    print(f"verdict: {summary or 'nothing to compare'} → {'OK' if report.ok else 'NOT REPRODUCED'}")
    if report.workdir:
        print(f"work directories kept in {report.workdir}")


def cmd_replay(args: argparse.Namespace) -> int:
    import dataclasses

    from .replay import EXIT_MISMATCH, replay

    attest_keys = _signing_keys([args.attest], args) if args.attest else []
    if args.attest_output and os.path.lexists(args.attest_output) and not args.force:
        raise ExistsError(
            "attestation file exists", where=args.attest_output, hint="use --force to replace it"
        )
    report = replay(
        args.bundle,
        steps=args.step,
        workdir=args.workdir,
        runtime=args.runtime,
        jobs=args.jobs,
        keep=args.keep,
        isolated=args.isolated,
        keys=_trusted_keys(args),
        allow_unsigned=args.allow_unsigned,
        timeout=args.timeout,
        progress=_progress(args),
    )
    doc = dataclasses.asdict(report) | {"ok": report.ok, "counts": report.counts()}
    if args.attest:
        from .attest import write_replay_attestation

        out = write_replay_attestation(
            doc, args.bundle, attest_keys, args.attest_output, force=args.force
        )
        if not args.json and not args.quiet:
            print(f"signed replay attestation written to {out}")
    if args.json:
        _emit_json(doc)
    elif not args.quiet:
        _print_replay(report)
    return EXIT_OK if report.ok else EXIT_MISMATCH


def cmd_show(args: argparse.Namespace) -> int:
    from .summary import summarize

    with capsa.open(args.bundle) as b:
        doc = summarize(b, _trusted_keys(args))
    if args.json:
        _emit_json(doc)
        return EXIT_OK
    print(f"{doc['title'] or '(untitled)'} — {doc['bundle']}")
    print(f"  id       {doc['id']}  (format {doc['format']})")
    if doc["authors"]:
        print(f"  authors  {', '.join(doc['authors'])}")
    meta = [x for x in (doc["license"], doc["created"], *doc["identifiers"]) if x]
    if meta:
        print(f"  about    {'; '.join(meta)}")
    sigs = doc["signatures"] or [{"keyid": "none", "status": "unsigned", "trusted": False}]
    for sgn in sigs:
        print(f"  signed   {sgn['keyid']}: {sgn['status']}{', trusted' if sgn['trusted'] else ''}")
    print(
        f"  size     {_human(doc['content_size'])} content, {_human(doc['stored_size'])} stored "
        f"(ratio {doc['compression_ratio']}), file {_human(doc['file_size'])}"
    )
    for i in doc["images"]:
        base = f", from {i['image_from']}" if i["image_from"] else ""
        print(
            f"  image    {i['path']}  {_human(i['size'])}  {i['arch'] or '?'}{base}  "
            f"sha256:{i['digest'][7:19]}  used by {', '.join(i['used_by']) or '-'}"
        )
    for st in doc["steps"]:
        print(f"  step     {st['name']}: {st['command'][:70]}  → {', '.join(st['outputs']) or '-'}")
    for role in ("input", "intermediate", "output", "other"):
        for f in doc["files"][role]:
            print(f"  {role:<8} {f['path']}  {_human(f['size'])}")
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    import dataclasses

    from .history import bundle_history, journal_history, to_dot

    target = Path(args.target)
    if target.suffix != ".capsa" and target.is_file() and args.path is None:
        h = journal_history(target)
    else:
        with capsa.open(args.target) as b:
            h = bundle_history(b, args.path)
    if args.graph:
        from ._atomic import atomic_output

        with atomic_output(args.graph, force=args.force) as f:
            f.write(to_dot(h).encode())
    if args.json:
        _emit_json(dataclasses.asdict(h))
        return EXIT_OK
    print(f"history of {h.path} ({h.digest[:19]}) from {h.source}")
    for o in h.origins:
        print(f"  origin   {o['path']}  {o['digest'][:19]}")
    for n, st in enumerate(h.steps, 1):
        image = st.image_path or st.image[:19]
        ident = ", ".join(
            x
            for x in (
                f"SIF {st.sif_id}" if st.sif_id else "",
                f"From: {st.image_from}" if st.image_from else "",
            )
            if x
        )
        print(f"  {n}. {st.name}: {' '.join(st.argv)}")
        print(f"       container {st.image[7:19]} {image}" + (f" ({ident})" if ident else ""))
        if args.full:
            print(
                f"       runtime {st.runtime}; exit {st.exit_code}; recorded {st.recorded or '?'}"
            )
            for k, v in sorted(st.env.items()):
                print(f"       env {k}={v}")
            for ref in st.inputs:
                print(f"       in  {ref['path']}  {ref['digest']}")
            for ref in st.outputs:
                print(f"       out {ref['path']}  {ref['digest']}")
    if args.graph:
        print(f"lineage graph written to {args.graph}")
    return EXIT_OK


def cmd_sif_inspect(args: argparse.Namespace) -> int:
    img, close = _open_image(args)
    try:
        info = img.inspect()
    finally:
        close()
    if args.json:
        _emit_json(info)
        return EXIT_OK
    print(f"SIF {args.image}: id {info['id']}, arch {info['arch']}, {len(info['objects'])} objects")
    for o in info["objects"]:
        extra = {
            k: v
            for k, v in o.items()
            if k in ("fs_type", "part_type", "arch", "hash_type", "entity", "format") and v
        }
        detail = " ".join(f"{k}={v}" for k, v in extra.items())
        print(
            f"  {o['id']:>3}  {o['type']:<13} group {o['group']:<2} {_human(o['size']):>10}  "
            f"{o['name']}  {detail}".rstrip()
        )
        if o["type"] == "Deffile" and "content" in o:
            for line in o["content"].splitlines():
                print(f"         | {line}")
    return EXIT_OK


def cmd_sif_verify(args: argparse.Namespace) -> int:
    keys = _trusted_keys(args)
    img, close = _open_image(args)
    try:
        results = img.verify_signatures(keys)
    finally:
        close()
    valid = [r for r in results if r.status == "valid"]
    bad = [r for r in results if r.status == "invalid"]
    if args.json:
        _emit_json(
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
    return EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    from . import h5compare

    policy = h5compare.make_policy(args.ignore_attr, args.rtol, args.atol)
    with h5compare.open_source(args.a) as a, h5compare.open_source(args.b) as b:
        result = h5compare.compare(
            a, b, policy, max_indices=args.max_indices, names=(args.a, args.b)
        )
    if args.json:
        _emit_json(result.as_dict())
    elif not args.quiet:
        print("\n".join(result.report()))
    return h5compare.EXIT_DIFFERENT if result.verdict == "different" else EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    def flags(default: object) -> argparse.ArgumentParser:
        p = argparse.ArgumentParser(add_help=False)
        p.add_argument(
            "-v",
            "--verbose",
            action="store_true",
            default=default,
            help="show tracebacks on errors",
        )
        p.add_argument(
            "-q", "--quiet", action="store_true", default=default, help="no progress, no summary"
        )
        return p

    # A subcommand's defaults would overwrite `capsa -v CMD`; only the top level sets them.
    common = flags(argparse.SUPPRESS)
    parser = argparse.ArgumentParser(
        prog="capsa",
        parents=[flags(False)],
        description="Seal an analysis (SIF images, HDF5 data, provenance) into one signed file.",
        epilog="exit codes: 0 ok, 1 replay/diff found differences (or a recorded command failed), "
        "2 usage, 3 format, 4 integrity, 5 signature, 6 runtime, 7 replay error, "
        "8 destination exists, 9 not found, 10 I/O error, 130 interrupted",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"capsa {capsa.__version__} (format {capsa.FORMAT_VERSION})",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, func: Callable[[argparse.Namespace], int], help: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help, description=help)
        p.set_defaults(func=func)
        return p

    def trust_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--key",
            action="append",
            default=[],
            metavar="PUBLIC_KEY",
            help="a trusted public key (PEM or OpenSSH); repeatable",
        )
        p.add_argument(
            "--trusted-keys",
            action="append",
            default=[],
            metavar="DIR",
            help="trust every *.pub / *.pem key in DIR",
        )

    p = add("pack", cmd_pack, "pack files and directories into a bundle")
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
    p.add_argument("--title", default="")
    p.add_argument("--description", default="")
    p.add_argument("--author", action="append", default=[], metavar="NAME")
    p.add_argument("--license", metavar="SPDX")
    p.add_argument("--identifier", action="append", default=[], metavar="SCHEME:VALUE")
    p.add_argument(
        "--created",
        metavar="YYYY-MM-DDTHH:MM:SSZ",
        help="creation time to record (default: SOURCE_DATE_EPOCH if set, else none)",
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

    p = add("ls", cmd_ls, "list the files in a bundle")
    p.add_argument("bundle")
    p.add_argument("--json", action="store_true")

    p = add("cat", cmd_cat, "write a member's bytes to standard output")
    p.add_argument("bundle")
    p.add_argument("path")
    p.add_argument("--offset", type=int, default=0, help="start at this byte")
    p.add_argument("--length", type=int, help="write at most this many bytes")

    p = add("extract", cmd_extract, "extract members (all by default) into a directory")
    p.add_argument("bundle")
    p.add_argument("paths", nargs="*", metavar="PATH")
    p.add_argument("-C", "--directory", default=".", metavar="DIR")
    p.add_argument("--force", action="store_true", help="replace existing files")
    p.add_argument("--json", action="store_true")

    p = add("verify", cmd_verify, "check a bundle: structure, digest of every blob, signatures")
    p.add_argument("bundle")
    p.add_argument(
        "--level",
        choices=("structure", "fixity", "full"),
        default="full",
        help="structure; fixity (+ every digest); full (+ signatures, default)",
    )
    trust_options(p)
    p.add_argument(
        "--require-signature",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="fail unless a trusted key signed the bundle (default: when keys are given)",
    )
    p.add_argument(
        "--deep",
        action="store_true",
        help="also decompress every compressed blob and check its content digest",
    )
    p.add_argument("--jobs", type=int, default=2, metavar="N")
    p.add_argument("--json", action="store_true")

    p = add("run", cmd_run, "run a command in a container image and record it as a step")
    p.add_argument("--image", required=True, metavar="IMG.sif")
    p.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="PATH",
        help="a file the step reads (hashed before the run); repeatable",
    )
    p.add_argument(
        "--output",
        action="append",
        default=[],
        metavar="PATH",
        help="a file the step writes (hashed after the run); repeatable",
    )
    p.add_argument("--name", help="step name (default stepN)")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument(
        "--runtime", default="auto", choices=("auto", "apptainer", "singularity", "bwrap")
    )
    p.add_argument("--network", action="store_true", help="allow network access (off by default)")
    p.add_argument("--timeout", type=float, metavar="SECONDS")
    p.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="[PATH=]bytes|hdf5",
        help="how replay compares the outputs (default: identical bytes)",
    )
    p.add_argument(
        "--ignore-attr",
        action="append",
        default=[],
        metavar="[PATH=]OBJ@ATTR",
        help="HDF5 attribute allowed to differ, e.g. /@kid or *@kid",
    )
    p.add_argument("--rtol", action="append", default=[], metavar="[PATH=]X")
    p.add_argument("--atol", action="append", default=[], metavar="[PATH=]X")
    p.add_argument(
        "--provenance",
        action="append",
        default=[],
        metavar="FILE",
        help="attach the tool's own provenance log (ctapipe, km3pipe .prov.json)",
    )
    p.add_argument("--json", action="store_true")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND ARGS...")

    p = add(
        "replay", cmd_replay, "re-run a bundle's steps in their images and compare every output"
    )
    p.add_argument("bundle")
    p.add_argument(
        "--step",
        action="append",
        default=[],
        metavar="NAME",
        help="replay only this step (repeatable; default all)",
    )
    p.add_argument("--workdir", metavar="DIR", help="where step work directories are made")
    p.add_argument(
        "--runtime", default="auto", choices=("auto", "apptainer", "singularity", "bwrap")
    )
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="independent steps in parallel")
    p.add_argument("--keep", action="store_true", help="keep the work directories")
    p.add_argument(
        "--isolated",
        action="store_true",
        help="feed each step the recorded inputs instead of replayed ones",
    )
    trust_options(p)
    p.add_argument(
        "--allow-unsigned",
        action="store_true",
        help="replay without checking signatures (fixity is still checked)",
    )
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="per step (default none)")
    p.add_argument(
        "--attest",
        metavar="PRIVATE_KEY",
        help="write the report as a signed DSSE in-toto attestation",
    )
    p.add_argument("--attest-output", metavar="FILE")
    p.add_argument("--passphrase-file", metavar="FILE")
    p.add_argument("--force", action="store_true", help="replace an existing attestation file")
    p.add_argument("--json", action="store_true")

    p = add("show", cmd_show, "one-screen summary of a bundle")
    p.add_argument("bundle")
    trust_options(p)
    p.add_argument("--json", action="store_true")

    p = add(
        "history", cmd_history, "how a file was made: origin inputs and every step, oldest first"
    )
    p.add_argument(
        "target",
        metavar="BUNDLE|FILE",
        help="a bundle (with PATH), or a file on disk looked up in the local journal",
    )
    p.add_argument(
        "path", nargs="?", metavar="PATH", help="file in the bundle (default: its output)"
    )
    p.add_argument("--full", action="store_true", help="also env, digests, runtime")
    p.add_argument("--graph", metavar="FILE.dot", help="write the lineage as Graphviz DOT")
    p.add_argument("--force", action="store_true", help="replace an existing --graph file")
    p.add_argument("--json", action="store_true")

    p = add("log", cmd_log, "list the steps recorded in this work directory")
    p.add_argument("--json", action="store_true")

    p = add("keygen", cmd_keygen, "write a new Ed25519 key pair NAME.key / NAME.pub")
    p.add_argument("-o", "--output", required=True, metavar="NAME")
    p.add_argument(
        "--passphrase-file",
        metavar="FILE",
        help="encrypt the private key with this passphrase (or set CAPSA_PASSPHRASE)",
    )
    p.add_argument("--force", action="store_true", help="replace existing key files")
    p.add_argument("--json", action="store_true")

    p = add("sign", cmd_sign, "add a signature to a bundle (the bundle id does not change)")
    p.add_argument("bundle")
    p.add_argument("--key", action="append", required=True, metavar="PRIVATE_KEY")
    p.add_argument("--passphrase-file", metavar="FILE")
    p.add_argument("--force", action="store_true", help="replace this key's existing signature")
    p.add_argument("--json", action="store_true")

    p = add("diff", cmd_diff, "compare the content of two HDF5 files")
    p.epilog = (
        "B is the reference: 'missing' = only in B, 'extra' = only in A, relative "
        "differences are relative to B. A or B may be BUNDLE.capsa:MEMBER. Exit codes: "
        "0 identical or equivalent, 1 different, 3 not HDF5, 9 no such file."
    )
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")
    p.add_argument(
        "--ignore-attr",
        action="append",
        default=[],
        metavar="OBJ@ATTR",
        help="an attribute allowed to differ, e.g. /@kid, or *@kid at any object",
    )
    p.add_argument("--rtol", metavar="X", help="relative tolerance for floating-point values")
    p.add_argument("--atol", metavar="X", help="absolute tolerance (also for integers)")
    p.add_argument(
        "--max-indices",
        type=int,
        default=10,
        metavar="N",
        help="differing indices to list per dataset (default 10)",
    )
    p.add_argument("--json", action="store_true")

    sif = sub.add_parser("sif", help="inspect and verify SIF container images")
    sif_sub = sif.add_subparsers(dest="sif_command", required=True, metavar="SIF_COMMAND")
    p = sif_sub.add_parser(
        "inspect", parents=[common], help="show a SIF image's header and objects"
    )
    p.set_defaults(func=cmd_sif_inspect)
    p.add_argument("image", help="a SIF file, or a bundle with --member")
    p.add_argument("--member", metavar="PATH", help="the SIF image at PATH inside bundle IMAGE")
    p.add_argument("--json", action="store_true")
    p = sif_sub.add_parser(
        "verify", parents=[common], help="check a SIF image's DSSE signatures as Apptainer does"
    )
    p.set_defaults(func=cmd_sif_verify)
    p.add_argument("image", help="a SIF file, or a bundle with --member")
    p.add_argument("--member", metavar="PATH", help="the SIF image at PATH inside bundle IMAGE")
    trust_options(p)
    p.add_argument("--json", action="store_true")
    add_export_parsers(sub, common, trust_options)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except Error as e:
        if args.verbose:
            traceback.print_exc()
        print(f"capsa: error: {e.diagnostics()}", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:
        # The reader went away (`capsa cat ... | head`): not an error worth a message.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        print("capsa: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as e:
        if args.verbose:
            traceback.print_exc()
        where = f"{e.filename}: " if e.filename else ""
        print(f"capsa: error: {where}{e.strerror or e}", file=sys.stderr)
        return EXIT_IO
