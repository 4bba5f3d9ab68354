"""Report (b): a `driftd replay` output — statistics over time per version with alert and
resolve markers, quality over time, the versions side by side, performance, the alert
payloads; with the reference profile and the replay input, the distributions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson

from driftd.api import _engine
from driftd.api.comparison import current_window
from driftd.api.inputs import EventLines, lines_of
from driftd.api.monitor import Settings, describe, from_config
from driftd.api.profile import Profile
from driftd.config import Config, ProfileReference, SchemaConfig
from driftd.errors import ConfigError
from driftd.report.model import (
    QUALITY,
    Distribution,
    FeatureView,
    MetricTrack,
    MetricView,
    ReportModel,
    Track,
    _dig,
    _distribution,
    _spec_features,
    _verdict,
)


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
                            [
                                (pos, e)
                                for pos, e in alerts.get(version, [])
                                if e.startswith("performance.estimated_") == bool(kind)
                            ],
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
