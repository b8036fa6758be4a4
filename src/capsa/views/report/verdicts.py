"""The replay section: verdict counts, a line per rule for big productions, every output that is
not identical with every difference and every ignored one, plots of what differs, and the full
table of outputs (folded away when it is long)."""

from __future__ import annotations

import json
from typing import Any

from ...replay.report import OutputReport
from .data import ReportData, StepView, data_differences
from .markup import e, pill, rows
from .svg import difference_bars, series_svg

__all__ = ["FULL_ROWS", "replay_section"]

FULL_ROWS = 60
"""A table of more outputs than this is folded into a <details> element."""


def _summary(d: dict[str, Any]) -> str:
    text = d.get("summary")
    return str(text) if isinstance(text, str) and text else json.dumps(d, sort_keys=True)


def _output_detail(d: ReportData, st: StepView, j: int, o: OutputReport) -> str:
    parts = [f'<h3 id="verdict-{st.index}-{j}">{e(st.name)} → {e(o.path)} {pill(o.verdict)}</h3>']
    if o.note:
        parts.append(f'<p class="caption">{e(o.note)}</p>')
    items = [f"<li>{e(_summary(x))}</li>" for x in o.differences]
    items += [f'<li class="ignored">ignored: {e(_summary(x))}</li>' for x in o.ignored]
    if items:
        parts.append(f'<ul class="diffs">{"".join(items)}</ul>')
    bars = data_differences(o)
    if bars:
        parts.append(
            '<p class="caption">share of elements that differ (ticks: the first differing '
            "indices, for one-dimensional data)</p>"
        )
        parts.append(difference_bars(bars))
    for s in d.series.get((st.index, o.path), []):
        name = s.dataset + (f" field {s.field}" if s.field else "")
        parts.append(
            f'<p class="caption">{e(name)}: recorded (grey) and replayed (red, dashed) values, '
            "and their difference</p>"
        )
        parts.append(series_svg(s))
    return "\n".join(parts)


def _counts(found: dict[str, int]) -> str:
    return " ".join(pill(k, f"{n} {k}") for k, n in sorted(found.items()))


def _per_rule(d: ReportData) -> str:
    lines = []
    for k, (rule, members) in enumerate(d.groups.items()):
        found: dict[str, int] = {}
        for i in members:
            sr = d.steps[i].replay
            if sr is None:
                continue
            for o in sr.outputs:
                found[o.verdict] = found.get(o.verdict, 0) + 1
            if sr.status != "ok":
                found[sr.status] = found.get(sr.status, 0) + 1
        lines.append((f'<a href="#group-{k}">{e(rule)}</a>', str(len(members)), _counts(found)))
    return (
        "<table><thead><tr><th>rule</th><th>steps</th><th>verdicts</th></tr></thead>"
        f"<tbody>{rows(lines)}</tbody></table>"
    )


def replay_section(d: ReportData) -> str:
    out = ['<section id="replay"><h2>Replay</h2>']
    r = d.replay
    if r is None:
        out.append(
            "<p>No replay report was given, so nothing was re-run for this page. "
            'The commands under <a href="#reproduce">Reproduce</a> replay it.</p></section>'
        )
        return "\n".join(out)
    out.append(
        f"<p>Replayed in {e(r.mode)} mode with runtime {e(r.runtime)} {e(r.runtime_version)}: "
        f"{_counts(r.counts())}</p>"
    )
    known = {s.name for s in d.steps}
    stray = [s.name for s in r.steps if s.name not in known]
    if stray:
        out.append(f"<p>In the replay report but not in the bundle: {e(', '.join(stray))}</p>")
    if len(d.groups) < len(d.steps):
        out.append(_per_rule(d))
    table, attention, details = [], [], []
    for st in d.steps:
        sr = st.replay
        if sr is None:
            continue
        step_cell = f'<a href="#step-{st.index}">{e(st.name)}</a>'
        status = pill(sr.status) + (f" {e(sr.reason)}" if sr.reason else "")
        if not sr.outputs:
            table.append((step_cell, status, "—", "", "", ""))
            if sr.status != "ok":
                attention.append(table[-1])
        for j, o in enumerate(sr.outputs):
            verdict = pill(o.verdict)
            explained = bool(o.differences or o.ignored or o.note)
            if explained:
                verdict = f'<a href="#verdict-{st.index}-{j}">{verdict}</a>'
            policy = next((f.policy for f in st.outputs if f.path == o.path), o.policy)
            table.append((step_cell, status, e(o.path), verdict, e(policy), e(o.note)))
            if o.verdict != "identical" or sr.status != "ok":
                attention.append(table[-1])
            if explained:
                details.append(_output_detail(d, st, j, o))
        if sr.status != "ok" and sr.stderr_tail:
            details.append(
                f'<h3>{e(st.name)} {pill(sr.status)}</h3><p class="caption">last lines of its '
                f"standard error</p><pre>{e(sr.stderr_tail)}</pre>"
            )
    head = (
        "<table><thead><tr><th>step</th><th>status</th><th>output</th><th>verdict</th>"
        "<th>compare policy</th><th>note</th></tr></thead><tbody>"
    )
    if len(table) <= FULL_ROWS:
        out.append(f"{head}{rows(table)}</tbody></table>")
    else:
        if attention:
            out.append(
                f"<h3>Not identical ({len(attention)})</h3>{head}{rows(attention)}</tbody></table>"
            )
        else:
            out.append("<p>Every output is identical.</p>")
        out.append(
            f"<details><summary>all {len(table)} outputs</summary>"
            f"{head}{rows(table)}</tbody></table></details>"
        )
    out += details
    out.append("</section>")
    return "\n".join(out)
