"""`capsa report`: one self-contained HTML page about a bundle and its replay."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import TYPE_CHECKING

from ..bundle.verify import LEVELS
from ..errors import ExitCode
from ._common import Commands, emit_json, progress, trusted_keys

if TYPE_CHECKING:
    from ..replay.report import ReplayReport
    from ..views.report import ReportResult

__all__ = ["register", "write_html"]

LAYOUTS = ("auto", "dot", "builtin")
"""Graphviz dot when it works (auto), dot or fail, or the built-in layered layout."""


def write_html(
    args: argparse.Namespace, path: str, replay: ReplayReport | None = None
) -> ReportResult:
    """Write the report of ``args.bundle`` to ``path`` (shared by report, replay --html and
    show --html): signatures checked against --key/--trusted-keys, verified at --level."""
    import capsa

    from ..views.report import write_report

    with capsa.open(args.bundle) as b:
        return write_report(
            path,
            b,
            keys=trusted_keys(args),
            trust=[("--key", k) for k in args.key]
            + [("--trusted-keys", d) for d in args.trusted_keys],
            replay=replay,
            level=getattr(args, "level", "full"),
            layout=getattr(args, "layout", "auto"),
            force=args.force,
            progress=progress(args),
        )


def cmd_report(args: argparse.Namespace) -> int:
    from ..views.report import load_replay

    replay = load_replay(args.replay) if args.replay else None
    result = write_html(args, args.output, replay)
    if args.json:
        emit_json(dataclasses.asdict(result))
    elif not args.quiet:
        print(f"report written to {result.path} ({result.steps} steps, layout: {result.layout})")
    return problems_exit(result)


def problems_exit(result: ReportResult) -> int:
    """OK, or — the page is written and lists them — the exit code `capsa verify` gives for the
    first problem verification found, with one line on stderr."""
    if not result.problems:
        return ExitCode.OK
    from ..bundle.verify import Problem

    first = Problem(**result.problems[0])
    n = len(result.problems)
    print(
        f"capsa: error: {first.where}: {first.what} "
        f"({n} problem{'s' if n > 1 else ''}, listed in {result.path})",
        file=sys.stderr,
    )
    return first.as_error().exit_code


def register(c: Commands) -> None:
    p = c.add("report", cmd_report, "one self-contained HTML page about a bundle and its replay")
    p.add_argument("bundle")
    p.add_argument(
        "--replay", metavar="REPORT.json", help="the verdicts of `capsa replay --json`, to show"
    )
    p.add_argument("-o", "--output", required=True, metavar="FILE.html")
    c.trust_options(p)
    p.add_argument(
        "--level",
        choices=LEVELS,
        default="full",
        help="how far to verify the bundle for the page (default full: every digest and signature)",
    )
    p.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="auto",
        help="lineage graph layout: Graphviz dot, the built-in one, or dot when installed (auto)",
    )
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.add_argument("--json", action="store_true")
