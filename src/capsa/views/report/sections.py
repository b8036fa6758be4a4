"""The report's sections that list things: images, steps (a card each, or a table row each
in a big rule), files. Ids and class names are made here (``step-12``, ``s-different``), never
taken from the bundle; every string from it goes through ``e``.
"""

from __future__ import annotations

from ..._internal.progress import format_size
from .data import FileRef, ReportData, StepView
from .images import ImageDetails
from .markup import BADGE_COLOURS, e, pill, rows, short

__all__ = ["files_section", "image_colour", "images_section", "steps_section"]

CARDS = 3
"""A rule with more steps than this lists them as table rows, not cards."""


def image_colour(d: ReportData, digest: str) -> str:
    order = list(d.images)
    return f"c{order.index(digest) % BADGE_COLOURS}" if digest in d.images else "cn"


def _image(d: ReportData, k: int, im: ImageDetails) -> str:
    users: dict[str, int] = {}
    for st in d.steps:
        if st.image == im.digest:
            users[st.group] = users.get(st.group, 0) + 1
    used = ", ".join(f"{g} \u00d7{n}" if n > 1 else g for g, n in users.items()) or "no step"
    facts = [
        ("digest", f"<code>{e(im.digest)}</code>"),
        ("in the bundle", e(", ".join(im.paths)) or "(not a listed file)"),
        ("size", e(format_size(im.size))),
    ]
    if im.source_ref or im.source_digest:
        facts.append(("source", e(" ".join(x for x in (im.source_ref, im.source_digest) if x))))
    if im.readable:
        facts += [("SIF ID", f"<code>{e(im.sif_id)}</code>"), ("architecture", e(im.arch or "?"))]
        if im.image_from:
            facts.append(("built from", e(im.image_from)))
    else:
        facts.append(("format", "not a readable SIF image"))
    if im.os:
        facts.append(("OS", e(im.os)))
    if im.packages:
        listed = ", ".join(f"{n} {v}".strip() for n, v in im.packages)
        more = f" (of {im.package_count} in its {im.sbom_format} SBOM)" if im.package_count else ""
        facts.append(("key packages", e(listed) + e(more)))
    elif im.sbom_format:
        facts.append(("SBOM", e(f"{im.sbom_format}, no packages listed")))
    facts.append(("used by", e(used)))
    if im.labels:
        shown = list(im.labels.items())[:20]
        facts.append(("labels", "<br>".join(f"<code>{e(k)}</code> = {e(v)}" for k, v in shown)))
    dl = "".join(f"<dt>{a}</dt><dd>{b}</dd>" for a, b in facts)
    colour = image_colour(d, im.digest)
    return (
        f'<h3 id="image-{k}"><span class="img-badge {colour}"></span>{e(im.label)}</h3>'
        f'<dl class="facts">{dl}</dl>'
    )


def images_section(d: ReportData) -> str:
    out = ['<section id="images"><h2>Images</h2>']
    if not d.images:
        out.append("<p>The bundle records no container images.</p>")
    out += [_image(d, k, im) for k, im in enumerate(d.images.values())]
    out.append("</section>")
    return "\n".join(out)


