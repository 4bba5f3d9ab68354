"""The report's figures as Plotly figures: distributions overlaid, statistics against
thresholds over time with alert markers, quality rates, drift share, performance metrics.
``go`` is ``plotly.graph_objects``, passed in so that plotly is imported only when a report
is drawn."""

from __future__ import annotations

import html
import math
from typing import Any

from driftd.report.model import Distribution, MetricView, Track

COLORS = ("#2a6fdb", "#e8590c", "#2b8a3e", "#ae3ec9", "#d6336c", "#1098ad", "#f59f00", "#495057")
REFERENCE = "#868e96"
ALERT = "#e03131"
RESOLVE = "#2f9e44"
QUALITY_DASH = {"missing_rate": "solid", "out_of_range_rate": "dot", "unseen_rate": "dash"}


def _color(i: int) -> str:
    return COLORS[i % len(COLORS)]


def _layout(title: str, xaxis: str, yaxis: str, **extra: Any) -> dict[str, Any]:
    return {
        "title": {"text": title, "font": {"size": 14}},
        "xaxis": {"title": {"text": xaxis}},
        "yaxis": {"title": {"text": yaxis}},
        "margin": {"l": 60, "r": 20, "t": 40, "b": 50},
        "height": 320,
        "legend": {"orientation": "h", "y": -0.25},
        "template": "plotly_white",
        **extra,
    }


def distribution_figure(go: Any, name: str, d: Distribution) -> Any:
    fig = go.Figure()
    for i, s in enumerate(d.series):
        color = REFERENCE if i == 0 else _color(i - 1)
        label = f"{s.name} ({s.events:,})"
        if d.kind == "numeric":
            fig.add_trace(
                go.Bar(
                    x=d.x,
                    y=s.shares,
                    width=d.width,
                    name=label,
                    marker={"color": color},
                    opacity=0.55,
                    hovertemplate="%{x:.4g}: %{y:.2%}<extra>" + html.escape(s.name) + "</extra>",
                )
            )
        else:
            fig.add_trace(
                go.Bar(
                    x=d.x,
                    y=s.shares,
                    name=label,
                    marker={"color": color},
                    hovertemplate="%{x}: %{y:.2%}<extra>" + html.escape(s.name) + "</extra>",
                )
            )
    mode = "overlay" if d.kind == "numeric" else "group"
    fig.update_layout(
        **_layout(f"{name}: distribution", "value" if d.kind == "numeric" else "", "share"),
        barmode=mode,
        bargap=0.0 if d.kind == "numeric" else 0.15,
    )
    fig.update_yaxes(tickformat=".0%")
    return fig


def _hover_ts(t: Track) -> list[str]:
    return [ts or "" for ts in t.ts]


def timeline_figure(go: Any, name: str, tracks: list[Track], test: str) -> Any:
    fig = go.Figure()
    for i, t in enumerate(tracks):
        c = _color(i)
        fig.add_trace(
            go.Scatter(
                x=t.x,
                y=[_finite(v) for v in t.statistic],
                mode="lines+markers",
                name=f"{t.name} {test}",
                line={"color": c},
                marker={"size": 4},
                customdata=_hover_ts(t),
                hovertemplate="position %{x}<br>%{customdata}<br>statistic %{y:.4g}<extra>"
                + html.escape(t.name)
                + "</extra>",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=t.x,
                y=[_finite(v) for v in t.threshold],
                mode="lines",
                name=f"{t.name} threshold",
                line={"color": c, "dash": "dash", "width": 1},
                hovertemplate="threshold %{y:.4g}<extra></extra>",
            )
        )
        _alert_markers(go, fig, t, t.statistic)
    fig.update_layout(**_layout(f"{name}: {test} over time", "window end (events read)", test))
    return fig


def _alert_markers(go: Any, fig: Any, t: Track, ys: list[float | None]) -> None:
    at = dict(zip(t.x, ys, strict=True))
    for event, color, symbol in (
        ("drift.detected", ALERT, "triangle-up"),
        ("drift.resolved", RESOLVE, "triangle-down"),
    ):
        pts = [(p, at.get(p), named) for p, e, named in t.alerts if e == event]
        if not pts:
            continue
        fig.add_trace(
            go.Scatter(
                x=[p for p, _, _ in pts],
                y=[_finite(y) for _, y, _ in pts],
                mode="markers",
                name=f"{t.name} {event.split('.')[1]}",
                marker={
                    "color": color,
                    "size": [14 if named else 9 for _, _, named in pts],
                    "symbol": [symbol if named else f"{symbol}-open" for _, _, named in pts],
                    "line": {"color": color, "width": 1.5},
                },
                hovertemplate=event + " at position %{x}<extra>" + html.escape(t.name) + "</extra>",
            )
        )


