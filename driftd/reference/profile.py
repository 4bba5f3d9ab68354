"""Reference profiles: per-feature reference summaries compiled from baseline data.

File format (JSON, ``"format": "driftd-profile/1"``)::

    {"format": "driftd-profile/1", "id": "<sha256 of the content>", "monitor": "credit",
     "created": "<RFC 3339>", "events": 20000, "rejected": 0,
     "features": {"income": {"kind": "numeric", ...}, "region": {"kind": "categorical", ...}},
     "prediction": {...} | null,
     "segments": {"by": ["features.region"], "min_events": 1000,
                  "references": [{"segment": {"features.region": "EU"}, "events": 5000,
                                  "features": {...}, "prediction": {...} | null,
                                  "calibration": {...}}, ...]}}

``segments`` is present only for a monitor with ``segment_by``: one reference per segment with
at least ``min_events`` rows. Their categorical features list the global reference's categories
in the same order (zero counts where the segment has none), so a window's category codes mean
the same against either reference.

Models fitted on whole reference rows rather than one feature at a time — the multivariate
drift statistic (``"multivariate"``) and the CBPE performance estimator (``"estimator"``) — are
stored beside them as :class:`Fitted` documents ``{"key", "meta", "arrays"}``: what they were
fitted for (method, features, options) and their state (:mod:`driftd.state.arrays`). Like
``calibration`` they are derived from the reference data and the monitor's config, so they are
not part of the profile id. While a profile is built its rows are kept (:class:`ReferenceRows`,
never saved) for the layer that fits those models (:mod:`driftd.monitor.spec`).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from driftd.config import FeatureConfig, MonitorConfig, SchemaConfig
from driftd.errors import ConfigError
from driftd.ingest.decode import Reject, _getter, segment_key_fn, to_category, to_float
from driftd.ingest.labels import as_number
from driftd.reference.features import (
    MAX_RAW,
    CategoricalReference,
    NumericReference,
    build_categorical,
    build_numeric,
)
from driftd.state.arrays import arrays_from_json, arrays_to_json

log = logging.getLogger(__name__)

FORMAT = "driftd-profile/1"
FeatureRef = NumericReference | CategoricalReference


@dataclass(frozen=True, slots=True)
class Fitted:
    """A model fitted on the reference rows, as the profile stores it: ``key`` says what it
    was fitted for (a monitor asking for another key needs the profile rebuilt), ``meta`` and
    ``arrays`` are its state (``to_state()`` of the model)."""

    key: dict[str, Any]
    meta: dict[str, Any]
    arrays: dict[str, npt.NDArray[Any]]

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "meta": self.meta, "arrays": arrays_to_json(self.arrays)}

    @staticmethod
    def from_json(d: dict[str, Any]) -> Fitted:
        return Fitted(dict(d["key"]), dict(d["meta"]), arrays_from_json(d["arrays"]))


@dataclass(frozen=True, slots=True)
class ReferenceRows:
    """The reference's rows in the windows' layout, kept while a profile is built: numeric
    features (``numeric`` order, NaN missing), categorical codes into the profile's categories
    (``-1`` missing), the numeric prediction and the labels (NaN missing) when read."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    num: npt.NDArray[np.float64]  # (n, len(numeric))
    cat: npt.NDArray[np.int64]  # (n, len(categorical))
    prediction: npt.NDArray[np.float64] | None = None
    labels: npt.NDArray[np.float64] | None = None

    def __len__(self) -> int:
        return int(self.num.shape[0])

    def take(self, idx: npt.NDArray[np.intp]) -> ReferenceRows:
        return ReferenceRows(
            self.numeric,
            self.categorical,
            self.num[idx],
            self.cat[idx],
            None if self.prediction is None else self.prediction[idx],
            None if self.labels is None else self.labels[idx],
        )


