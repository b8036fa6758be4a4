"""`capsa snakemake [SNAKEMAKE ARGS…]`: run a Snakefile with every job recorded as a capsa step
(spec/recording.md §6). A thin wrapper: it checks Snakemake, selects the ``capsa`` executor (or,
with another executor such as Slurm, sets ``CAPSA_SNAKEMAKE`` so the jobs on the nodes are routed
through capsa too), keeps intermediate files (``--notemp``: packing reads them), and execs
Snakemake in this Python environment."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import sys

from ..errors import ExitCode, UsageError
from ._common import Commands

__all__ = ["register"]

ENV = "CAPSA_SNAKEMAKE"
_REFUSED = (
    "--sdm",
    "--software-deployment-method",
    "--use-singularity",
    "--use-apptainer",
    "--use-conda",
    "--use-envmodules",
)


def _option(args: list[str], name: str) -> str | None:
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def snakemake_command(args: list[str]) -> tuple[list[str], dict[str, str]]:
    """The Snakemake command line and the environment ``capsa snakemake ARGS`` runs."""
    try:
        version = importlib.metadata.version("snakemake")
    except importlib.metadata.PackageNotFoundError:
        raise UsageError(
            "Snakemake is not installed", hint="pip install 'capsa[snakemake]' (Snakemake 9)"
        ) from None
    if int(version.split(".")[0]) != 9:
        raise UsageError(
            f"Snakemake {version} is not supported", hint="pip install 'snakemake>=9,<10'"
        )
    for a in args:
        if a.split("=")[0] in _REFUSED:
            raise UsageError(
                f"{a.split('=')[0]} would wrap the jobs a second time",
                hint="capsa runs each job in its container: image itself; drop the option",
            )
    settings = {
        "runtime": _option(args, "--capsa-runtime") or "auto",
        "capture": _option(args, "--capsa-capture") or "auto",
        "no_container": _option(args, "--capsa-no-container") or "refuse",
    }
    out = list(args)
    if _option(out, "--executor") is None and _option(out, "-e") is None:
        out += ["--executor", "capsa"]
    if "--notemp" not in out and "--nt" not in out:
        out.append("--notemp")
    envvars = _option(out, "--envvars")
    if envvars is None:
        out += ["--envvars", ENV]
    env = {**os.environ, ENV: json.dumps(settings)}
    return [sys.executable, "-m", "snakemake", *out], env


def cmd_snakemake(args: argparse.Namespace) -> int:
    argv = args.snakemake_args[1:] if args.snakemake_args[:1] == ["--"] else args.snakemake_args
    cmd, env = snakemake_command(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(cmd[0], cmd, env)
    return ExitCode.OK  # pragma: no cover - execve does not return


def register(c: Commands) -> None:
    p = c.add(
        "snakemake",
        cmd_snakemake,
        "run a Snakefile with every job recorded as a capsa step in its container: image",
    )
    p.epilog = (
        "Every argument goes to Snakemake (9.x). Rules name their image with `container: "
        "'path/to/image.sif'`; jobs become steps named rule[wildcard=value,...]; per-output "
        "comparison policies come from capsa.yaml next to the Snakefile. Executor options: "
        "--capsa-runtime R, --capsa-capture auto|overlay|snapshot, --capsa-no-container "
        "refuse|record. With --executor slurm (or another cluster executor) the jobs are "
        "recorded on the nodes (capsa must be installed there, in the same environment)."
    )
    p.add_argument("snakemake_args", nargs=argparse.REMAINDER, metavar="SNAKEMAKE ARGS")
