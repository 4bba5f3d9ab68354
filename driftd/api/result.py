"""What :func:`driftd.compare` returns: the daemon's evaluation of one window, per feature."""

from __future__ import annotations

import html
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

QUALITY = ("missing_rate", "out_of_range_rate", "unseen_rate")


@dataclass(frozen=True, slots=True)
class FeatureResult:
    """One feature's (or the prediction's) test against the reference.

    ``drifted`` is ``p_value < threshold`` for hypothesis tests and ``statistic > threshold``
    for distances; ``statistic`` is NaN and ``p_value`` None when the test is undefined (an
    empty column, say). ``quality`` holds the data-quality rates of the current table:
    ``missing_rate``, and ``out_of_range_rate`` (numeric) or ``unseen_rate`` (categorical).
    """

    name: str
    kind: str
    test: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool
    level: str
    quality: dict[str, float]
    # the p-value level after multiple-testing correction (policy.multiple_testing), if any
    adjusted_threshold: float | None = None
    warn_threshold: float | None = None  # the configured earlier "warning" level, if any

    def to_dict(self) -> dict[str, Any]:
        """As in a replay ``evaluation`` line's ``features`` (plus ``kind``)."""
        d: dict[str, Any] = {
            "kind": self.kind,
            "test": self.test,
            "statistic": None if math.isnan(self.statistic) else self.statistic,
            "p_value": self.p_value,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "level": self.level,
            "quality": dict(self.quality),
        }
        if self.adjusted_threshold is not None:
            d["adjusted_threshold"] = self.adjusted_threshold
        if self.warn_threshold is not None:
            d["warn_threshold"] = self.warn_threshold
        return d


@dataclass(frozen=True, slots=True)
class DriftReport:
    """Per-feature verdicts for a current table against a reference.

    ``drifted`` is the monitor-level breach the daemon would act on (``policy.drift_share``,
    any drifted prediction, any breached quality check, a drifted multivariate statistic);
    ``quality_breaches`` lists breached quality checks as alerts list them; ``multivariate``
    is the monitor's multivariate statistic (``{"method", "statistic", "threshold",
    "drifted"}``) when its config has one.
    """

    features: dict[str, FeatureResult]
    prediction: FeatureResult | None
    drift_share: float
    drifted: bool
    quality_breaches: list[dict[str, Any]]
    reference_id: str
    reference_events: int
    current_events: int  # rows evaluated
    rejected: int  # rows with a value the daemon would reject the event for
    monitor: str
    multivariate: dict[str, Any] | None = None
    # daemon-side objects for the report (spec, window); not part of the result
    _evaluation: Any = field(default=None, repr=False, compare=False)

    def __iter__(self) -> Iterator[FeatureResult]:
        yield from self.features.values()
        if self.prediction is not None:
            yield self.prediction

    @property
    def drifted_features(self) -> list[str]:
        return [r.name for r in self if r.drifted]

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready: undefined statistics are None)."""
        out = {
            "monitor": self.monitor,
            "reference": {"id": self.reference_id, "events": self.reference_events},
            "current": {"events": self.current_events, "rejected": self.rejected},
            "features": {n: r.to_dict() for n, r in self.features.items()},
            "prediction": self.prediction.to_dict() if self.prediction else None,
            "quality_breaches": [dict(b) for b in self.quality_breaches],
            "drift_share": self.drift_share,
            "drifted": self.drifted,
        }
        if self.multivariate is not None:
            out["multivariate"] = dict(self.multivariate)
        return out

    def rows(self) -> list[dict[str, Any]]:
        """One flat row per feature (the prediction last): name, kind, test, statistic,
        p_value, threshold, drifted, level and the quality rates."""
        out = []
        for r in self:
            row: dict[str, Any] = {
                "feature": r.name,
                "kind": r.kind,
                "test": r.test,
                "statistic": r.statistic,
                "p_value": r.p_value,
                "threshold": r.threshold,
                "drifted": r.drifted,
                "level": r.level,
            }
            for q in QUALITY:
                row[q] = r.quality.get(q)
            out.append(row)
        return out

    def to_frame(self) -> Any:
        """:meth:`rows` as a pandas DataFrame indexed by feature (a polars DataFrame when
        only polars is installed)."""
        rows = self.rows()
        try:
            import pandas as pd
        except ImportError:
            try:
                import polars as pl
            except ImportError:
                raise ImportError("to_frame() needs pandas or polars") from None
            return pl.DataFrame(rows)
        return pd.DataFrame(rows).set_index("feature")

    def _repr_html_(self) -> str:
        verdict = "drift" if self.drifted else "no drift"
        n_drift = sum(1 for r in self.features.values() if r.drifted)
        head = (
            f"<p><b>driftd: {verdict}</b> — {n_drift} of {len(self.features)} features drifted"
            f" (share {self.drift_share:.2f}); reference {self.reference_events:,} events"
            f" ({html.escape(self.reference_id)}), current {self.current_events:,} events"
            + (f", {self.rejected:,} rejected" if self.rejected else "")
            + "</p>"
        )
        cols = ("feature", "kind", "test", "statistic", "p_value", "threshold", "drifted")
        th = "".join(f"<th>{c}</th>" for c in (*cols, "quality"))
        body = []
        for row, r in zip(self.rows(), self, strict=True):
            style = ' style="background:#fde2e1"' if r.drifted else ""
            cells = "".join(f"<td>{html.escape(_fmt(row[c]))}</td>" for c in cols)
            q = ", ".join(f"{k} {v:.3g}" for k, v in r.quality.items())
            body.append(f"<tr{style}>{cells}<td>{html.escape(q)}</td></tr>")
        return f"{head}<table><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>"

    def __repr__(self) -> str:
        drifted = ", ".join(self.drifted_features) or "none"
        return (
            f"DriftReport(monitor={self.monitor!r}, drifted={self.drifted},"
            f" drift_share={self.drift_share:.3g}, drifted_features=[{drifted}],"
            f" current_events={self.current_events})"
        )


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return "NaN" if math.isnan(v) else f"{v:.4g}"
    return str(v)


def feature_result(name: str, kind: str, d: dict[str, Any]) -> FeatureResult:
    stat = d["statistic"]
    return FeatureResult(
        name=name,
        kind=kind,
        test=d["test"],
        statistic=math.nan if stat is None else float(stat),
        p_value=d["p_value"],
        threshold=float(d["threshold"]),
        drifted=bool(d["drifted"]),
        level=str(d.get("level", "critical" if d["drifted"] else "ok")),
        quality=dict(d.get("quality", {})),
        adjusted_threshold=d.get("adjusted_threshold"),
        warn_threshold=d.get("warn_threshold"),
    )