@dataclass(frozen=True, slots=True)
class Profile:
    monitor: str
    events: int
    features: dict[str, FeatureRef]
    prediction: FeatureRef | None
    rejected: int = 0
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    id: str = ""
    # Derived thresholds (driftd.stats.calibrate), keyed by what they depend on; not part of
    # the profile id, which identifies the reference data only.
    calibration: dict[str, Any] | None = None
    # Per-segment references (monitors with segment_by), keyed by the segment's values in
    # ``segment_by`` order; a segment reference has ``segment`` set and no segments itself.
    segment_by: tuple[str, ...] = ()
    segment_min_events: int = 0
    segments: dict[tuple[str, ...], Profile] = field(default_factory=dict)
    segment: dict[str, str] | None = None
    # Models fitted on whole rows (multivariate statistic, CBPE estimator); not part of the id.
    multivariate: Fitted | None = None
    estimator: Fitted | None = None
    # The rows, while the profile is being built (never saved).
    rows: ReferenceRows | None = field(default=None, compare=False, repr=False)

    def _body(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "rejected": self.rejected,
            "features": {k: v.to_json() for k, v in self.features.items()},
            "prediction": self.prediction.to_json() if self.prediction is not None else None,
        }

    def to_json(self) -> dict[str, Any]:
        body = {"format": FORMAT, "monitor": self.monitor, **self._body()}
        if self.segment_by:
            body["segments"] = {
                "by": list(self.segment_by),
                "min_events": self.segment_min_events,
                "references": [
                    {"segment": dict(zip(self.segment_by, k, strict=True)), **p._body()}
                    for k, p in self.segments.items()
                ],
            }
        digest = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
        out = {**body, "id": digest[:16], "created": self.created}
        self._derived(out)
        if self.segment_by:
            for ref, p in zip(out["segments"]["references"], self.segments.values(), strict=True):
                p._derived(ref)
        return out

    def _derived(self, out: dict[str, Any]) -> None:
        """What is derived from the reference data and the config: outside the id."""
        if self.calibration is not None:
            out["calibration"] = self.calibration
        if self.multivariate is not None:
            out["multivariate"] = self.multivariate.to_json()
        if self.estimator is not None:
            out["estimator"] = self.estimator.to_json()

    def save(self, path: Path) -> str:
        data = self.to_json()
        tmp = path.with_name(path.name + ".tmp")
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            fh.write(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return str(data["id"])

    @staticmethod
    def load(path: Path) -> Profile:
        data = orjson.loads(path.read_bytes())
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} file")
        pid = str(data.get("id", ""))
        seg = data.get("segments") or {}
        by = tuple(str(p) for p in seg.get("by", ()))
        segments: dict[tuple[str, ...], Profile] = {}
        for ref in seg.get("references", ()):
            values = {str(k): str(v) for k, v in ref["segment"].items()}
            key = tuple(values[p] for p in by)
            segments[key] = _profile_from_json(
                ref, str(data["monitor"]), f"{pid}/{segment_label(by, key)}", values
            )
        prof = _profile_from_json(data, str(data["monitor"]), pid, None)
        return replace(
            prof,
            created=str(data.get("created", "")),
            segment_by=by,
            segment_min_events=int(seg.get("min_events", 0)),
            segments=segments,
        )


def segment_label(by: tuple[str, ...] | list[str], key: tuple[str, ...]) -> str:
    """A segment as one string, ``path=value`` pairs joined by commas in ``segment_by``
    order (the ``segment`` label of the Prometheus series). ``\\``, ``,`` and ``=`` in values
    are escaped with a backslash, so distinct segments never share a label (or alert id)."""
    return ",".join(f"{p}={_escape(v)}" for p, v in zip(by, key, strict=True))


def _escape(v: str) -> str:
    if "\\" in v or "," in v or "=" in v:
        return v.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")
    return v


def _profile_from_json(
    d: dict[str, Any], monitor: str, pid: str, segment: dict[str, str] | None
) -> Profile:
    return Profile(
        monitor=monitor,
        events=int(d["events"]),
        rejected=int(d.get("rejected", 0)),
        features={k: _ref_from_json(v) for k, v in d["features"].items()},
        prediction=_ref_from_json(d["prediction"]) if d.get("prediction") else None,
        id=pid,
        calibration=d.get("calibration"),
        segment=segment,
        multivariate=Fitted.from_json(d["multivariate"]) if d.get("multivariate") else None,
        estimator=Fitted.from_json(d["estimator"]) if d.get("estimator") else None,
    )


def _ref_from_json(d: dict[str, Any]) -> FeatureRef:
    if d.get("kind") == "numeric":
        return NumericReference.from_json(d)
    if d.get("kind") == "categorical":
        return CategoricalReference.from_json(d)
    raise ValueError(f"unknown reference kind {d.get('kind')!r}")


