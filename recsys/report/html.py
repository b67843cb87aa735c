"""``report.html``: one self-contained file (inline CSS, figures as base64 PNG data URIs).

Every piece of text that comes from the runs (labels, run names, reasons, paths) goes
through :func:`html.escape`; the page loads nothing from anywhere.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from datetime import UTC, datetime

from recsys.report.plots import Plot
from recsys.report.tables import (
    Comparison,
    Table,
    comparison_table,
    cost_assumption_table,
    failed_table,
    gate_table,
    hardware_table,
    policy_lines,
)

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2730;
margin:0;background:#f4f6f8}
main{max-width:1320px;margin:0 auto;padding:24px 32px 48px;background:#fff}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:32px 0 10px;border-bottom:1px solid
#dde3e8;padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}
.meta{color:#5b6b78;font-size:13px}
.rec{border-left:6px solid #2a9d8f;background:#eef8f6;padding:12px 18px;margin:16px 0}
.rec.none{border-color:#c0392b;background:#fbeeee}
.rec h2{border:0;margin:0 0 6px;padding:0}
.rec li{margin:3px 0}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-size:12.5px;margin:6px 0}
th,td{border:1px solid #dde3e8;padding:4px 7px;text-align:left;vertical-align:top}
th{background:#eef1f4;position:sticky;top:0}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td:first-child{white-space:nowrap}
tr.recommended td{background:#fff3c4;font-weight:600}
tr.fail td{color:#6b7780}
figure{margin:14px 0 22px}figure img{max-width:100%;height:auto;border:1px solid #e3e7eb}
figcaption{color:#5b6b78;font-size:13px}
code{background:#eef1f4;padding:0 3px;border-radius:3px}
"""

_NUMERIC = {
    "NDCG@10",
    "recall@10",
    "retr. recall@k",
    "peak QPS",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "p99.9 ms",
    "$ per 1k req",
    "$ / month",
    "TCO $ / month",
    "dropped",
}


def esc(value: object) -> str:
    """Text from the data, safe inside HTML elements and attribute values."""
    return html.escape(str(value), quote=True)


def table(data: Table, row_class: Sequence[str] = ()) -> str:
    """An HTML table (every cell escaped) in a horizontally scrolling box."""
    header, rows = data
    if not rows:
        return "<p class='meta'>none</p>"
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = f" class='{esc(row_class[i])}'" if i < len(row_class) and row_class[i] else ""
        cells = "".join(
            f"<td class='num'>{esc(v)}</td>" if h in _NUMERIC else f"<td>{esc(v)}</td>"
            for h, v in zip(header, row, strict=True)
        )
        body.append(f"<tr{cls}>{cells}</tr>")
    return (
        f"<div class='scroll'><table><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def image(plot: Plot) -> str:
    """A figure with the PNG inlined as a base64 data URI."""
    data = base64.b64encode(plot.path.read_bytes()).decode("ascii")
    return (
        f"<figure><img alt='{esc(plot.title)}' src='data:image/png;base64,{data}'>"
        f"<figcaption><b>{esc(plot.title)}.</b> {esc(plot.caption)}</figcaption></figure>"
    )


def _recommendation(comparison: Comparison) -> str:
    rec = comparison.recommendation
    if rec.chosen is not None:
        name = f"<span class='meta'>({esc(rec.chosen.name)})</span>"
        title = f"Recommended: {esc(rec.chosen.label)} {name}"
        cls = "rec"
    else:
        title, cls = "No run meets every constraint", "rec none"
    items = "".join(f"<li>{esc(r)}</li>" for r in rec.reasons)
    notes = "".join(f"<li>{esc(n)}</li>" for n in rec.notes)
    extra = f"<p class='meta'>Notes:</p><ul>{notes}</ul>" if notes else ""
    return f"<section class='{cls}'><h2>{title}</h2><ul>{items}</ul>{extra}</section>"


def render_html(
    comparison: Comparison, plots: Sequence[Plot], generated: datetime | None = None
) -> str:
    """The whole page as a string."""
    runs, rec = comparison.runs, comparison.recommendation
    when = (generated or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    sources = ", ".join(f"<code>{esc(s)}</code>" for s in runs.sources)
    header, rows = comparison_table(comparison)
    classes = [
        "recommended"
        if "recommended" in row[-1]
        else ("" if row[header.index("gate")] == "pass" else "fail")
        for row in rows
    ]
    policy = "".join(f"<li>{esc(line)}</li>" for line in policy_lines(comparison))
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>recsys comparison: {esc(rec.chosen.label if rec.chosen else 'none')}</title>",
        f"<style>{CSS}</style></head><body><main>",
        "<h1>recsys comparison report</h1>",
        f"<p class='meta'>{len(runs)} usable run(s), {len(runs.failed)} failed or incomplete, "
        f"from {sources}; policy <code>{esc(comparison.policy.name)}</code>; "
        f"generated {esc(when)}.</p>",
        _recommendation(comparison),
        "<h2>Comparison</h2>",
        "<p class='meta'>Quality is offline (test split); latency is simulated at each run's peak "
        "QPS; cost is instances only unless marked TCO.</p>",
        table((header, rows), classes),
        "<h2>Figures</h2>",
        *(image(p) for p in plots),
        "<h2>Gate</h2>",
        f"<p>Policy <code>{esc(comparison.policy.name)}</code>:</p><ul>{policy}</ul>",
        table(gate_table(comparison)),
        "<h2>Failed or incomplete runs</h2>",
        table(failed_table(comparison)),
        "<h2>Assumptions (not measured here)</h2>",
        "<h3>Hardware prices</h3>",
        table(hardware_table(comparison)),
        "<h3>Cost assumptions</h3>",
        table(cost_assumption_table(comparison)),
        "</main></body></html>",
    ]
    return "\n".join(parts) + "\n"
