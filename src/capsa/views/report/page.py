"""The whole page: head (inline CSS, a Content-Security-Policy that allows no script and no
fetch), identity and signatures, the lineage graph, the sections, and how to reproduce."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

from ..._internal.progress import format_size
from ..._version import __version__
from ...compare.base import plural
from ...format.manifest import Step
from .data import ReportData
from .graph import build_graph
from .layout import place
from .markup import e, pill
from .sections import files_section, image_colour, images_section, steps_section
from .style import CSS
from .svg import graph_svg
from .verdicts import replay_section

__all__ = ["render_page"]

# Defence in depth: even a string that escaped escaping could neither run nor fetch anything.
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'"
)


def _signature_rows(d: ReportData) -> str:
    if not d.signatures:
        return f"<p>{pill('unsigned', 'unsigned')} The bundle carries no signature.</p>"
    rows = []
    for s in d.signatures:
        css = f"st-{s.status}" + ("-trusted" if s.status == "valid" and s.trusted else "")
        if s.status not in ("valid", "invalid", "unknown-key", "malformed"):
            css = "s-none"
        text = s.status + (", trusted" if s.trusted else "")
        rows.append(
            f"<tr><td><code>{e(s.keyid or '?')}</code></td>"
            f'<td><span class="pill {css}">{e(text)}</span></td><td>{e(s.reason)}</td></tr>'
        )
    return (
        "<table><thead><tr><th>key id</th><th>status</th><th>reason</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _verification(d: ReportData) -> str:
    keys = ", ".join(Path(k).name for _, k in d.trust) or "none given"
    hashed = f"every blob's digest ({d.blobs_checked} blobs, {format_size(d.bytes_checked)} hashed)"
    checked = {
        "structure": "container, manifest and seek tables (no blob hashed)",
        "fixity": f"structure and {hashed}",
        "full": f"structure and {hashed}",
    }[d.level]
    verdict = pill("ok", "OK") if d.verified_ok else pill("failed", "PROBLEMS")
    out = [
        f"<p>Verified when this page was made ({e(d.made_at)}), at level {e(d.level)}: "
        f"{e(checked)}, and every signature; trusted keys: {e(keys)}. {verdict}</p>"
    ]
    if d.problems:
        items = "".join(f"<li><code>{e(w)}</code>: {e(what)}</li>" for w, what, _ in d.problems)
        out.append(f'<ul class="diffs">{items}</ul>')
    return "\n".join(out)


def _banner(d: ReportData) -> str:
    r = d.replay
    if r is None:
        return ""
    outputs = sum(len(s.outputs) for s in r.steps)
    if r.ok:
        return (
            f'<div class="banner v-ok">Reproduced: {plural(outputs, "output")} of '
            f"{plural(len(r.steps), 'replayed step')}, each identical or equivalent.</div>"
        )
    bad = ", ".join(
        f"{n} {k}" for k, n in sorted(r.counts().items()) if k not in ("identical", "equivalent")
    )
    return f'<div class="banner v-bad">Not reproduced: {e(bad)}.</div>'


def _identity(d: ReportData) -> str:
    authors = []
    for a in d.authors:
        extra = ", ".join(
            x for x in (a.affiliation or "", f"ORCID {a.orcid}" if a.orcid else "") if x
        )
        authors.append(e(a.name) + (f" ({e(extra)})" if extra else ""))
    facts = [
        ("bundle id", f"<code>{e(d.bundle_id)}</code>"),
        ("bundle file", f"<code>{e(d.bundle)}</code>"),
        ("format", f"capsa bundle format {e(d.format)}"),
    ]
    if authors:
        facts.append(("authors", "; ".join(authors)))
    if d.license:
        facts.append(("licence", e(d.license)))
    for scheme, value in d.identifiers:
        facts.append((e(scheme), e(value)))
    if d.created:
        facts.append(("created", e(d.created)))
    facts.append(
        (
            "contents",
            f"{plural(len(d.steps), 'step')}, {plural(len(d.images), 'image')}, "
            f"{plural(len(d.files), 'file')}; "
            f"{e(format_size(d.content_size))} ({e(format_size(d.stored_size))} stored)",
        )
    )
    dl = "".join(f"<dt>{a}</dt><dd>{b}</dd>" for a, b in facts)
    desc = f'<p class="lead">{e(d.description)}</p>' if d.description else ""
    return (
        '<header id="identity"><p class="lead">capsa report</p>'
        f'<h1 id="title">{e(d.title) or "(untitled bundle)"}</h1>{desc}{_banner(d)}'
        f'<dl class="facts">{dl}</dl>'
        f'<h3 id="signatures">Signatures</h3>{_signature_rows(d)}{_verification(d)}</header>'
    )


def _lineage(d: ReportData, steps: Sequence[Step], layout: str) -> tuple[str, str]:
    images = {dig: (im.label, k) for k, (dig, im) in enumerate(d.images.items())}
    status = {st.index: st.status for st in d.steps if st.status}
    g = build_graph(steps, images, status)
    if not g.nodes:
        return '<section id="lineage"><h2>Lineage</h2><p>No recorded steps.</p></section>', ""
    placed = place(g, layout)
    folded = (
        f"{len(d.steps)} steps folded into {len(d.groups)} rules (steps named "
        "<code>rule[…]</code> share a node; a node of many files is a fan-out). "
        if g.grouped
        else f"{plural(len(d.steps), 'step')}. "
    )
    legend = ['<span class="l-origin">origin input</span>', '<span class="l-step">step</span>']
    legend += ['<span class="l-file">intermediate</span>', '<span class="l-result">result</span>']
    for dig, im in d.images.items():
        legend.append(
            f'<em><span class="img-badge {image_colour(d, dig)}"></span>{e(im.label)}</em>'
        )
    return (
        '<section id="lineage"><h2>Lineage</h2>'
        f'<p class="caption">{folded}Click a step for its details. Layout: {e(placed.engine)}.</p>'
        f'<div class="legend">{"".join(legend)}</div>'
        f'<div class="graph">{graph_svg(g, placed)}</div></section>',
        placed.engine,
    )


def _reproduce(d: ReportData) -> str:
    bundle = shlex.quote(d.bundle)
    keys = " ".join(f"{flag} {shlex.quote(k)}" for flag, k in d.trust) or "--key SIGNER.pub"
    mode = " --isolated" if d.replay is not None and d.replay.mode == "isolated" else ""
    lines = [
        ("Check who sealed it and that not one bit changed:", f"capsa verify {bundle} {keys}"),
        (
            "Re-run every step in its image and compare the outputs:",
            f"capsa replay {bundle} {keys}{mode} --json > replay.json",
        ),
        (
            "Make this page again, with those verdicts:",
            f"capsa report {bundle} --replay replay.json {keys} -o report.html",
        ),
    ]
    body = "".join(f"<p>{e(why)}</p><pre>{e(cmd)}</pre>" for why, cmd in lines)
    return (
        f'<section id="reproduce"><h2>Reproduce</h2>{body}'
        '<p class="caption">Without capsa, the bundle is a ZIP file of Zstandard-compressed blobs '
        "and a JSON manifest: <code>unzip</code>, <code>zstd</code> and a JSON reader recover "
        "every file (capsa's spec/recover.sh).</p></section>"
    )


def render_page(d: ReportData, steps: Sequence[Step], *, layout: str = "auto") -> tuple[str, str]:
    """The HTML page for ``d`` (``steps``: the manifest's, for the graph) and the layout engine
    that placed the graph."""
    lineage, engine = _lineage(d, steps, layout)
    title = d.title or "untitled bundle"
    toc = "".join(
        f'<a href="#{k}">{v}</a>'
        for k, v in (
            ("identity", "Identity"),
            ("lineage", "Lineage"),
            ("replay", "Replay"),
            ("images", "Images"),
            ("steps", "Steps"),
            ("files", "Files"),
            ("reproduce", "Reproduce"),
        )
    )
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="capsa {e(__version__)}">
<title>{e(title)} — capsa report</title>
<style>{CSS}</style>
</head>
<body>
<main>
<nav class="toc">{toc}</nav>
{_identity(d)}
{lineage}
{replay_section(d)}
{images_section(d)}
{steps_section(d)}
{files_section(d)}
{_reproduce(d)}
<footer>Made by capsa {e(__version__)} on {e(d.made_at)} from {e(d.bundle)}. Self-contained:
no script, nothing fetched; the signatures and digests above were checked when it was made.</footer>
</main>
</body>
</html>
"""
    return page, engine
