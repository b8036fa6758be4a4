"""`capsa show`, `capsa history`: reading a bundle's provenance."""

from __future__ import annotations

import argparse
from typing import Any

import capsa

from ..errors import ExitCode
from ._common import Commands, emit_json, human, trusted_keys

__all__ = ["register"]


def cmd_show(args: argparse.Namespace) -> int:
    from ..views.summary import summarize

    with capsa.open(args.bundle) as b:
        doc = summarize(b, trusted_keys(args))
    status: int = ExitCode.OK
    if args.html:
        from .report import problems_exit, write_html

        page = write_html(args, args.html)
        status = problems_exit(page)
        if not args.json and not args.quiet:
            print(f"report written to {page.path}")
    if args.json:
        emit_json(doc)
        return status
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
        f"  size     {human(doc['content_size'])} content, {human(doc['stored_size'])} stored "
        f"(ratio {doc['compression_ratio']}), file {human(doc['file_size'])}"
    )
    for i in doc["images"]:
        origin = i.get("image_source") or i["image_from"]
        base = f", from {origin}" if origin else ""
        print(
            f"  image    {i['path']}  {human(i['size'])}  {i['arch'] or '?'}{base}  "
            f"sha256:{i['digest'][7:19]}  used by {', '.join(i['used_by']) or '-'}"
        )
    for st in doc["steps"]:
        host = "  (no image: not replayable)" if st["image"] is None else ""
        print(
            f"  step     {st['name']}: {st['command'][:70]}  → {', '.join(st['outputs']) or '-'}"
            + host
        )
    for role in ("input", "intermediate", "output", "other"):
        for f in doc["files"][role]:
            print(f"  {role:<8} {f['path']}  {human(f['size'])}")
    return status


SUMMARY_STEPS = 40
"""More steps than this and `capsa history` prints one entry per rule (--steps: every one)."""
SUMMARY_ORIGINS = 10


def _container(st: Any) -> str:
    if not st.image:
        return "no image: ran on the recording host's software, never replayed"
    image = st.image_path or st.image[:19]
    ident = ", ".join(
        x
        for x in (
            f"SIF {st.sif_id}" if st.sif_id else "",
            f"source {st.image_source}" if st.image_source else "",
            f"From: {st.image_from}" if st.image_from and not st.image_source else "",
        )
        if x
    )
    return f"container {st.image[7:19]} {image}" + (f" ({ident})" if ident else "")


def _print_steps(h: Any, *, full: bool) -> None:
    for o in h.origins:
        print(f"  origin   {o['path']}  {o['digest'][:19]}")
    for n, st in enumerate(h.steps, 1):
        print(f"  {n}. {st.name}: {' '.join(st.argv)}")
        print(f"       {_container(st)}")
        if full:
            print(
                f"       runtime {st.runtime}; exit {st.exit_code}; recorded {st.recorded or '?'}"
            )
            for k, v in sorted(st.env.items()):
                print(f"       env {k}={v}")
            for ref in st.inputs:
                print(f"       in  {ref['path']}  {ref['digest']}")
            for ref in st.outputs:
                print(f"       out {ref['path']}  {ref['digest']}")


def _clip(text: str, n: int = 160) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _print_by_rule(h: Any) -> None:
    """A big production in a screen: the first origins, then one entry per rule."""
    from ..views.history import by_rule

    for o in h.origins[:SUMMARY_ORIGINS]:
        print(f"  origin   {o['path']}  {o['digest'][:19]}")
    if len(h.origins) > SUMMARY_ORIGINS:
        print(f"  … and {len(h.origins) - SUMMARY_ORIGINS} more origin files")
    groups = by_rule(h)
    for n, (rule, members) in enumerate(groups, 1):
        first = members[0]
        argv = _clip(" ".join(first.argv))
        if len(members) == 1:
            print(f"  {n}. {first.name}: {argv}")
        else:
            print(f"  {n}. {rule}: {len(members)} steps ({first.name} … {members[-1].name})")
            print(f"       first: {argv}")
        images = {s.image for s in members if s.image}
        more = f" and {len(images) - 1} other images" if len(images) > 1 else ""
        print(f"       {_container(first)}{more}")
    print(f"{len(h.steps)} steps in {len(groups)} rules (--steps lists every step)")


def cmd_history(args: argparse.Namespace) -> int:
    import dataclasses

    from ..views.history import history_of, to_dot

    h = history_of(args.target, args.path)
    if args.graph:
        from .._internal.atomic import atomic_output

        with atomic_output(args.graph, force=args.force) as f:
            f.write(to_dot(h).encode())
    if args.json:
        emit_json(dataclasses.asdict(h))
        return ExitCode.OK
    print(f"history of {h.path} ({h.digest[:19]}) from {h.source}")
    if len(h.steps) > SUMMARY_STEPS and not (args.steps or args.full):
        _print_by_rule(h)
    else:
        _print_steps(h, full=args.full)
    if args.graph:
        print(f"lineage graph written to {args.graph}")
    return ExitCode.OK


def register(c: Commands) -> None:
    p = c.add("show", cmd_show, "one-screen summary of a bundle")
    p.add_argument("bundle")
    c.trust_options(p)
    p.add_argument(
        "--html", metavar="FILE.html", help="also write the report page (as `capsa report`)"
    )
    p.add_argument("--force", action="store_true", help="replace an existing --html file")
    p.add_argument("--json", action="store_true")
    p = c.add(
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
    p.add_argument(
        "--steps",
        action="store_true",
        help=f"every step, also when more than {SUMMARY_STEPS} are summarised by rule",
    )
    p.add_argument("--graph", metavar="FILE.dot", help="write the lineage as Graphviz DOT")
    p.add_argument("--force", action="store_true", help="replace an existing --graph file")
    p.add_argument("--json", action="store_true")
