"""`capsa replay`, `capsa diff`: re-running steps and comparing outputs."""

from __future__ import annotations

import argparse
from typing import Any

from .._internal.atomic import check_destination
from ..compare.options import add_options
from ..containers.runtime import runtime_names
from ..errors import ExitCode, UsageError
from ._common import Commands, emit_json, progress, signing_keys_for, trusted_keys

__all__ = ["register"]


def _print_replay(report: Any) -> None:
    print(
        f"replayed {report.bundle_id} ({len(report.steps)} steps, {report.mode} mode, "
        f"runtime {report.runtime} {report.runtime_version})"
    )
    for st in report.steps:
        extra = f" — {st.reason}" if st.reason else ""
        print(f"step {st.name}: {st.status}{extra} ({st.duration_s:.1f} s)")
        for note in st.twice:
            print(f"  twice: {note}")
        if st.stderr_tail and st.status != "ok":
            for line in st.stderr_tail.rstrip().splitlines()[-5:]:
                print(f"    | {line}")
        for o in st.outputs:
            print(f"  {o.verdict:<11} {o.path}" + (f"  ({o.note})" if o.note else ""))
            for d in o.differences[:20]:
                print(f"      {d.get('summary') or d}")
                excerpt = d.get("detail", {}).get("excerpt") if isinstance(d, dict) else None
                for line in excerpt if isinstance(excerpt, list) else []:
                    print(f"          {line}")
            for d in o.ignored[:20]:
                print(f"      ignored: {d.get('summary') or d}")
            if o.accept_with:
                print(
                    f"      only volatile values differ; accepted with: {' '.join(o.accept_with)}"
                )
    counts = report.counts()
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    print(f"verdict: {summary or 'nothing to compare'} → {'OK' if report.ok else 'NOT REPRODUCED'}")
    if report.workdir:
        print(f"work directories kept in {report.workdir}")


def cmd_replay(args: argparse.Namespace) -> int:
    import dataclasses

    from ..replay.engine import EXIT_MISMATCH, replay
    from ..replay.executors.dask import parse_cluster_options

    attest_keys = signing_keys_for([args.attest], args) if args.attest else []
    if args.attest_output:
        check_destination(args.attest_output, force=args.force)
    if args.html:
        check_destination(args.html, force=args.force)  # before replaying, not after
    report = replay(
        args.bundle,
        steps=args.step,
        workdir=args.workdir,
        runtime=args.runtime,
        jobs=args.jobs,
        keep=args.keep,
        isolated=args.isolated,
        twice=args.twice,
        keys=trusted_keys(args),
        allow_unsigned=args.allow_unsigned,
        timeout=args.timeout,
        progress=progress(args),
        executor=args.executor,
        scheduler=args.scheduler,
        cluster=args.cluster,
        cluster_options=parse_cluster_options(args.cluster_option),
        workers=args.workers,
        resume=args.resume,
    )
    doc = dataclasses.asdict(report) | {"ok": report.ok, "counts": report.counts()}
    if args.attest:
        from ..replay.attest import write_replay_attestation

        out = write_replay_attestation(
            doc, args.bundle, attest_keys, args.attest_output, force=args.force
        )
        if not args.json and not args.quiet:
            print(f"signed replay attestation written to {out}")
    page = None
    if args.html:
        from .report import write_html

        page = write_html(args, args.html, report)
    if args.json:
        emit_json(doc)
    elif not args.quiet:
        _print_replay(report)
        if page is not None:
            print(f"report written to {page.path}")
    return ExitCode.OK if report.ok else EXIT_MISMATCH


def cmd_diff(args: argparse.Namespace) -> int:
    from ..compare import compare, open_source
    from ..compare.options import OPTIONS, policy_for

    if args.max_indices < 0:
        raise UsageError("--max-indices must not be negative")
    if args.diff_image:
        check_destination(args.diff_image, force=args.force)
    with open_source(args.a) as a, open_source(args.b) as b:
        policy = policy_for(
            a, b, compare=args.compare, **{o.dest: getattr(args, o.dest) for o in OPTIONS}
        )
        result = compare(a, b, policy, max_items=args.max_indices, names=(args.a, args.b))
    picture = next(iter(result.diff.attachments.values()), None)
    if args.diff_image and picture is not None:
        from .._internal.atomic import atomic_output

        with atomic_output(args.diff_image, force=args.force) as f:
            f.write(picture)
        if result.diff.differences:
            result.diff.differences[0].detail["diff_image"] = str(args.diff_image)
    if args.json:
        emit_json(result.as_dict())
    elif not args.quiet:
        print("\n".join(result.report()))
    return ExitCode.DIFFERENT if result.verdict == "different" else ExitCode.OK


def register(c: Commands) -> None:
    p = c.add(
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
    p.add_argument("--runtime", default="auto", choices=runtime_names())
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="independent steps in parallel")
    p.add_argument("--keep", action="store_true", help="keep the work directories")
    p.add_argument(
        "--executor",
        choices=("local", "dask"),
        default="local",
        help="where steps run: threads of this process (local, --jobs) or a Dask cluster",
    )
    p.add_argument(
        "--scheduler", metavar="tcp://HOST:PORT", help="dask: the scheduler of a running cluster"
    )
    p.add_argument(
        "--cluster",
        choices=("local", "slurm", "htcondor", "pbs"),
        help="dask: start a cluster for this replay (LocalCluster, or workers as batch jobs "
        "through dask-jobqueue) and stop it afterwards (default local)",
    )
    p.add_argument(
        "--cluster-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dask: a keyword argument of the cluster (queue=, walltime=, account=, …; "
        "repeatable; VALUE read as JSON when it is)",
    )
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="dask: workers to start (default: the CPUs for local, 1 batch job otherwise)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted replay of this bundle in --workdir from its journal",
    )
    p.add_argument(
        "--isolated",
        action="store_true",
        help="feed each step the recorded inputs instead of replayed ones",
    )
    p.add_argument(
        "--twice",
        action="store_true",
        help="run every step twice and report whether the two runs agree (and which policy "
        "would accept their differences)",
    )
    c.trust_options(p)
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
    p.add_argument(
        "--html",
        metavar="FILE.html",
        help="also write the report page with these verdicts (as `capsa report --replay`)",
    )
    p.add_argument(
        "--force", action="store_true", help="replace an existing attestation or --html file"
    )
    p.add_argument("--json", action="store_true")
    p = c.add("diff", cmd_diff, "compare two files by content: HDF5, ROOT, images, JSON, CSV, text")
    p.epilog = (
        "The method is detected by content (both files must be of one kind), or forced with "
        "--compare; its options are errors for other methods. B is the reference: 'missing' = "
        "only in B, 'extra' = only in A, relative differences are relative to B. A or B may be "
        "BUNDLE.capsa:MEMBER. Exit codes: 0 identical or equivalent, 1 different, 3 not that "
        "format (or not of one kind), 9 no such file."
    )
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")
    add_options(p, per_output=False)
    p.add_argument(
        "--max-indices",
        type=int,
        default=10,
        metavar="N",
        help="differing indices, entries, lines or cells to list per place (default 10)",
    )
    p.add_argument(
        "--diff-image",
        metavar="FILE",
        help="image: write a PNG showing the differing pixels (in red) to FILE",
    )
    p.add_argument("--force", action="store_true", help="replace an existing --diff-image file")
    p.add_argument("--json", action="store_true")
