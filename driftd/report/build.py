"""What a report shows, computed from (a) a comparison or (b) a replay output: plain data
(:class:`ReportModel`) that :mod:`driftd.report.page` draws. No plotting here."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from driftd._version import __version__
from driftd.api import _engine
from driftd.api.comparison import _reference, current_window
from driftd.api.inputs import EventLines, is_files, lines_of
from driftd.api.monitor import Settings, describe, from_config
from driftd.api.profile import Profile
from driftd.config import Config, ProfileReference, SchemaConfig
from driftd.errors import ConfigError
from driftd.io import Columns, to_columns
from driftd.reference.features import CategoricalReference, NumericReference

NUM_BINS = 40
MAX_CATEGORIES = 30
TAIL = 0.005  # histogram range: the 0.5 % … 99.5 % quantiles of reference and current
QUALITY = ("missing_rate", "out_of_range_rate", "unseen_rate")


@dataclass
class Series:
    name: str
    shares: list[float]
    events: int


@dataclass
class Distribution:
    kind: str  # numeric | categorical
    x: list[Any]  # bin centres, or category labels
    width: list[float]  # bin widths (numeric)
    series: list[Series]
    note: str = ""


@dataclass
class Track:
    """One version's (or segment's) values over its evaluations."""

    name: str
    x: list[int]  # window end positions (events read)
    ts: list[str | None]  # window end times
    statistic: list[float | None]
    threshold: list[float | None]
    quality: dict[str, list[float | None]]
    alerts: list[tuple[int, str, bool]]  # (position, event, this feature among the reasons)


@dataclass
class FeatureView:
    name: str
    kind: str
    test: str
    verdict: str  # drifted | warning | ok | undefined
    result: dict[str, Any] | None  # the last (or only) evaluation of the feature
    distribution: Distribution | None
    tracks: list[Track] = field(default_factory=list)
    per_version: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (a), split


@dataclass
class MetricTrack:
    """One version's values of one performance metric over its evaluations: measured on
    labels (with the interval the comparison with the baseline implies), or estimated."""

    name: str
    x: list[int]
    value: list[float | None]
    low: list[float | None]
    high: list[float | None]
    baseline: list[float | None]
    alerts: list[tuple[int, str]]


@dataclass
class MetricView:
    metric: str
    tracks: list[MetricTrack]


@dataclass
class ReportModel:
    mode: str  # compare | replay
    monitor: str
    summary: list[tuple[str, str]]
    features: list[FeatureView]
    versions: list[dict[str, Any]] = field(default_factory=list)
    shares: list[Track] = field(default_factory=list)  # drift share over time per version
    alerts: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    performance: list[MetricView] = field(default_factory=list)
    generated: str = field(
        default_factory=lambda: (
            datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        )
    )
    version: str = __version__


# ---------------------------------------------------------------- distributions


def _numeric_distribution(
    ref: NumericReference, currents: Sequence[tuple[str, npt.NDArray[np.float64]]]
) -> Distribution:
    parts = [ref.sample] + [c[np.isfinite(c)] for _, c in currents]
    parts = [p for p in parts if p.size]
    if not parts:
        return Distribution("numeric", [], [], [], "no values")
    lo = min(float(np.quantile(p, TAIL)) for p in parts)
    hi = max(float(np.quantile(p, 1 - TAIL)) for p in parts)
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, NUM_BINS + 1)
    centres = ((edges[:-1] + edges[1:]) / 2).tolist()
    width = np.diff(edges).tolist()

    def shares(values: npt.NDArray[np.float64]) -> list[float]:
        if values.size == 0:
            return [0.0] * NUM_BINS
        idx = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, NUM_BINS - 1)
        return [float(x) for x in np.bincount(idx, minlength=NUM_BINS) / values.size]

    series = [Series("reference", shares(ref.sample), ref.count)]
    for name, cur in currents:
        finite = cur[np.isfinite(cur)]
        series.append(Series(name, shares(finite), int(finite.size)))
    note = (
        f"reference: {ref.sample.size:,} of {ref.count:,} values (the profile's sample);"
        " values beyond the 0.5–99.5 % quantiles are drawn in the edge bins"
    )
    return Distribution("numeric", centres, width, series, note)


def _categorical_distribution(
    ref: CategoricalReference, currents: Sequence[tuple[str, npt.NDArray[np.int32]]]
) -> Distribution:
    k = len(ref.categories)
    order = sorted(range(k), key=lambda i: -int(ref.counts[i]))[:MAX_CATEGORIES]
    labels = [ref.categories[i] for i in order] + ["(unseen)"]
    total = max(int(ref.counts.sum()), 1)
    series = [Series("reference", [int(ref.counts[i]) / total for i in order] + [0.0], ref.count)]
    for name, codes in currents:
        present = codes[codes >= 0]
        counts = np.bincount(present, minlength=k + 1)
        n = max(int(present.size), 1)
        series.append(
            Series(
                name, [int(counts[i]) / n for i in order] + [int(counts[k]) / n], int(present.size)
            )
        )
    note = "" if k <= MAX_CATEGORIES else f"the {MAX_CATEGORIES} most frequent of {k} categories"
    return Distribution("categorical", labels, [], series, note)


def _distribution(
    spec_feature: _engine.FeatureSpec, currents: Sequence[tuple[str, _engine.TableWindow]]
) -> Distribution:
    ref = spec_feature.ref
    if isinstance(ref, NumericReference):
        return _numeric_distribution(
            ref, [(n, w.num_column(spec_feature.column)) for n, w in currents]
        )
    return _categorical_distribution(
        ref, [(n, w.cat_column(spec_feature.column)) for n, w in currents]
    )


def _spec_features(spec: _engine.MonitorSpec) -> list[_engine.FeatureSpec]:
    """The prediction first (the model's output is what a rollback is about), then the
    features in config order."""
    return [*([spec.prediction] if spec.prediction is not None else []), *spec.features]


def _verdict(r: Mapping[str, Any] | None) -> str:
    if r is None:
        return "undefined"
    if r.get("drifted"):
        return "drifted"
    if r.get("level") == "warning":
        return "warning"
    if r.get("statistic") is None:
        return "undefined"
    return "ok"


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return "NaN" if math.isnan(v) else f"{v:.4g}"
    return str(v)


# ---------------------------------------------------------------- (a) a comparison


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
    from driftd.api.comparison import _compare

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


# ---------------------------------------------------------------- (b) a replay output


def _read_replay(replay: str | Path | Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(replay, str | Path):
        try:
            raw = Path(replay).read_bytes()
        except OSError as exc:
            raise ConfigError("--replay", f"cannot read {replay}: {exc.strerror or exc}") from None
        out = []
        for i, line in enumerate(raw.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                raise ConfigError("--replay", f"{replay}:{i} is not JSON") from None
            if isinstance(obj, dict):
                out.append(obj)
        return out
    return [dict(o) for o in replay]


def _track_key(o: Mapping[str, Any]) -> str:
    seg = o.get("segment")
    v = str(o.get("model_version"))
    if seg:
        return f"{v} [" + ", ".join(f"{k}={val}" for k, val in seg.items()) + "]"
    return v


def from_replay(
    replay: str | Path | Iterable[Mapping[str, Any]],
    *,
    profile: Any = None,
    events: Any = None,
    config: str | Path | Config | None = None,
    monitor: str | None = None,
    fmt: str | None = None,
) -> ReportModel:
    lines = _read_replay(replay)
    evals = [o for o in lines if o.get("type") == "evaluation"]
    if not evals:
        raise ConfigError("--replay", "the replay output holds no evaluation")
    monitors = list(dict.fromkeys(str(e["monitor"]) for e in evals))
    notes = []
    if monitor is None:
        monitor = monitors[0]
        if len(monitors) > 1:
            notes.append(
                f"the replay output has monitors {', '.join(monitors)}; this report shows"
                f" {monitor} (choose with --monitor)"
            )
    elif monitor not in monitors:
        raise ConfigError("--monitor", f"no evaluation of monitor {monitor!r} in the replay output")
    evals = [e for e in evals if e["monitor"] == monitor]
    alerts = [o for o in lines if o.get("type") == "alert" and o.get("monitor") == monitor]
    summaries = [o for o in lines if o.get("type") == "summary"]

    first = evals[0]
    names = (["prediction"] if first.get("prediction") else []) + list(first["features"])
    keys = list(dict.fromkeys(_track_key(e) for e in evals))
    by_key: dict[str, list[dict[str, Any]]] = {k: [] for k in keys}
    for e in evals:
        by_key[_track_key(e)].append(e)
    alerts_by_key: dict[str, list[dict[str, Any]]] = {}
    for a in alerts:
        alerts_by_key.setdefault(_track_key(a), []).append(a)

    def result(e: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
        r = e.get("prediction") if name == "prediction" else e["features"].get(name)
        return r if isinstance(r, Mapping) else None

    # reference and current distributions
    spec, schema, dist_note = _replay_spec(profile, config, monitor, names)
    currents: list[tuple[str, _engine.TableWindow]] = []
    if spec is not None and events is not None:
        currents = _version_windows(spec, schema, events, fmt, by_key)
    elif spec is not None:
        dist_note = "the reference only: pass the replay input (--events) to overlay each version"
    dists: dict[str, Distribution] = {}
    if spec is not None:
        for f in _spec_features(spec):
            dists[f.name] = _distribution(f, currents)
            if dist_note:
                dists[f.name].note = (
                    dists[f.name].note + "; " if dists[f.name].note else ""
                ) + dist_note
    elif dist_note:
        notes.append(dist_note)

    feats = []
    for name in names:
        tracks = []
        for k in keys:
            es = by_key[k]
            pos = [int(e["window"]["end_position"]) for e in es]
            rs = [result(e, name) for e in es]
            stat_at = dict(zip(pos, (r.get("statistic") if r else None for r in rs), strict=True))
            marks = []
            for a in alerts_by_key.get(k, []):
                p = int(a.get("window", {}).get("end_position", 0))
                named = any(f.get("name") == name for f in a.get("features", []))
                if p in stat_at:
                    marks.append((p, str(a.get("event", "")), named))
            tracks.append(
                Track(
                    name=k,
                    x=pos,
                    ts=[e["window"].get("end_ts") for e in es],
                    statistic=[r.get("statistic") if r else None for r in rs],
                    threshold=[r.get("threshold") if r else None for r in rs],
                    quality={
                        q: [(r.get("quality") or {}).get(q) if r else None for r in rs]
                        for q in QUALITY
                        if any(r and q in (r.get("quality") or {}) for r in rs)
                    },
                    alerts=marks,
                )
            )
        last = next((result(e, name) for e in reversed(evals) if result(e, name)), None)
        kind = "numeric"
        if spec is not None:
            kind = next((f.kind for f in _spec_features(spec) if f.name == name), kind)
        elif last is not None and "unseen_rate" in (last.get("quality") or {}):
            kind = "categorical"
        feats.append(
            FeatureView(
                name,
                kind,
                str(last.get("test")) if last else "",
                _verdict(last),
                dict(last) if last else None,
                dists.get(name),
                tracks,
            )
        )

    versions = []
    for k in keys:
        es = by_key[k]
        last = es[-1]
        al = alerts_by_key.get(k, [])
        drifted_now = [n for n in names if (r := result(last, n)) is not None and r.get("drifted")]
        versions.append(
            {
                "version": k,
                "evaluations": len(es),
                "positions": f"{es[0]['window']['start_position']}"
                f"–{last['window']['end_position']}",
                "alerts": sum(1 for a in al if a.get("event") == "drift.detected"),
                "resolved": sum(1 for a in al if a.get("event") == "drift.resolved"),
                "state": str(last.get("state", "")),
                "max drift share": max(float(e.get("drift_share") or 0.0) for e in es),
                "drifted in last window": ", ".join(drifted_now) or "none",
                "rollback to": next(
                    (str(a.get("rollback_to")) for a in al if a.get("event") == "drift.detected"),
                    "",
                ),
            }
        )
    shares = [
        Track(
            k,
            [int(e["window"]["end_position"]) for e in by_key[k]],
            [e["window"].get("end_ts") for e in by_key[k]],
            [float(e.get("drift_share") or 0.0) for e in by_key[k]],
            [None] * len(by_key[k]),
            {},
            [
                (int(a["window"]["end_position"]), str(a.get("event", "")), True)
                for a in alerts_by_key.get(k, [])
                if "window" in a
            ],
        )
        for k in keys
    ]
    n_alerts = sum(1 for a in alerts if a.get("event") == "drift.detected")
    summary = [
        ("verdict", f"{n_alerts} drift alert{'s' if n_alerts != 1 else ''}"),
        ("monitor", monitor),
        ("model", str(first.get("model", ""))),
        ("versions", ", ".join(keys)),
        ("evaluations", f"{len(evals):,}"),
    ]
    if summaries:
        s = summaries[-1]
        rej = s.get("rejected") or {}
        summary.append(
            (
                "events",
                f"{int(s.get('events', 0)):,} read, {int(s.get('accepted', 0)):,} accepted"
                + (", rejected: " + ", ".join(f"{r} {n}" for r, n in rej.items()) if rej else ""),
            )
        )
    if spec is not None:
        summary.append(("reference", f"{spec.profile.id} ({spec.profile.events:,} events)"))
    perf = _performance(lines, monitor)
    if perf:
        n_perf = sum(1 for a in alerts if a.get("event") == "performance.degraded")
        summary.insert(
            1, ("performance", f"{n_perf} degradation alert{'s' if n_perf != 1 else ''}")
        )
    return ReportModel("replay", monitor, summary, feats, versions, shares, alerts, notes, perf)


PERF_METRICS = 4  # metrics drawn when no comparison names them


def _performance(lines: list[dict[str, Any]], monitor: str) -> list[MetricView]:
    """Measured (``performance`` lines) and estimated (``performance_estimate``) metrics
    over time, per version, with degradation alerts."""
    measured = [o for o in lines if o.get("type") == "performance" and o.get("monitor") == monitor]
    estimated = [
        o for o in lines if o.get("type") == "performance_estimate" and o.get("monitor") == monitor
    ]
    if not measured and not estimated:
        return []
    compared = list(dict.fromkeys(k for o in measured for k in o.get("comparisons") or {}))
    metrics = (
        compared
        or list(dict.fromkeys(k for o in measured + estimated for k in o.get("metrics") or {}))[
            :PERF_METRICS
        ]
    )
    alerts: dict[str, list[tuple[int, str]]] = {}
    for a in lines:
        if a.get("type") == "alert" and str(a.get("event", "")).startswith("performance."):
            pos = (a.get("window") or {}).get("end_position")
            if pos is not None and a.get("monitor") == monitor:
                alerts.setdefault(str(a.get("model_version")), []).append((int(pos), a["event"]))
    views = []
    for metric in metrics:
        tracks = []
        for kind, rows in (("", measured), (" estimated", estimated)):
            for version in dict.fromkeys(str(o.get("model_version")) for o in rows):
                mine = [o for o in rows if str(o.get("model_version")) == version]
                xs: list[int] = []
                vals: list[float | None] = []
                lows: list[float | None] = []
                highs: list[float | None] = []
                bases: list[float | None] = []
                for o in mine:
                    m = (o.get("metrics") or {}).get(metric)
                    pos = (o.get("window") or {}).get("end_position")
                    if m is None or pos is None:
                        continue
                    xs.append(int(pos))
                    if isinstance(m, Mapping):  # an estimate with its interval
                        vals.append(m.get("estimate"))
                        lows.append(m.get("lower"))
                        highs.append(m.get("upper"))
                        bases.append(None)
                        continue
                    vals.append(float(m))
                    c = (o.get("comparisons") or {}).get(metric) or {}
                    base, ci = c.get("baseline"), c.get("ci") or [None, None]
                    ok = base is not None and None not in ci
                    lows.append(base + ci[0] if ok else None)
                    highs.append(base + ci[1] if ok else None)
                    bases.append(base)
                if xs:
                    tracks.append(
                        MetricTrack(
                            version + kind,
                            xs,
                            vals,
                            lows,
                            highs,
                            bases,
                            alerts.get(version, []) if not kind else [],
                        )
                    )
        if tracks:
            views.append(MetricView(metric, tracks))
    return views


def _replay_spec(
    profile: Any, config: str | Path | Config | None, monitor: str, names: list[str]
) -> tuple[_engine.MonitorSpec | None, SchemaConfig, str]:
    """The monitor's spec against the reference, when there is one to draw."""
    settings: Settings | None = None
    if config is not None:
        settings = from_config(config, monitor)
    prof: Profile | None = None
    if isinstance(profile, Profile):
        prof = profile
    elif profile is not None:
        prof = Profile.load(profile)
    elif settings is not None and isinstance(settings.monitor.reference, ProfileReference):
        prof = Profile.load(settings.monitor.reference.path)
    if prof is None:
        return None, SchemaConfig(), "no reference profile given (--profile): no distributions"
    if settings is None:
        settings = describe(
            name=monitor,
            kinds={n: k for n, k in prof.kinds.items() if n in names},
            prediction=prof.prediction_kind if "prediction" in names else None,
            features=None,
            tests=None,
            thresholds=None,
        )
    _engine.check_profile(settings.monitor, prof.data)
    # Distributions need the layout and references only: never calibrate for a picture.
    return _engine.layout_for(settings.monitor, prof.data), settings.schema, ""


def _version_windows(
    spec: _engine.MonitorSpec,
    schema: SchemaConfig,
    events: Any,
    fmt: str | None,
    by_key: Mapping[str, list[dict[str, Any]]],
) -> list[tuple[str, _engine.TableWindow]]:
    """Each version's events in its last evaluated window (by position and version)."""
    lines = list(lines_of(events, schema, fmt))
    version_path = tuple(schema.model_version.split("."))
    versions: list[str | None] = []
    for line in lines:  # positions count every line, as replay counts them
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            obj = None
        v = _dig(obj, version_path)
        versions.append(None if v is None else str(v))
    out = []
    for key, es in by_key.items():
        last = es[-1]
        if last.get("segment"):
            continue  # segments: their version's window stands for them
        w = last["window"]
        lo, hi = int(w["start_position"]), int(w["end_position"])
        want = str(last.get("model_version"))
        rows = [lines[p - 1] for p in range(lo, min(hi, len(lines)) + 1) if versions[p - 1] == want]
        window, _ = current_window(spec, schema, EventLines(rows), None)
        out.append((f"{key}, last window", window))
    return out


def _dig(obj: Any, path: Sequence[str]) -> Any:
    for part in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj
