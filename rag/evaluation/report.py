"""Evaluation reports on disk: per-question JSONL, summary.json and a self-contained HTML page.

The page is rendered by Jinja2 from `rag/evaluation/templates/report.html` with autoescaping on, so question ids,
texts and answers are always shown as text, never run as markup. Plots are inline SVG drawn from shapes
computed here (metric bars per backend, a latency histogram): a new plot is one function returning a
`Chart` and one `{{ svg(...) }}` line in the template. No scripts, no plotting libraries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["render_html", "write_report"]

COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2"]
BAR_METRICS = [
    ("retrieval", "recall@k"),
    ("retrieval", "mrr@10"),
    ("retrieval", "ndcg@10"),
    ("answer", "token_f1"),
    ("answer", "contains_answer"),
    ("citations", "precision"),
    ("citations", "recall"),
    (None, "abstention_rate"),
    (None, "false_abstention_rate"),
]


@dataclass(frozen=True)
class Shape:
    """One SVG element: kind is rect, line or text; coordinates in pixels, already rounded."""

    kind: str
    x: float = 0.0
    y: float = 0.0
    width: float = 0.0  # rect; for a line, x2
    height: float = 0.0  # rect; for a line, y2
    fill: str = ""
    text: str = ""  # the text of a text element, or a rect's tooltip
    anchor: str = "start"


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    shapes: list[Shape] = field(default_factory=list)


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


def _px(value: float) -> float:
    return round(value, 1)


def metric_bars(summaries: list[dict]) -> Chart:
    """Grouped bars: one group per metric, one bar per backend, values 0..1."""
    width, height, top, bottom = 900, 260, 20, 70
    group_w = (width - 40) / len(BAR_METRICS)
    bar_w = group_w * 0.8 / max(1, len(summaries))
    plot_h = height - top - bottom
    shapes = [Shape("line", 30, top + plot_h, width, top + plot_h)]
    for i, (group, name) in enumerate(BAR_METRICS):
        x0 = 35 + i * group_w
        for j, s in enumerate(summaries):
            v = _metric(s, group, name)
            h, x = v * plot_h, x0 + j * bar_w
            shapes.append(
                Shape(
                    "rect",
                    _px(x),
                    _px(top + plot_h - h),
                    _px(bar_w - 2),
                    _px(h),
                    COLORS[j % len(COLORS)],
                    f"{s['backend']} {name}: {v:.3f}",
                )
            )
            shapes.append(
                Shape("text", _px(x + bar_w / 2), _px(top + plot_h - h - 3), text=f"{v:.2f}", anchor="middle")
            )
        label = f"{group + ' ' if group else ''}{name}".replace("_", " ")
        shapes.append(Shape("text", _px(x0 + group_w * 0.4), height - bottom + 16, text=label[:22], anchor="middle"))
    for j, s in enumerate(summaries):  # legend
        shapes.append(Shape("rect", 40 + j * 160, height - 22, 12, 12, COLORS[j % len(COLORS)]))
        shapes.append(Shape("text", 56 + j * 160, height - 12, text=s["backend"]))
    return Chart(width, height, shapes)


def latency_histogram(records: list[dict], bins: int = 20) -> Chart:
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
    shapes = []
    for j, b in enumerate(backends):
        for i, c in enumerate(counts[b]):
            h = c / peak * plot_h
            x = 40 + i * bw + j * bw / len(backends)
            shapes.append(
                Shape(
                    "rect",
                    _px(x),
                    _px(10 + plot_h - h),
                    _px(bw / len(backends) - 1),
                    _px(h),
                    COLORS[j % len(COLORS)],
                    f"{b}: {c}",
                )
            )
    shapes.append(Shape("line", 40, 10 + plot_h, width - 20, 10 + plot_h))
    shapes.append(Shape("text", 40, plot_h + 28, text="0 s"))
    shapes.append(Shape("text", width - 60, plot_h + 28, text=f"{hi:.2f} s"))
    return Chart(width, height, shapes)


def _environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("rag.evaluation", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(records: list[dict], summaries: list[dict], meta: dict) -> str:
    """The report page; every value from the data is escaped by the template engine."""
    summary_rows = [
        {
            "backend": s["backend"],
            "model": s["model"],
            "metrics": [_metric(s, g, n) for g, n in BAR_METRICS],
            "fallback": s.get("fallback_rate"),
            "first_p50": s["latency"].get("first_text_p50"),
            "p50": s["latency"]["p50"],
            "p95": s["latency"]["p95"],
        }
        for s in summaries
    ]
    return (
        _environment()
        .get_template("report.html")
        .render(
            meta=meta,
            metric_names=[((g + " ") if g else "") + n for g, n in BAR_METRICS],
            summaries=summary_rows,
            charts={"metrics": metric_bars(summaries), "latency": latency_histogram(records)},
            questions=sorted(records, key=lambda r: (r["passed"], r["backend"], str(r["id"]))),
        )
    )
