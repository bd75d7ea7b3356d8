"""Evaluation reports on disk: per-question JSONL, summary.json and a self-contained HTML page.

The HTML draws its plots as inline SVG (metric bars per backend, a latency histogram) and lists the
questions with failures first, so it opens anywhere without scripts or plotting libraries.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2"]
BAR_METRICS = [("retrieval", "recall@k"), ("retrieval", "mrr@10"), ("retrieval", "ndcg@10"),
               ("answer", "token_f1"), ("answer", "contains_answer"), ("citations", "precision"),
               ("citations", "recall"), (None, "abstention_rate"), (None, "false_abstention_rate")]


def write_report(out: Path, records: list[dict], summaries: list[dict], meta: dict) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.jsonl", "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    (out / "summary.json").write_text(json.dumps({**meta, "backends": summaries}, indent=2), encoding="utf-8")
    (out / "report.html").write_text(render_html(records, summaries, meta), encoding="utf-8")
    return out


def _metric(summary: dict, group: str | None, name: str) -> float:
    value = summary.get(name) if group is None else summary.get(group, {}).get(name)
    return float(value or 0.0)


def bars_svg(summaries: list[dict]) -> str:
    """Grouped bars: one group per metric, one bar per backend, values 0..1."""
    width, height, top, bottom = 900, 260, 20, 70
    group_w = (width - 40) / len(BAR_METRICS)
    bar_w = group_w * 0.8 / max(1, len(summaries))
    parts = [f'<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg" font-size="11">']
    plot_h = height - top - bottom
    parts.append(f'<line x1="30" y1="{top + plot_h}" x2="{width}" y2="{top + plot_h}" stroke="#333"/>')
    for i, (group, name) in enumerate(BAR_METRICS):
        x0 = 35 + i * group_w
        for j, s in enumerate(summaries):
            v = _metric(s, group, name)
            h = v * plot_h
            x = x0 + j * bar_w
            parts.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w - 2:.1f}" height="{h:.1f}" '
                         f'fill="{COLORS[j % len(COLORS)]}"><title>{html.escape(s["backend"])} {name}: {v:.3f}</title></rect>')
            parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h - h - 3:.1f}" text-anchor="middle">{v:.2f}</text>')
        label = f"{group + ' ' if group else ''}{name}".replace("_", " ")
        parts.append(f'<text x="{x0 + group_w * 0.4:.1f}" y="{height - bottom + 16}" text-anchor="middle">'
                     f'{html.escape(label[:22])}</text>')
    for j, s in enumerate(summaries):
        parts.append(f'<rect x="{40 + j * 160}" y="{height - 22}" width="12" height="12" fill="{COLORS[j % len(COLORS)]}"/>'
                     f'<text x="{56 + j * 160}" y="{height - 12}">{html.escape(s["backend"])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def histogram_svg(records: list[dict], bins: int = 20) -> str:
    """Latency histogram over all questions and backends, one colour per backend."""
    backends = sorted({r["backend"] for r in records})
    values = [r["latency"] for r in records]
    hi = max(values) if values else 1.0
    hi = hi if hi > 0 else 1.0
    counts = {b: [0] * bins for b in backends}
    for r in records:
        counts[r["backend"]][min(bins - 1, int(r["latency"] / hi * bins))] += 1
    peak = max((max(c) for c in counts.values()), default=1) or 1
    width, height, plot_h = 900, 220, 160
    bw = (width - 60) / bins
    parts = [f'<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg" font-size="11">']
    for j, b in enumerate(backends):
        for i, c in enumerate(counts[b]):
            h = c / peak * plot_h
            x = 40 + i * bw + j * bw / len(backends)
            parts.append(f'<rect x="{x:.1f}" y="{10 + plot_h - h:.1f}" width="{bw / len(backends) - 1:.1f}" '
                         f'height="{h:.1f}" fill="{COLORS[j % len(COLORS)]}"><title>{b}: {c}</title></rect>')
    parts.append(f'<line x1="40" y1="{10 + plot_h}" x2="{width - 20}" y2="{10 + plot_h}" stroke="#333"/>')
    parts.append(f'<text x="40" y="{plot_h + 28}">0 s</text><text x="{width - 60}" y="{plot_h + 28}">{hi:.2f} s</text>')
    parts.append("</svg>")
    return "".join(parts)


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def render_html(records: list[dict], summaries: list[dict], meta: dict) -> str:
    rows = sorted(records, key=lambda r: (r["passed"], r["backend"], r["id"]))
    head = ("<tr><th>backend</th><th>id</th><th>ok</th><th>question</th><th>answer</th><th>abstained</th>"
            "<th>F1</th><th>recall@k</th><th>latency s</th></tr>")
    body = "".join(
        f'<tr class="{"pass" if r["passed"] else "fail"}"><td>{html.escape(r["backend"])}</td><td>{r["id"]}</td>'
        f'<td>{"✓" if r["passed"] else "✗"}</td><td>{html.escape(r["question"])}</td>'
        f'<td>{html.escape(r["answer"])}</td><td>{r["abstained"]}</td>'
        f'<td>{_number(r.get("token_f1"))}</td><td>{_number(r.get("recall@k"))}</td>'
        f'<td>{r["latency"]:.2f}</td></tr>'
        for r in rows)
    table = "".join(
        f"<tr><td>{html.escape(s['backend'])}</td><td>{html.escape(s['model'])}</td>"
        + "".join(f"<td>{_metric(s, g, n):.3f}</td>" for g, n in BAR_METRICS)
        + f"<td>{s['latency']['p50']:.2f}</td><td>{s['latency']['p95']:.2f}</td></tr>" for s in summaries)
    names = "".join(f"<th>{html.escape(((g + ' ') if g else '') + n)}</th>" for g, n in BAR_METRICS)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>rag eval {html.escape(meta.get('run', ''))}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px;vertical-align:top}}tr.fail{{background:#fdecea}}tr.pass{{background:#eef7ee}}</style>
</head><body><h1>rag eval</h1><p>{html.escape(json.dumps(meta))}</p>
<h2>Summary</h2><table><tr><th>backend</th><th>model</th>{names}<th>p50 s</th><th>p95 s</th></tr>{table}</table>
<h2>Metrics per backend</h2>{bars_svg(summaries)}
<h2>Latency</h2>{histogram_svg(records)}
<h2>Questions (failures first)</h2><table>{head}{body}</table></body></html>"""