def load_profile_for(monitor: MonitorConfig, path: Path, key: str) -> Profile:
    """Load a profile and check it covers the monitor's features with the right kinds."""
    try:
        prof = Profile.load(path)
    except FileNotFoundError:
        raise ConfigError(key, f"profile file {path} does not exist") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(key, f"cannot read profile {path}: {exc}") from None
    for name, fc in monitor.features.items():
        ref = prof.features.get(name)
        if ref is None:
            raise ConfigError(key, f"profile {path} has no feature {name!r}")
        _check_kind(ref, fc, key, name)
    if monitor.prediction is not None:
        if prof.prediction is None:
            raise ConfigError(key, f"profile {path} has no prediction reference")
        _check_kind(prof.prediction, monitor.prediction, key, "prediction")
    if prof.segment_by and not monitor.segment_by:
        prof = replace(prof, segment_by=(), segments={})  # segment references not needed
    elif prof.segment_by and prof.segment_by != tuple(monitor.segment_by):
        log.warning(
            "monitor %s: profile %s holds segment references by %s, the monitor segments by %s;"
            " every segment is compared with the global reference (rebuild the profile)",
            monitor.name,
            path,
            list(prof.segment_by),
            monitor.segment_by,
        )
        prof = replace(prof, segment_by=(), segments={})
    return prof


def _check_kind(ref: FeatureRef, fc: FeatureConfig, key: str, name: str) -> None:
    kind = "numeric" if isinstance(ref, NumericReference) else "categorical"
    if kind != fc.kind:
        raise ConfigError(
            key, f"feature {name!r} is {fc.kind} in the config but {kind} in the profile"
        )


def build_profile(
    monitor: MonitorConfig,
    schema: SchemaConfig,
    lines: Iterable[bytes],
    *,
    max_raw: int = MAX_RAW,
    seed: int = 0,
    keep_rows: bool | None = None,
) -> Profile:
    """Compile a profile from JSONL events in the event schema (model fields ignored).

    Lines that do not parse or carry wrong types are counted in ``rejected`` and skipped.
    With ``keep_rows`` (default: when the monitor has ``multivariate`` or a performance
    ``estimate``) the profile and its segments carry their :class:`ReferenceRows`, with the
    labels (``schema.label``) when the monitor estimates performance.
    """
    perf = monitor.performance
    estimate = perf is not None and perf.estimate is not None
    if keep_rows is None:
        keep_rows = monitor.multivariate is not None or estimate
    get_label = _getter(schema.label) if keep_rows and estimate else None
    labels: list[float] = []
    get_feats = _getter(schema.features)
    get_pred = _getter(schema.prediction)
    num_names = [n for n, f in monitor.features.items() if f.kind == "numeric"]
    cat_names = [n for n, f in monitor.features.items() if f.kind == "categorical"]
    getters = {n: _getter(monitor.features[n].path or n) for n in monitor.features}
    num_vals: dict[str, list[float]] = {n: [] for n in num_names}
    cat_vals: dict[str, list[str | None]] = {n: [] for n in cat_names}
    pred_num: list[float] = []
    pred_cat: list[str | None] = []
    pk = monitor.prediction.kind if monitor.prediction else None
    seg_key = segment_key_fn(monitor.segment_by) if monitor.segment_by else None
    seg_keys: list[tuple[str, ...]] = []
    events = rejected = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
            if not isinstance(obj, dict):
                raise Reject("not_object")
            feats = get_feats(obj) or {}
            if not isinstance(feats, dict):
                raise Reject("bad_features")
            nrow = [to_float(getters[n](feats), n) for n in num_names]
            crow = [to_category(getters[n](feats), n) for n in cat_names]
            pred = get_pred(obj)
            p_num = to_float(pred, "prediction") if pk == "numeric" else 0.0
            p_cat = to_category(pred, "prediction") if pk == "categorical" else None
        except (orjson.JSONDecodeError, Reject):
            rejected += 1
            continue
        events += 1
        if get_label is not None:
            labels.append(as_number(get_label(obj)))
        if seg_key is not None:
            seg_keys.append(seg_key(obj))
        for n, v in zip(num_names, nrow, strict=True):
            num_vals[n].append(v)
        for n, c in zip(cat_names, crow, strict=True):
            cat_vals[n].append(c)
        if pk == "numeric":
            pred_num.append(p_num)
        elif pk == "categorical":
            pred_cat.append(p_cat)
    feats_out: dict[str, FeatureRef] = {}
    for n in monitor.features:
        if n in num_vals:
            feats_out[n] = build_numeric(np.asarray(num_vals[n]), max_raw=max_raw, seed=seed)
        else:
            feats_out[n] = build_categorical(cat_vals[n])
    prediction: FeatureRef | None = None
    if pk == "numeric":
        prediction = build_numeric(np.asarray(pred_num), max_raw=max_raw, seed=seed)
    elif pk == "categorical":
        prediction = build_categorical(pred_cat)
    kept: ReferenceRows | None = None
    if keep_rows:
        kept = _rows(
            num_names, cat_names, num_vals, cat_vals, feats_out, pred_num if pk == "numeric"
            else None, labels if get_label is not None else None
        )  # fmt: skip
    segments: dict[tuple[str, ...], Profile] = {}
    if seg_key is not None:
        rows: dict[tuple[str, ...], list[int]] = {}
        for i, k in enumerate(seg_keys):
            rows.setdefault(k, []).append(i)

        def _values(n: str) -> Sequence[Any]:
            return num_vals[n] if n in num_vals else cat_vals[n]

        for k, idx in sorted(rows.items()):
            if len(idx) < monitor.segment_min_reference_events:
                continue
            seg_feats = {
                n: _segment_ref(feats_out[n], _values(n), idx, max_raw, seed)
                for n in monitor.features
            }
            seg_pred: FeatureRef | None = None
            if prediction is not None:
                values = pred_num if pk == "numeric" else pred_cat
                seg_pred = _segment_ref(prediction, values, idx, max_raw, seed)
            segments[k] = Profile(
                monitor=monitor.name,
                events=len(idx),
                features=seg_feats,
                prediction=seg_pred,
                segment=dict(zip(monitor.segment_by, k, strict=True)),
                rows=kept.take(np.asarray(idx, dtype=np.intp)) if kept is not None else None,
            )
    return Profile(
        monitor=monitor.name,
        events=events,
        rejected=rejected,
        features=feats_out,
        prediction=prediction,
        segment_by=tuple(monitor.segment_by),
        segment_min_events=monitor.segment_min_reference_events if seg_key else 0,
        segments=segments,
        rows=kept,
    )


