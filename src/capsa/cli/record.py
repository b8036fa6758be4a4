"""`capsa run`, `capsa log`: recording steps in containers."""

from __future__ import annotations

import argparse
import sys

from ..compare.options import OPTIONS, add_options, policies_for
from ..containers.runtime import runtime_names
from ..errors import ExitCode, UsageError
from ._common import Commands, emit_json

__all__ = ["register"]


def cmd_run(args: argparse.Namespace) -> int:
    from ..recording.run import run_step

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
        compare=policies_for(
            args.output,
            compare=args.compare,
            **{o.dest: getattr(args, o.dest) for o in OPTIONS},
        ),
        runtime=args.runtime,
        network=args.network,
        timeout=args.timeout,
        provenance=args.provenance,
        echo=not args.json,
    )
    e = outcome.entry
    if args.json:
        emit_json(e.model_dump(mode="json", exclude_none=True))
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
    return ExitCode.OK if e.status == "ok" else 1


def cmd_log(args: argparse.Namespace) -> int:
    from ..recording.journal import Journal, find_project

    entries = Journal(find_project()).entries()
    if args.json:
        emit_json([e.model_dump(mode="json", exclude_none=True) for e in entries])
        return ExitCode.OK
    for e in entries:
        outs = ", ".join(o.path for o in e.step.outputs) or "-"
        print(
            f"#{e.seq:<3} {e.step.name:<16} {e.status:<6} image {e.step.image[7:19]}  "
            f"{' '.join(e.step.argv)}  → {outs}"
        )
    return ExitCode.OK


def register(c: Commands) -> None:
    p = c.add("run", cmd_run, "run a command in a container image and record it as a step")
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
    p.add_argument("--runtime", default="auto", choices=runtime_names())
    p.add_argument("--network", action="store_true", help="allow network access (off by default)")
    p.add_argument("--timeout", type=float, metavar="SECONDS")
    add_options(p, per_output=True)
    p.add_argument(
        "--provenance",
        action="append",
        default=[],
        metavar="FILE",
        help="attach the tool's own provenance log (ctapipe, km3pipe .prov.json)",
    )
    p.add_argument("--json", action="store_true")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND ARGS...")
    p = c.add("log", cmd_log, "list the steps recorded in this work directory")
    p.add_argument("--json", action="store_true")