def _files_table(files: list[FileRef], verdicts: dict[str, str], outputs: bool) -> str:
    head = '<th>path</th><th class="num">size</th><th>digest</th>'
    if outputs:
        head += "<th>compare policy</th>" + ("<th>replay</th>" if verdicts else "")
    body = []
    for f in files:
        cells = [f"<td>{e(f.path)}</td>", f'<td class="num">{e(format_size(f.size))}</td>']
        cells.append(f"<td>{short(f.digest)}</td>")
        if outputs:
            cells.append(f"<td>{e(f.policy)}</td>")
            if verdicts:
                cells.append(f"<td>{pill(verdicts[f.path]) if f.path in verdicts else ''}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _image_link(d: ReportData, digest: str) -> str:
    if not digest:
        return "none: it ran on the recording host's software and is never replayed"
    im = d.images.get(digest)
    if im is None:
        return short(digest)
    return (
        f'<span class="img-badge {image_colour(d, digest)}"></span>'
        f'<a href="#image-{list(d.images).index(digest)}">{e(im.label)}</a> {short(digest)}'
    )


def _card(d: ReportData, st: StepView) -> str:
    when = " · ".join(
        x
        for x in (
            f"recorded {e(st.recorded)}" if st.recorded else "",
            f"on {e(st.host)}" if st.host else "",
            f"{st.duration_ms / 1000:.1f} s" if st.duration_ms else "",
        )
        if x
    )
    facts = [
        ("command", f"<pre>{e(st.command)}</pre>"),
        ("image", _image_link(d, st.image)),
        ("runtime", e(st.runtime or "?") + f" · exit code {st.exit_code} · in {e(st.workdir)}"),
    ]
    if when:
        facts.append(("when", when))
    dl = "".join(f"<dt>{a}</dt><dd>{b}</dd>" for a, b in facts)
    verdicts = {o.path: o.verdict for o in st.replay.outputs} if st.replay else {}
    status = pill(st.replay.status) if st.replay else ""
    parts = [
        f'<article class="step" id="step-{st.index}"><h4>{e(st.name)} {status}</h4>',
        f'<dl class="facts">{dl}</dl>',
    ]
    if st.env:
        env = "\n".join(f"{k}={v}" for k, v in sorted(st.env.items()))
        parts.append(
            f"<details><summary>environment ({len(st.env)})</summary><pre>{e(env)}</pre></details>"
        )
    if st.inputs:
        parts.append("<strong>inputs</strong>" + _files_table(st.inputs, {}, False))
    if st.outputs:
        parts.append("<strong>outputs</strong>" + _files_table(st.outputs, verdicts, True))
    parts.append("</article>")
    return "\n".join(parts)


def _file_list(files: list[FileRef], verdicts: dict[str, str] | None = None) -> str:
    items = []
    for f in files:
        verdict = f" {pill(verdicts[f.path])}" if verdicts and f.path in verdicts else ""
        policy = f" · {e(f.policy)}" if f.policy and not f.policy.startswith("bytes") else ""
        items.append(
            f'{e(f.path)} <span class="caption">{e(format_size(f.size))}</span> '
            f"{short(f.digest)}{policy}{verdict}"
        )
    return "<br>".join(items)


def _table(d: ReportData, members: list[int]) -> str:
    """One row per step of a big rule: everything a card shows but the environment; what the
    rule's steps share (image, runtime) is said once above the table."""
    body = []
    for i in members:
        st = d.steps[i]
        verdicts = {o.path: o.verdict for o in st.replay.outputs} if st.replay else {}
        status = f" {pill(st.replay.status)}" if st.replay and st.replay.status != "ok" else ""
        exit_code = f" (exit {st.exit_code})" if st.exit_code else ""
        body.append(
            f'<tr id="step-{st.index}"><td>{e(st.name)}{status}</td>'
            f"<td><code>{e(st.command)}</code>{exit_code}</td>"
            f"<td>{_file_list(st.inputs)}</td><td>{_file_list(st.outputs, verdicts)}</td></tr>"
        )
    return (
        '<table class="steps"><thead><tr><th>step</th><th>command</th><th>inputs</th>'
        f"<th>outputs</th></tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def _shared(d: ReportData, members: list[int]) -> str:
    """What a big rule's steps run in: images, runtimes, and the environment once."""
    steps = [d.steps[i] for i in members]
    images = sorted({st.image for st in steps})
    runtimes = sorted({st.runtime or "?" for st in steps})
    first = steps[0].env
    same = all(st.env == first for st in steps)
    env = "\n".join(f"{k}={v}" for k, v in sorted(first.items()))
    which = "the same for every step" if same else f"of {steps[0].name}; it differs between steps"
    return (
        f"<p>image {', '.join(_image_link(d, x) for x in images)} · runtime "
        f"{e(', '.join(runtimes))}</p>"
        + (
            f"<details><summary>environment ({len(first)}, {e(which)})</summary>"
            f"<pre>{e(env)}</pre></details>"
            if first
            else ""
        )
    )


def steps_section(d: ReportData) -> str:
    out = ['<section id="steps"><h2>Steps</h2>']
    if not d.steps:
        out.append("<p>The bundle records no steps: it holds files only.</p>")
    folded = len(d.groups) < len(d.steps)
    for k, (name, members) in enumerate(d.groups.items()):
        if not folded:
            out.append(f'<span id="group-{k}"></span>')
            out += [_card(d, d.steps[i]) for i in members]
            continue
        out.append(
            f'<h3 id="group-{k}">{e(name)} <span class="caption">&times;{len(members)}</span></h3>'
        )
        if len(members) <= CARDS:
            out += [_card(d, d.steps[i]) for i in members]
            continue
        out.append(_shared(d, members))
        out.append(_table(d, members))
    out.append("</section>")
    return "\n".join(out)


def files_section(d: ReportData) -> str:
    lines = [
        (e(role), e(path), f'<span class="num">{e(format_size(size))}</span>', short(digest))
        for path, role, size, digest in d.files
    ]
    return (
        '<section id="files"><h2>Files</h2>'
        f'<p class="caption">{len(d.files)} files, {e(format_size(d.content_size))} of content, '
        f"{e(format_size(d.stored_size))} stored, bundle file {e(format_size(d.file_size))}</p>"
        "<table><thead><tr><th>role</th><th>path</th><th>size</th><th>digest</th></tr></thead>"
        f"<tbody>{rows(lines)}</tbody></table></section>"
    )
