"""Report (a): a reference against current data — one comparison, or one per model version
when the current data holds several, side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson

from driftd.api import _engine
from driftd.api.comparison import _compare, _reference
from driftd.api.inputs import EventLines, is_files, lines_of
from driftd.config import Config, SchemaConfig
from driftd.io import Columns, to_columns
from driftd.report.model import (
    FeatureView,
    ReportModel,
    _dig,
    _distribution,
    _spec_features,
    _verdict,
)


def from_compare(
    reference: Any,
    current: Any,
    *,
    config: str | Path | Config | None = None,
    monitor: str | None = None,
    features: Any = None,
    tests: Any = None,
    thresholds: Any = None,
    fmt: str | None = None,
) -> ReportModel:
    """One comparison; when the current data carries several model versions (its
    ``model_version`` column or field), one comparison per version, side by side."""
    settings, ref = _reference(reference, config, monitor, features, tests, thresholds, None, fmt)
    spec = _engine.spec_for(settings.monitor, ref.data, settings.index)
    parts = _by_version(current, settings.schema, fmt) or [("current", current)]
    reps = [(name, _compare(settings, ref, spec, part, fmt)) for name, part in parts]
    split = len(reps) > 1
    feats = []
    for f in _spec_features(spec):
        results = []
        for name, rep in reps:
            r = rep.prediction if f is spec.prediction else rep.features[f.name]
            assert r is not None
            results.append((name, r.to_dict()))
        windows = [(name, rep._evaluation.window) for name, rep in reps]
        worst = next((d for _, d in results if d["drifted"]), results[-1][1])
        feats.append(
            FeatureView(
                f.name,
                f.kind,
                f.test.name,
                _verdict(worst),
                worst,
                _distribution(f, windows),
                per_version=results if split else [],
            )
        )
    first = reps[0][1]
    summary = [
        ("verdict", "drift" if any(r.drifted for _, r in reps) else "no drift"),
        ("monitor", first.monitor),
        ("reference", f"{first.reference_id} ({first.reference_events:,} events)"),
    ]
    versions = []
    for name, rep in reps:
        n_drift = sum(1 for r in rep.features.values() if r.drifted)
        line = (
            f"{rep.current_events:,} events"
            + (f", {rep.rejected:,} rejected" if rep.rejected else "")
            + f"; {n_drift} of {len(rep.features)} features drifted"
            + (f" (share {rep.drift_share:.3g})" if rep.features else "")
            + ("; prediction drifted" if rep.prediction and rep.prediction.drifted else "")
        )
        summary.append((name, line))
        if rep.quality_breaches:
            breaches = ", ".join(f"{b['name']} {b['test']}" for b in rep.quality_breaches)
            summary.append((f"{name} quality breaches", breaches))
        versions.append(
            {
                "version": name,
                "events": rep.current_events,
                "rejected": rep.rejected,
                "drifted": rep.drifted,
                "drift share": rep.drift_share,
                "drifted features": ", ".join(rep.drifted_features) or "none",
            }
        )
    return ReportModel("compare", first.monitor, summary, feats, versions if split else [])


def _by_version(current: Any, schema: SchemaConfig, fmt: str | None) -> list[tuple[str, Any]]:
    """The current data split by model version, in order of first appearance; [] when it has
    fewer than two versions (or none recorded)."""
    path = tuple(schema.model_version.split("."))
    if is_files(current):
        lines = list(lines_of(current, schema, fmt))
        keys: list[Any] = []
        for line in lines:
            try:
                keys.append(_dig(orjson.loads(line), path))
            except orjson.JSONDecodeError:
                keys.append(None)
        groups: dict[str, list[int]] = {}
        for i, k in enumerate(keys):
            groups.setdefault("(none)" if k is None else str(k), []).append(i)
        if len(groups) < 2:
            return []
        return [(k, EventLines([lines[i] for i in idx])) for k, idx in groups.items()]
    cols = to_columns(current)
    if schema.model_version not in cols:
        return []
    groups = {}
    for i, k in enumerate(cols.values_of(schema.model_version)):
        groups.setdefault("(none)" if k is None else str(k), []).append(i)
    if len(groups) < 2:
        return []
    out = []
    for k, idx in groups.items():
        take = np.asarray(idx, dtype=np.intp)
        part = {
            c: (v[take] if isinstance(v, np.ndarray) else [v[i] for i in idx])
            for c, v in cols.items()
        }
        out.append((k, Columns(part)))
    return out