def _rows(
    num_names: list[str],
    cat_names: list[str],
    num_vals: dict[str, list[float]],
    cat_vals: dict[str, list[str | None]],
    refs: dict[str, FeatureRef],
    prediction: list[float] | None,
    labels: list[float] | None,
) -> ReferenceRows:
    n = len(labels) if labels is not None else 0
    if num_names:
        n = len(num_vals[num_names[0]])
    elif cat_names:
        n = len(cat_vals[cat_names[0]])
    num = np.empty((n, len(num_names)), dtype=np.float64)
    for j, name in enumerate(num_names):
        num[:, j] = num_vals[name]
    cat = np.empty((n, len(cat_names)), dtype=np.int64)
    for j, name in enumerate(cat_names):
        ref = refs[name]
        assert isinstance(ref, CategoricalReference)
        index = {c: i for i, c in enumerate(ref.categories)}
        cat[:, j] = [-1 if v is None else index.get(v, len(index)) for v in cat_vals[name]]
    return ReferenceRows(
        tuple(num_names),
        tuple(cat_names),
        num,
        cat,
        None if prediction is None else np.asarray(prediction, dtype=np.float64),
        None if labels is None else np.asarray(labels, dtype=np.float64),
    )


def _segment_ref(
    global_ref: FeatureRef, values: Sequence[Any], idx: list[int], max_raw: int, seed: int
) -> FeatureRef:
    if isinstance(global_ref, NumericReference):
        arr = np.asarray(values, dtype=np.float64)[np.asarray(idx, dtype=np.intp)]
        return build_numeric(arr, max_raw=max_raw, seed=seed)
    return _reindexed([values[i] for i in idx], global_ref)


def _reindexed(values: list[str | None], global_ref: CategoricalReference) -> CategoricalReference:
    """A segment's categorical reference over the global reference's categories, in its order
    (a segment's rows are a subset of the global rows, so every label is among them)."""
    own = build_categorical(values)
    counts = dict(zip(own.categories, own.counts.tolist(), strict=True))
    return CategoricalReference(
        count=own.count,
        missing=own.missing,
        categories=global_ref.categories,
        counts=np.asarray([counts.get(c, 0) for c in global_ref.categories], dtype=np.int64),
    )
