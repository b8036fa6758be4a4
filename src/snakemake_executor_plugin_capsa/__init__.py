"""Snakemake executor plugin ``capsa``: run every job of an unmodified Snakefile inside its
``container:`` image through capsa, recording it as a capsa step (spec/recording.md §6).

``snakemake --executor capsa …`` (or ``capsa snakemake …``, which also sets things up for cluster
executors). The executor is Snakemake's local executor with one change: each job's command is run
by capsa's job runner (``python -m capsa.recording.snakemake_job``) instead of the shell, through
the per-job ``shell_exec`` resource Snakemake's own ``shell()`` honours. So Snakemake still
formats the command, makes output directories, handles logs, benchmarks, retries and its
metadata; capsa runs the command in the image and journals it, with the job's rule, wildcards,
inputs, outputs, logs and params.

Snakemake imports every installed ``snakemake_executor_plugin_*`` module in every process: this
module stays cheap and does nothing unless used, or unless ``CAPSA_SNAKEMAKE`` is set (then, on
cluster nodes and in spawned job processes, jobs run by the plain local executor are routed the
same way).
"""

# No `from __future__ import annotations` here: Snakemake calls the settings' field types.

import json
import os
import shlex
import stat
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snakemake.executors.local import Executor as LocalExecutor
from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.settings import CommonSettings, ExecutorSettingsBase

ENV = "CAPSA_SNAKEMAKE"
"""JSON settings for processes that capsa did not start itself (cluster nodes, spawned jobs)."""

common_settings = CommonSettings(
    non_local_exec=False,
    implies_no_shared_fs=False,
    job_deploy_sources=False,
    pass_envvar_declarations_to_cmd=True,
    auto_deploy_default_storage_provider=False,
)


@dataclass
class ExecutorSettings(ExecutorSettingsBase):
    runtime: str = field(
        default="auto",
        metadata={
            "help": "capsa runtime for the jobs (auto, apptainer, bwrap, ...)",
            "env_var": False,
        },
    )
    capture: str = field(
        default="auto",
        metadata={
            "help": "how capsa finds a job's writes: auto, overlay, snapshot",
            "env_var": False,
        },
    )
    no_container: str = field(
        default="refuse",
        metadata={
            "help": "rules without container: refuse (default), or record: run them on the host "
            "as non-replayable steps",
        },
    )


def _files(nl: Any) -> list[str]:
    return [str(f) for f in nl]


def _jsonable(v: Any) -> Any:
    try:
        json.dumps(v)
        return v
    except TypeError:
        return repr(v)


def _refusal(job: Any, settings: dict[str, str]) -> str:
    """Why capsa cannot record this job, or ''."""
    rule = job.rule.name
    if job.is_norun:
        return ""
    if job.is_run:
        return f"rule {rule} uses run: (its Python code runs on the host, not in an image)"
    for what in ("script", "notebook", "wrapper", "cwl"):
        if getattr(job, f"is_{what}", False):
            return f"rule {rule} uses {what}: (only shell: commands can run in an image)"
    if job.is_shadow:
        return f"rule {rule} uses shadow: (not supported by capsa)"
    if getattr(job, "is_pipe", False):
        return f"rule {rule} has pipe() or service() outputs (not supported by capsa)"
    url = job.container_img_url
    if not url:
        if settings.get("no_container") == "record":
            return ""
        return (
            f"rule {rule} has no container: and cannot be replayed (give it one, or pass "
            "--capsa-no-container record to record it as a non-replayable step)"
        )
    if "://" in str(url):
        return (
            f"rule {rule}: container {url} is not a local SIF file (capsa runs local images: "
            "`capsa image import` makes one from a Docker/OCI archive)"
        )
    return ""


def _record(job: Any, settings: dict[str, str]) -> dict[str, Any]:
    return {
        "rule": job.rule.name,
        "wildcards": {k: str(v) for k, v in job.wildcards_dict.items()},
        "input": _files(job.input),
        "output": _files(job.output),
        "log": _files(job.log),
        "params": {k: _jsonable(v) for k, v in job.params.items()},
        "threads": job.threads,
        "container": job.container_img_url,
        "snakefile": str(job.rule.snakefile),
        "settings": settings,
    }


def _route(job: Any, args: list[Any], settings: dict[str, str], tmp: str) -> list[Any]:
    """Give the job a per-job ``shell_exec`` that hands its command to capsa's job runner."""
    if job.is_norun:
        return args
    why = _refusal(job, settings)
    if why:
        raise WorkflowError(f"capsa: {why}")
    d = Path(tempfile.mkdtemp(prefix=f"job{job.jobid}-", dir=tmp))
    spec = d / "job.json"
    spec.write_text(json.dumps(_record(job, settings)))
    # Named after the shell Snakemake would run, so it keeps (or not) its `set -euo pipefail;`.
    shell = d / "bash"
    runner = shlex.join([sys.executable, "-m", "capsa.recording.snakemake_job", "--job", str(spec)])
    shell.write_text(f'#!/bin/sh\nexec {runner} "$@"\n')
    shell.chmod(shell.stat().st_mode | stat.S_IXUSR)
    i = next(i for i, a in enumerate(args) if a is job.resources)
    resources = args[i]._clone()
    resources.update({"shell_exec": str(shell)})
    args[i] = resources
    return args


class Executor(LocalExecutor):
    def __post_init__(self) -> None:
        super().__post_init__()
        es = self.workflow.executor_settings
        self._settings = {
            "runtime": es.runtime,
            "capture": es.capture,
            "no_container": es.no_container,
        }
        self._tmp = tempfile.mkdtemp(prefix="capsa-snakemake-")  # outside the project
        refusals = sorted(
            {w for j in self.workflow.dag.needrun_jobs() if (w := _refusal(j, self._settings))}
        )
        if refusals:
            raise WorkflowError("capsa: " + "; ".join(refusals))

    def job_args_and_prepare(self, job: Any) -> tuple[Any, ...]:
        args = list(super().job_args_and_prepare(job))
        return tuple(_route(job, args, self._settings, self._tmp))


if os.environ.get(ENV):
    # Processes capsa does not start (cluster nodes, spawned jobs) run jobs with the plain local
    # executor: route those too.
    _SETTINGS = json.loads(os.environ[ENV])
    _original = LocalExecutor.job_args_and_prepare

    def _routed(self: Any, job: Any) -> tuple[Any, ...]:
        args = list(_original(self, job))
        if isinstance(self, Executor):  # already routed by the executor itself
            return tuple(args)
        return tuple(_route(job, args, _SETTINGS, tempfile.gettempdir()))

    LocalExecutor.job_args_and_prepare = _routed
