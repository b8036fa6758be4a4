"""The page's one stylesheet (inline): system fonts only, readable on screen and on paper."""

from __future__ import annotations

__all__ = ["CSS"]

CSS = """
:root { --fg: #1d2330; --muted: #5b6475; --line: #d7dbe3; --bg: #ffffff; --soft: #f4f6f9;
  --ok: #1f7a3a; --ok-bg: #e3f4e8; --eq: #1f5fa8; --eq-bg: #e3edf9; --bad: #b3261e;
  --bad-bg: #fbe4e2; --warn: #8a5a00; --warn-bg: #fdf0d5; --skip: #6b7280; --skip-bg: #eceef2; }
* { box-sizing: border-box; }
html { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { margin: 0; color: var(--fg); background: var(--bg); line-height: 1.45;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Helvetica, Arial,
  sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 60px; }
h1 { font-size: 1.7rem; margin: 0 0 6px; overflow-wrap: anywhere; }
h2 { font-size: 1.25rem; margin: 36px 0 10px; padding-bottom: 4px;
  border-bottom: 2px solid var(--line); }
h3 { font-size: 1.05rem; margin: 22px 0 8px; overflow-wrap: anywhere; }
code, pre, .mono { font-family: ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo,
  Consolas,
  monospace; font-size: 0.86em; }
pre { background: var(--soft); border: 1px solid var(--line); border-radius: 6px;
  padding: 10px 12px;
  white-space: pre-wrap; overflow-wrap: anywhere; margin: 6px 0; }
.lead { color: var(--muted); margin: 0 0 14px; }
nav.toc { display: flex; flex-wrap: wrap; gap: 6px 16px; margin: 12px 0 4px;
  font-size: 0.92rem; }
nav.toc a { color: var(--eq); text-decoration: none; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 18px;
  margin: 10px 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 10px; font-size: 0.9rem; }
th, td { text-align: left; vertical-align: top; padding: 4px 8px;
  border-bottom: 1px solid var(--line);
  overflow-wrap: break-word; }
th { color: var(--muted); font-weight: 600; background: var(--soft); }
td.num, th.num { text-align: right; white-space: nowrap; }
.pill { display: inline-block; padding: 1px 9px; border-radius: 10px; font-size: 0.82rem;
  font-weight: 600; overflow-wrap: anywhere; }
.s-identical, .s-ok, .st-valid-trusted, .v-ok { color: var(--ok); background: var(--ok-bg); }
.s-equivalent, .st-valid { color: var(--eq); background: var(--eq-bg); }
.s-different, .s-missing, .s-failed, .s-timeout, .st-invalid, .st-malformed, .v-bad
  { color: var(--bad); background: var(--bad-bg); }
.st-unknown-key, .st-unsigned { color: var(--warn); background: var(--warn-bg); }
.s-skipped, .s-none { color: var(--skip); background: var(--skip-bg); }
.banner { border-radius: 8px; padding: 10px 14px; margin: 14px 0; font-weight: 600; }
.graph { overflow: auto; border: 1px solid var(--line); border-radius: 8px; background: #fbfcfd;
  max-height: 80vh; }
.graph svg { display: block; }
.caption { color: var(--muted); font-size: 0.85rem; margin: 4px 0 0; }
svg text { font: 12px system-ui, -apple-system, "Segoe UI", "DejaVu Sans", Helvetica, Arial,
  sans-serif; fill: var(--fg); }
svg.lineage .edges path { fill: none; stroke: #8a93a5; stroke-width: 1.2; }
svg.lineage .arrowhead { fill: #8a93a5; }
svg.lineage .box { stroke-width: 1.3; }
svg.lineage .node text { text-anchor: middle; }
svg.lineage .node .sub { fill: var(--muted); font-size: 11px; }
svg.lineage .k-origin .box { fill: #f1f3f6; stroke: #7c8596; }
svg.lineage .k-file .box { fill: #ffffff; stroke: #9aa3b2; stroke-dasharray: 4 2; }
svg.lineage .k-result .box { fill: #fff7e0; stroke: #b8860b; stroke-width: 2; }
svg.lineage .k-step .box { fill: #eef3fb; stroke: #4a6fa5; }
svg.lineage .k-step.s-identical .box, svg.lineage .k-step.s-ok .box { fill: var(--ok-bg);
  stroke: var(--ok); }
svg.lineage .k-step.s-equivalent .box { fill: var(--eq-bg); stroke: var(--eq); }
svg.lineage .k-step.s-different .box, svg.lineage .k-step.s-missing .box,
svg.lineage .k-step.s-failed .box, svg.lineage .k-step.s-timeout .box { fill: var(--bad-bg);
  stroke: var(--bad); }
svg.lineage .k-step.s-skipped .box { fill: var(--skip-bg); stroke: var(--skip); }
svg.lineage .node .label { font-weight: 600; }
svg.lineage .badge-text { font-size: 10px; fill: #ffffff; font-weight: 600; }
.badge.b0 { fill: #4a6fa5; } .badge.b1 { fill: #2a8c82; } .badge.b2 { fill: #8e5ba8; }
.badge.b3 { fill: #b5651d; } .badge.b4 { fill: #5f7d2a; } .badge.b5 { fill: #a63d5a; }
.badge.b6 { fill: #4d5b6e; } .badge.b7 { fill: #1f7a9e; } .badge.bn { fill: #6b7280; }
.img-badge { display: inline-block; width: 0.8em; height: 0.8em; border-radius: 50%;
  margin-right: 5px;
  vertical-align: -1px; }
.c0 { background: #4a6fa5; } .c1 { background: #2a8c82; } .c2 { background: #8e5ba8; }
.c3 { background: #b5651d; } .c4 { background: #5f7d2a; } .c5 { background: #a63d5a; }
.c6 { background: #4d5b6e; } .c7 { background: #1f7a9e; } .cn { background: #6b7280; }
article.step { border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px;
  margin: 10px 0;
  break-inside: avoid; }
article.step h4 { margin: 0 0 6px; font-size: 1rem; overflow-wrap: anywhere; }
.diffs { margin: 4px 0 8px 0; padding-left: 20px; font-size: 0.88rem; }
.diffs li { overflow-wrap: anywhere; }
.diffs .ignored { color: var(--muted); }
svg.plot { max-width: 100%; height: auto; display: block; margin: 6px 0; }
svg.plot .label { font-size: 11px; }
svg.plot .note, svg.plot .axis { font-size: 10.5px; fill: var(--muted); }
svg.plot .end { text-anchor: end; } svg.plot .mid { text-anchor: middle; }
svg.plot .track { fill: var(--soft); stroke: var(--line); }
svg.plot .bar { fill: var(--bad); }
svg.plot .tick { stroke: var(--fg); stroke-width: 1.4; }
svg.plot .frame { fill: #fbfcfd; stroke: var(--line); }
svg.plot polyline { fill: none; stroke-width: 1.4; }
svg.plot .recorded { stroke: #4d5b6e; }
svg.plot .replayed { stroke: var(--bad); stroke-dasharray: 4 3; }
svg.plot .difference { stroke: var(--bad); }
svg.plot .zero { stroke: #9aa3b2; stroke-dasharray: 2 2; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 0.85rem;
  color: var(--muted);
  margin: 6px 0; }
.legend > span::before { content: ""; display: inline-block; width: 12px; height: 10px;
  margin-right: 4px;
  border: 1px solid #7c8596; vertical-align: -1px; }
.legend em { font-style: normal; }
table.steps td:first-child { white-space: nowrap; }
.legend .l-origin::before { background: #f1f3f6;
  } .legend .l-file::before { border-style: dashed; }
.legend .l-result::before { background: #fff7e0; border: 2px solid #b8860b; }
.legend .l-step::before { background: #eef3fb; border-radius: 6px; border-color: #4a6fa5; }
footer { color: var(--muted); font-size: 0.82rem; margin-top: 40px;
  border-top: 1px solid var(--line);
  padding-top: 8px; }
@media print {
  body { font-size: 10.5pt; }
  main { max-width: none; padding: 0; }
  nav.toc { display: none; }
  .graph { max-height: none; overflow: visible; border: none; }
  .graph svg { width: 100% !important; min-width: 0 !important; max-width: 100% !important; }
  h2 { break-after: avoid; }
  article.step, table tr, svg.plot { break-inside: avoid; }
  a { color: inherit; text-decoration: none; }
}
@page { margin: 14mm; }
"""
