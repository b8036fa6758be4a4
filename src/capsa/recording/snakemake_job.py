"""Run one Snakemake job as a capsa step (spec/recording.md §6).

    python -m capsa.recording.snakemake_job --job JOB.json -c COMMAND

Started by the ``capsa`` Snakemake executor (``snakemake_executor_plugin_capsa``) in place of the
shell: Snakemake hands it the exact command it would have run (``-c COMMAND``), the JSON file
holds the job's rule, wildcards, inputs, outputs, logs, params, threads and ``container:``. The job
becomes the step ``rule[wildcard=value,…]`` run in that image through capsa's runtime, its inputs
and outputs exactly as Snakemake declares them (log files are outputs too), compare policies from
``capsa.yaml``. The exit code is the step's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import Error, ExitCode, UsageError
from ..format.policy import ComparePolicy, compare_policy
from .run import run_step

__all__ = ["POLICY_FILE", "main", "policies_from_file", "step_name"]

POLICY_FILE = "capsa.yaml"
_THREAD_VARS = (
    "OMP_NUM_THREADS",
    "GOTO_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def _escape(value: str) -> str:
    # A step name is one path segment: '/' (and '%', so it can be read back) are escaped.
    return value.replace("%", "%25").replace("/", "%2F").replace("]", "%5D")


def step_name(rule: str, wildcards: dict[str, str]) -> str:
    """``rule[k=v,k2=v2]`` in wildcard order; too long a name ends in a digest instead."""
    if not wildcards:
        return rule
    name = f"{rule}[" + ",".join(f"{k}={_escape(v)}" for k, v in wildcards.items()) + "]"
    if len(name.encode()) <= 200:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return f"{rule[:150]}[{digest}]"


def policies_from_file(path: Path, outputs: Sequence[str]) -> dict[str, ComparePolicy]:
    """``capsa.yaml``: ``compare: {GLOB: METHOD or {method: …, options…}}``, the first glob
    (fnmatch over the output's path) that matches an output sets its policy."""
    import fnmatch

    try:
        import yaml  # PyYAML comes with Snakemake
    except ImportError:  # pragma: no cover - Snakemake depends on it
        raise UsageError(f"reading {path.name} needs PyYAML", hint="pip install pyyaml") from None
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise UsageError(f"not valid YAML: {str(e).splitlines()[0]}", where=str(path)) from None
    rules = doc.get("compare", {}) if isinstance(doc, dict) else None
    if not isinstance(rules, dict):
        raise UsageError("expected `compare:` mapping output globs to policies", where=str(path))
    out: dict[str, ComparePolicy] = {}
    for rel in outputs:
        for glob, spec in rules.items():
            if fnmatch.fnmatchcase(rel, str(glob)):
                options = dict(spec) if isinstance(spec, dict) else {"method": spec}
                method = str(options.pop("method", "bytes"))
                try:
                    out[rel] = compare_policy(method, **options)
                except UsageError as e:
                    e.where = f"{path}: {glob}"
                    raise
                break
    return out


def _policy_file(job: dict[str, Any]) -> Path | None:
    for d in (Path.cwd(), Path(job.get("snakefile", ".")).resolve().parent):
        if (d / POLICY_FILE).is_file():
            return d / POLICY_FILE
    return None


def _files(paths: Sequence[str]) -> list[str]:
    """Files as Snakemake names them; a directory() stands for the files below it."""
    out: list[str] = []
    for p in paths:
        if Path(p).is_dir():
            out += sorted(str(f) for f in Path(p).rglob("*") if f.is_file())
        else:
            out.append(p)
    return out


def run_job(job: dict[str, Any], command: str) -> int:
    settings = job.get("settings", {})
    outputs = [o for o in job["output"] if not Path(o).is_dir()] + list(job["log"])
    policy_file = _policy_file(job)
    compare = policies_from_file(policy_file, outputs) if policy_file else {}
    env = {k: os.environ[k] for k in _THREAD_VARS if k in os.environ}
    params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in job["params"].items()}
    outcome = run_step(
        job["container"],
        ["bash", "-c", command],
        inputs=_files(job["input"]),
        outputs=outputs,
        name=step_name(job["rule"], job["wildcards"]),
        env=env,
        compare=compare,
        runtime=settings.get("runtime", "auto"),
        capture=settings.get("capture", "auto"),
        group=job["rule"],
        params=params,
        project=Path.cwd(),
    )
    e = outcome.entry
    print(
        f"capsa: recorded step {e.step.name!r} (#{e.seq}): {e.status}"
        + (f" ({e.reason})" if e.reason else ""),
        file=sys.stderr,
    )
    if outcome.exit_code:
        return outcome.exit_code
    return ExitCode.OK if e.status == "ok" else ExitCode.DIFFERENT


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="capsa-snakemake-job")
    ap.add_argument("--job", required=True)
    ap.add_argument("-c", dest="command", required=True)
    args = ap.parse_args(argv)
    spec = Path(args.job)
    try:
        job = json.loads(spec.read_text())
    finally:
        shutil.rmtree(spec.parent, ignore_errors=True)  # the per-job files are used once
    try:
        return run_job(job, args.command)
    except Error as e:
        print(f"capsa: error: {e.diagnostics()}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
