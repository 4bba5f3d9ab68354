"""The report as one HTML file: plotly.js, the figures' data and the page's script inline, so
the file opens anywhere with no network (plotly's figure JSON is drawn by plotly.js, the same
library in the notebook and in the browser)."""

from __future__ import annotations

import html
import math
import os
from pathlib import Path
from typing import Any

import orjson

from driftd.errors import ConfigError
from driftd.report.figures import (
    distribution_figure,
    performance_figure,
    quality_figure,
    share_figure,
    timeline_figure,
)
from driftd.report.model import FeatureView, ReportModel


def _plotly() -> tuple[Any, Any]:
    try:
        import plotly.graph_objects as go
        import plotly.offline as po
    except ImportError:
        raise ConfigError(
            "report", "the HTML report needs plotly: pip install 'driftd[report]'"
        ) from None
    return go, po


# ---------------------------------------------------------------- the page


def _e(s: Any) -> str:
    return html.escape(str(s))


def _num(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return "NaN" if math.isnan(v) else f"{v:.4g}"
    return str(v)


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{_e(k)}</th>" for k in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{_e(_num(v))}</td>" for v in r.values()) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _feature_result_table(f: FeatureView) -> str:
    def row(r: dict[str, Any], version: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {"version": version} if version is not None else {}
        out.update(
            {
                "test": r.get("test"),
                "statistic": r.get("statistic"),
                "p-value": r.get("p_value"),
                "threshold": r.get("threshold"),
                "drifted": r.get("drifted"),
            }
        )
        for q, v in (r.get("quality") or {}).items():
            out[q.replace("_", " ")] = v
        return out

    if f.per_version:
        return "<p class='muted'>by version</p>" + _table([row(r, v) for v, r in f.per_version])
    label = "last evaluation" if f.tracks else "result"
    return f"<p class='muted'>{label}</p>" + _table([row(f.result or {}, None)])


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#212529;
background:#f8f9fa}
header{background:#212529;color:#f8f9fa;padding:16px 32px}
header h1{margin:0;font-size:22px} header p{margin:4px 0 0;color:#adb5bd;font-size:13px}
main{padding:16px 32px;max-width:1400px}
section{background:#fff;border:1px solid #dee2e6;border-radius:6px;padding:12px 16px;
margin:12px 0}
h2{font-size:18px;margin:4px 0 8px} h3{font-size:16px;margin:0}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{border:1px solid #dee2e6;padding:3px 8px;text-align:left}
th{background:#f1f3f5}
.badge{display:inline-block;border-radius:10px;padding:1px 9px;font-size:12px;margin-left:8px;
color:#fff}
.drifted{background:#e03131}.ok{background:#2f9e44}.warning{background:#f59f00}
.undefined{background:#868e96}
.plots{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:8px}
.muted{color:#868e96;font-size:12px;margin:4px 0}
pre{background:#f1f3f5;padding:8px;overflow:auto;font-size:12px}
details{margin:4px 0} summary{cursor:pointer;font-size:14px}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 16px;margin:0;font-size:14px}
dt{color:#868e96}
"""

SCRIPT = """
(function () {
  var figures = JSON.parse(document.getElementById("driftd-figures").textContent);
  var config = {displaylogo: false, responsive: true};
  Object.keys(figures).forEach(function (id) {
    var el = document.getElementById(id);
    Plotly.newPlot(el, figures[id].data, figures[id].layout, config);
  });
  document.body.setAttribute("data-plots-drawn", String(Object.keys(figures).length));
})();
"""


def render(model: ReportModel, title: str | None = None) -> str:
    go, po = _plotly()
    figures: dict[str, Any] = {}

    def plot(fig: Any, cls: str) -> str:
        pid = f"plot-{len(figures)}"
        figures[pid] = fig.to_plotly_json()
        return f'<div id="{pid}" class="plot {cls}"></div>'

    title = title or f"driftd report — {model.monitor}"
    parts = [
        f"<header><h1>{_e(title)}</h1><p>driftd {_e(model.version)} · generated"
        f" {_e(model.generated)} · {'comparison' if model.mode == 'compare' else 'replay'}"
        "</p></header><main>"
    ]
    summary = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in model.summary)
    parts.append(f'<section id="summary"><h2>Summary</h2><dl>{summary}</dl>')
    parts.extend(f"<p class='muted'>{_e(n)}</p>" for n in model.notes)
    overview = [
        {
            "feature": f.name,
            "kind": f.kind,
            "test": (f.result or {}).get("test", f.test),
            "statistic": (f.result or {}).get("statistic"),
            "p-value": (f.result or {}).get("p_value"),
            "threshold": (f.result or {}).get("threshold"),
            "verdict": f.verdict,
        }
        for f in model.features
    ]
    where = "last evaluation of each feature" if model.mode == "replay" else "the comparison"
    parts.append(f"<p class='muted'>{where}</p>" + _table(overview))
    parts.append("</section>")

    if model.versions:
        parts.append('<section id="versions"><h2>Versions</h2>')
        parts.append(_table(model.versions))
        if model.shares:
            parts.append(
                f'<div class="plots">{plot(share_figure(go, model.shares), "share-plot")}</div>'
            )
        parts.append("</section>")

    if model.performance:
        parts.append('<section id="performance"><h2>Performance</h2><div class="plots">')
        for view in model.performance:
            parts.append(plot(performance_figure(go, view), "performance-plot"))
        parts.append(
            "</div><p class='muted'>error bars: the interval of the difference with the"
            " baseline (or of an estimate)</p></section>"
        )

    parts.append('<section id="features"><h2>Features</h2>')
    for f in model.features:
        badge = f'<span class="badge {f.verdict}">{_e(f.verdict)}</span>'
        parts.append(
            f'<section class="feature" data-feature="{_e(f.name)}"><h3>{_e(f.name)}'
            f' <span class="muted">{_e(f.kind)}, {_e(f.test)}</span>{badge}</h3>'
        )
        plots = []
        if f.distribution is not None and f.distribution.series:
            plots.append(plot(distribution_figure(go, f.name, f.distribution), "dist-plot"))
        if f.tracks:
            plots.append(plot(timeline_figure(go, f.name, f.tracks, f.test), "timeline-plot"))
            if any(t.quality for t in f.tracks):
                plots.append(plot(quality_figure(go, f.name, f.tracks), "quality-plot"))
        parts.append(f'<div class="plots">{"".join(plots)}</div>')
        if f.distribution is not None and f.distribution.note:
            parts.append(f"<p class='muted'>{_e(f.distribution.note)}</p>")
        parts.append(_feature_result_table(f))
        parts.append("</section>")
    parts.append("</section>")

    if model.mode == "replay":
        parts.append(f'<section id="alerts"><h2>Alerts ({len(model.alerts)})</h2>')
        if not model.alerts:
            parts.append("<p class='muted'>no alert</p>")
        for a in model.alerts:
            w = a.get("window", {})
            head = (
                f"{a.get('event', a.get('type'))} · {a.get('model_version')} · position"
                f" {w.get('end_position')} · {a.get('time', '')}"
            )
            body = orjson.dumps(a, option=orjson.OPT_INDENT_2).decode()
            parts.append(
                f'<details class="alert"><summary>{_e(head)}</summary>'
                f"<pre>{_e(body)}</pre></details>"
            )
        parts.append("</section>")
    parts.append("</main>")

    data = orjson.dumps(figures, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    data = data.replace("</", "<\\/")  # never close the script element from inside the data
    js = po.get_plotlyjs()
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{_e(title)}"
        f"</title><style>{CSS}</style><script>{js}</script></head><body>"
        + "".join(parts)
        + f'<script type="application/json" id="driftd-figures">{data}</script>'
        + f"<script>{SCRIPT}</script></body></html>\n"
    )


def write_page(out: Path, model: ReportModel, title: str | None = None) -> Path:
    text = render(model, title)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out)
    return out
