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
        binds=args.bind,
        capture=args.capture,
        check=args.check,
        echo=not args.json,
    )
    e = outcome.entry
    if outcome.capture_fallback and not args.quiet:
        print(
            f"capsa: warning: no overlay ({outcome.capture_fallback}); the step's writes were "
            "found by comparing snapshots, and steps in this project run one at a time",
            file=sys.stderr,
        )
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
        if e.deleted:
            print("capsa: the step deleted: " + ", ".join(e.deleted), file=sys.stderr)
        for note in e.check or ():
            print(f"capsa: --check: {note}", file=sys.stderr)
    if outcome.exit_code != 0:
        return outcome.exit_code
    return ExitCode.OK if e.status == "ok" else 1


def cmd_log(args: argparse.Namespace) -> int:
    from ..recording.journal import Journal, find_project

    journal = Journal(find_project())
    entries = journal.entries()
    live = {e.seq for e in journal.current()} if not args.all else None
    shown = [e for e in entries if live is None or e.seq in live]
    if args.json:
        emit_json([e.model_dump(mode="json", exclude_none=True) for e in shown])
        return ExitCode.OK
    latest = {e.step.name: e.seq for e in entries}
    for e in shown:
        outs = ", ".join(o.path for o in e.step.outputs) or "-"
        status = (
            e.status if latest[e.step.name] == e.seq or e.status == "forgotten" else "superseded"
        )
        image = f"image {e.step.image[7:19]}" if e.step.image else "no image    "
        print(
            f"#{e.seq:<3} {e.step.name:<16} {status:<10} {image}  {' '.join(e.step.argv)}  → {outs}"
        )
    return ExitCode.OK


def cmd_forget(args: argparse.Namespace) -> int:
    from ..recording.journal import Journal, find_project

    entry = Journal(find_project()).forget(args.name)
    if args.json:
        emit_json({"forgotten": args.name, "seq": entry.seq})
    elif not args.quiet:
        print(f"forgot step {args.name!r} (its records stay in `capsa log --all`)")
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
        help="attach the tool's own provenance log (ctapipe, km3pipe .prov.json); an "
        "annotation, never compared",
    )
    p.add_argument(
        "--bind",
        action="append",
        default=[],
        metavar="HOST_PATH[:CONTAINER_PATH][:ro]",
        help="make data outside the work directory visible to the step; inputs under it are "
        "recorded with their container path (repeatable)",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="run the step twice and record the narrowest comparison policy under which the "
        "two runs are equivalent (fails if they differ in more than volatile values)",
    )
    p.add_argument(
        "--capture",
        default="auto",
        choices=("auto", "overlay", "snapshot"),
        help="how the step's writes are found: an overlay of the work directory (exact, "
        "parallel-safe), a snapshot diff (serial), or auto (overlay when possible)",
    )
    p.add_argument("--json", action="store_true")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND ARGS...")
    p = c.add("log", cmd_log, "list the steps recorded in this work directory")
    p.add_argument(
        "--all", action="store_true", help="also superseded and forgotten records (the history)"
    )
    p.add_argument("--json", action="store_true")

    p = c.add("forget", cmd_forget, "drop a recorded step (it is no longer packed)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--json", action="store_true")