def quality_figure(go: Any, name: str, tracks: list[Track]) -> Any:
    fig = go.Figure()
    for i, t in enumerate(tracks):
        for q, values in t.quality.items():
            fig.add_trace(
                go.Scatter(
                    x=t.x,
                    y=[_finite(v) for v in values],
                    mode="lines",
                    name=f"{t.name} {q}",
                    line={"color": _color(i), "dash": QUALITY_DASH.get(q, "solid")},
                    hovertemplate=q + " %{y:.2%}<extra>" + html.escape(t.name) + "</extra>",
                )
            )
    fig.update_layout(**_layout(f"{name}: data quality", "window end (events read)", "rate"))
    fig.update_yaxes(tickformat=".3~%", rangemode="tozero")
    return fig


def share_figure(go: Any, tracks: list[Track]) -> Any:
    fig = go.Figure()
    for i, t in enumerate(tracks):
        fig.add_trace(
            go.Scatter(
                x=t.x,
                y=t.statistic,
                mode="lines+markers",
                name=t.name,
                line={"color": _color(i)},
                marker={"size": 4},
                hovertemplate="position %{x}: share %{y:.2f}<extra>"
                + html.escape(t.name)
                + "</extra>",
            )
        )
        _alert_markers(go, fig, t, t.statistic)
    fig.update_layout(**_layout("drift share by version", "window end (events read)", "share"))
    fig.update_yaxes(range=[0, 1.05])
    return fig


def performance_figure(go: Any, view: MetricView) -> Any:
    """A metric per version over time: the value, the interval the comparison with the
    baseline implies (or an estimate's interval) as error bars, the baseline dashed, and
    degradation / resolution alerts."""
    fig = go.Figure()
    for i, t in enumerate(view.tracks):
        c = _color(i)
        vals = [_finite(v) for v in t.value]
        up = [None if h is None or v is None else h - v for v, h in zip(vals, t.high, strict=True)]
        down = [
            None if lo is None or v is None else v - lo for v, lo in zip(vals, t.low, strict=True)
        ]
        bars = any(x is not None for x in up)
        fig.add_trace(
            go.Scatter(
                x=t.x,
                y=vals,
                mode="lines+markers",
                name=t.name,
                line={"color": c, "dash": "dot" if t.name.endswith("estimated") else "solid"},
                marker={"size": 5},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": up,
                    "arrayminus": down,
                    "visible": bars,
                    "thickness": 1,
                },
                hovertemplate=view.metric
                + " %{y:.4g} at position %{x}<extra>"
                + html.escape(t.name)
                + "</extra>",
            )
        )
        if any(b is not None for b in t.baseline):
            fig.add_trace(
                go.Scatter(
                    x=t.x,
                    y=[_finite(b) for b in t.baseline],
                    mode="lines",
                    name=f"{t.name} baseline",
                    line={"color": c, "dash": "dash", "width": 1},
                    hovertemplate="baseline %{y:.4g}<extra></extra>",
                )
            )
        at = dict(zip(t.x, vals, strict=True))
        for event, color, symbol in (
            ("performance.degraded", ALERT, "triangle-up"),
            ("performance.resolved", RESOLVE, "triangle-down"),
            ("performance.estimated_degraded", ALERT, "triangle-up-open"),
            ("performance.estimated_resolved", RESOLVE, "triangle-down-open"),
        ):
            pts = [p for p, e in t.alerts if e == event and p in at]
            if pts:
                fig.add_trace(
                    go.Scatter(
                        x=pts,
                        y=[at[p] for p in pts],
                        mode="markers",
                        name=f"{t.name} {event.split('.')[1]}",
                        marker={"color": color, "size": 14, "symbol": symbol},
                        hovertemplate=event + " at position %{x}<extra></extra>",
                    )
                )
    fig.update_layout(
        **_layout(f"{view.metric} by version", "labelled window end (events read)", view.metric)
    )
    return fig


def _finite(v: Any) -> float | None:
    if v is None:
        return None
    f = float(v)
    return f if math.isfinite(f) else None
