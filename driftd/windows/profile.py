"""Reference profiles: per-feature reference summaries compiled from baseline data.

File format (JSON, ``"format": "driftd-profile/1"``)::

    {"format": "driftd-profile/1", "id": "<sha256 of the content>", "monitor": "credit",
     "created": "<RFC 3339>", "events": 20000, "rejected": 0,
     "features": {"income": {"kind": "numeric", ...}, "region": {"kind": "categorical", ...}},
     "prediction": {...} | null}
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from driftd.config import FeatureConfig, MonitorConfig, SchemaConfig
from driftd.decode import Reject, _getter, to_category, to_float
from driftd.errors import ConfigError
from driftd.windows.reference import (
    MAX_RAW,
    CategoricalReference,
    NumericReference,
    build_categorical,
    build_numeric,
)

FORMAT = "driftd-profile/1"
FeatureRef = NumericReference | CategoricalReference


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

    def to_json(self) -> dict[str, Any]:
        body = {
            "format": FORMAT,
            "monitor": self.monitor,
            "events": self.events,
            "rejected": self.rejected,
            "features": {k: v.to_json() for k, v in self.features.items()},
            "prediction": self.prediction.to_json() if self.prediction is not None else None,
        }
        digest = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
        out = {**body, "id": digest[:16], "created": self.created}
        if self.calibration is not None:
            out["calibration"] = self.calibration
        return out

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
        return Profile(
            monitor=str(data["monitor"]),
            events=int(data["events"]),
            rejected=int(data.get("rejected", 0)),
            features={k: _ref_from_json(v) for k, v in data["features"].items()},
            prediction=_ref_from_json(data["prediction"]) if data.get("prediction") else None,
            created=str(data.get("created", "")),
            id=str(data.get("id", "")),
            calibration=data.get("calibration"),
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
) -> Profile:
    """Compile a profile from JSONL events in the event schema (model fields ignored).

    Lines that do not parse or carry wrong types are counted in ``rejected`` and skipped.
    """
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
    return Profile(
        monitor=monitor.name,
        events=events,
        rejected=rejected,
        features=feats_out,
        prediction=prediction,
    )
