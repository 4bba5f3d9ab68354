"""Reference modes without a profile file: ``warmup`` and ``version``.

Both start from a *layout* spec (columns, kinds, tests where they can be fixed up front) built
on an empty placeholder profile. Categorical codes then come from the monitor's growing
category dictionary (:class:`driftd.ingest.decode.OpenCodes`), shared by every version of the
monitor; at evaluation time a lookup table maps those codes onto the categories of the
reference in use, codes the reference does not have going to its unseen bucket
(:class:`RemappedView`).

* **warmup** — each version's first N accepted events are folded into a
  :class:`~driftd.reference.warmup.WarmupBuilder`; when it is complete, :func:`warmup_spec` turns
  it into a profile, resolves the tests on it (automatic selection sees the reference's size),
  fits the multivariate statistic on its sampled rows and calibrates thresholds on it exactly
  like profile mode does (``build_spec``), once; the fitted statistic is checkpointed with the
  version's reference (:func:`profile_state`).
* **version** — :func:`versus_spec` builds, per evaluation, a reference from the baseline
  version's current window. Without ``test:`` numeric features get ``ks`` and categorical ones
  ``chi2``: two-sample hypothesis tests whose p-values account for both windows' sampling
  error. Their level (without ``threshold:``) is the calibration budget itself, ``alpha =
  target × step / 1e6 / features`` (:func:`driftd.stats.calibrate.alert_budget`), with no
  resampling needed. A distance test must be chosen explicitly and uses its configured or
  default threshold as it is: a calibration against one baseline window would be stale by the
  next step, and the defaults sit far above two-window noise at the usual window sizes (null
  PSI over 10 bins with 5,000 + 5,000 events ≈ 0.004, Wasserstein/σ ≈ 0.02).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from driftd.config import MonitorConfig, ProfileReference, VersionReference, WarmupReference
from driftd.errors import ConfigError
from driftd.monitor import multivar
from driftd.monitor.spec import FeatureSpec, MonitorSpec, build_spec
from driftd.reference.features import CategoricalReference, NumericReference, build_numeric
from driftd.reference.profile import FeatureRef, Fitted, Profile, ReferenceRows
from driftd.reference.warmup import WarmupBuilder
from driftd.stats import get_test
from driftd.windows.count import CountWindow
from driftd.windows.time import WindowView

log = logging.getLogger(__name__)

PREVIOUS = "previous"  # `version: previous`: the version that served before


def _empty(kind: str) -> FeatureRef:
    if kind == "numeric":
        return build_numeric(np.zeros(0))
    return CategoricalReference(0, 0, (), np.zeros(0, dtype=np.int64))


def placeholder_id(cfg: MonitorConfig) -> str:
    """Stands for the reference in the checkpoint fingerprint: what saved windows, category
    codes and warmup references depend on."""
    ref = cfg.reference
    if isinstance(ref, WarmupReference):
        base = f"warmup:{ref.events}:{ref.max_categories}"
        if cfg.multivariate is not None:  # fitted on the warmup rows, which are not kept
            key = orjson.dumps(multivar.fitted_key(cfg), option=orjson.OPT_SORT_KEYS)
            base += f":mv={hashlib.sha256(key).hexdigest()[:12]}"
        return base
    assert isinstance(ref, VersionReference)
    return f"version:{ref.max_categories}"


def layout_spec(cfg: MonitorConfig, index: int) -> MonitorSpec:
    """The monitor's spec before any reference exists. Raises ConfigError naming the key."""
    ref = cfg.reference
    assert not isinstance(ref, ProfileReference)
    if cfg.segment_by:
        raise ConfigError(
            f"monitors.{index}.segment_by",
            f"segments need a profile reference (per-segment references come from"
            f" `driftd profile build`); reference type {ref.type!r} has none",
        )
    if isinstance(ref, VersionReference) and cfg.window.type not in ("sliding", "tumbling"):
        raise ConfigError(
            f"monitors.{index}.window.type",
            "reference type 'version' compares count windows; use a sliding or tumbling window",
        )
    placeholder = Profile(
        monitor=cfg.name,
        events=0,
        features={n: _empty(f.kind) for n, f in cfg.features.items()},
        prediction=_empty(cfg.prediction.kind) if cfg.prediction is not None else None,
        id=placeholder_id(cfg),
    )
    spec = build_spec(cfg, placeholder, index, allow_calibration=False, layout_only=True)
    spec = replace(spec, mode=ref.type, open_categories=ref.max_categories)
    if isinstance(ref, WarmupReference):
        return spec  # tests and thresholds are resolved on each version's reference
    n_tested = len(cfg.features) + (1 if cfg.prediction is not None else 0)
    alpha = version_alpha(cfg, n_tested)

    def fix(f: FeatureSpec) -> FeatureSpec:
        fc = cfg.prediction if f.name == "prediction" else cfg.features[f.name]
        assert fc is not None
        if fc.test is None:
            f = replace(f, test=get_test("ks" if f.kind == "numeric" else "chi2"))
            f = replace(f, threshold=float(fc.threshold or f.test.default_threshold))
        if fc.threshold is None and f.test.threshold_kind == "p_value" and alpha is not None:
            # the budget already splits the false-alert target over the features: marked
            # calibrated so that no multiple-testing correction applies on top
            f = replace(f, threshold=alpha, calibrated=True)
        return f

    return replace(
        spec,
        features=tuple(fix(f) for f in spec.features),
        prediction=fix(spec.prediction) if spec.prediction is not None else None,
    )


def version_alpha(cfg: MonitorConfig, n_tested: int) -> float | None:
    from driftd.stats.calibrate import alert_budget

    target = cfg.calibration.false_alerts_per_million_events
    if target is None:
        return None
    w = cfg.window
    step = int(getattr(w, "step", getattr(w, "events", 1)))
    return float(alert_budget(target, step, max(1, n_tested), 1).alpha)


def describe(spec: MonitorSpec) -> str:
    """What the reference mode means, for ``driftd check-config``."""
    ref = spec.cfg.reference
    feats = [*spec.features, *([spec.prediction] if spec.prediction else [])]
    if isinstance(ref, WarmupReference):
        return (
            f"warmup reference: the first {ref.events} accepted events of each model version are"
            f" its reference; it is evaluated from event {ref.events + 1} on, with tests"
            " chosen and thresholds calibrated on that reference"
            f" (categories learnt, at most {ref.max_categories} per feature)"
        )
    assert isinstance(ref, VersionReference)
    if ref.version == PREVIOUS:
        base = "the version that served before it (rollback_to)" + (
            f", else {spec.cfg.fallback_version}" if spec.cfg.fallback_version else ""
        )
    else:
        base = f"version {ref.version!r} (not evaluated itself)"
    tests = ", ".join(f"{f.name}={f.test.name}@{f.threshold:.4g}" for f in feats)
    return (
        f"version reference: each version's current window is compared with the current"
        f" window of {base}; alerts name that version in rollback_to; {tests}"
    )


# ---------------------------------------------------------------------------- code remapping


def code_lut(table: dict[str, int], cap: int, ref: CategoricalReference) -> npt.NDArray[np.int32]:
    """Dictionary code → index in ``ref.categories`` (``k`` = unseen for anything else,
    including the overflow code ``cap``); the last entry maps the missing code -1 to -1."""
    k = len(ref.categories)
    index = {c: i for i, c in enumerate(ref.categories)}
    lut = np.full(cap + 2, k, dtype=np.int32)
    for label, code in table.items():
        lut[code] = index.get(label, k)
    lut[-1] = -1
    return lut


class RemappedView:
    """A window whose categorical columns read through lookup tables."""

    __slots__ = ("inner", "luts")

    def __init__(self, inner: WindowView, luts: list[npt.NDArray[np.int32]]) -> None:
        self.inner = inner
        self.luts = luts

    @property
    def filled(self) -> int:
        return self.inner.filled

    def num_column(self, j: int) -> npt.NDArray[np.float64]:
        return self.inner.num_column(j)

    def cat_column(self, j: int) -> npt.NDArray[np.int32]:
        return self.luts[j][self.inner.cat_column(j)]

    def span(self) -> dict[str, Any]:
        return self.inner.span()


def _cat_specs(spec: MonitorSpec) -> list[FeatureSpec]:
    """Categorical features by column (the prediction last when categorical)."""
    feats = [*spec.features, *([spec.prediction] if spec.prediction else [])]
    return sorted((f for f in feats if f.kind == "categorical"), key=lambda f: f.column)


def luts_for(spec: MonitorSpec, tables: list[dict[str, int]], cap: int) -> list[Any]:
    out = []
    for f in _cat_specs(spec):
        assert isinstance(f.ref, CategoricalReference)
        out.append(code_lut(tables[f.column], cap, f.ref))
    return out


def recode_luts(
    saved: list[list[str]], tables: list[dict[str, int]], cap: int
) -> list[npt.NDArray[np.int64]]:
    """Saved code → current code per categorical column, registering saved labels in the
    current dictionaries (they differ when a partition moved between processes)."""
    from driftd.ingest.decode import OpenCodes

    out = []
    for labels, table in zip(saved, tables, strict=True):
        lut = np.full(cap + 2, cap, dtype=np.int64)
        for code, label in enumerate(labels):
            lut[code] = table.lookup(label, cap) if isinstance(table, OpenCodes) else cap
        lut[-1] = -1
        out.append(lut)
    return out


# ---------------------------------------------------------------------------- warmup


def new_warmup(spec: MonitorSpec) -> WarmupBuilder:
    ref = spec.cfg.reference
    assert isinstance(ref, WarmupReference)
    return WarmupBuilder(ref.events, spec.n_num, spec.n_cat, seed=spec.cfg.calibration.seed)


def warmup_spec(
    layout: MonitorSpec,
    builder: WarmupBuilder,
    tables: list[dict[str, int]],
    index: int,
    version: str,
) -> MonitorSpec:
    """The version's spec on its completed warmup reference: tests resolved and thresholds
    calibrated on it (logged with the time it took)."""
    cfg = layout.cfg
    feats: dict[str, FeatureRef] = {}
    pred: FeatureRef | None = None
    for f in [*layout.features, *([layout.prediction] if layout.prediction else [])]:
        if f.kind == "numeric":
            ref: FeatureRef = builder.numeric(f.column)
        else:
            ref, overflow = builder.categorical(f.column, list(tables[f.column]))
            if overflow:
                log.warning(
                    "monitor %s version %s: %d warmup values of %s were beyond the bound of"
                    " %d categories; they and their like count as unseen",
                    cfg.name,
                    version,
                    overflow,
                    f.name,
                    layout.open_categories,
                    extra={"monitor": cfg.name, "model_version": version},
                )
        if f.name == "prediction" and layout.prediction is f:
            pred = ref
        else:
            feats[f.name] = ref
    prof = Profile(monitor=cfg.name, events=builder.seen, features=feats, prediction=pred)
    prof = replace(prof, id=str(prof.to_json()["id"]), created="")
    if cfg.multivariate is not None:
        prof = replace(prof, rows=_warmup_rows(layout, builder, tables, prof))
    spec = spec_on(layout, prof, index, version)
    object.__setattr__(prof, "rows", None)  # fitted: the rows are not needed any more
    return spec


def _warmup_rows(
    layout: MonitorSpec, builder: WarmupBuilder, tables: list[dict[str, int]], prof: Profile
) -> ReferenceRows:
    """The warmup reservoir's rows, categorical codes mapped onto ``prof``'s categories."""
    num, cat = builder.rows()
    numeric = [""] * num.shape[1]
    categorical = [""] * cat.shape[1]
    codes = np.empty(cat.shape, dtype=np.int64)
    for f in [*layout.features, *([layout.prediction] if layout.prediction else [])]:
        if f.kind == "numeric":
            numeric[f.column] = f.name
            continue
        categorical[f.column] = f.name
        ref = prof.prediction if f is layout.prediction else prof.features[f.name]
        assert isinstance(ref, CategoricalReference)
        lut = code_lut(tables[f.column], layout.open_categories, ref)
        codes[:, f.column] = lut[cat[:, f.column]]
    return ReferenceRows(tuple(numeric), tuple(categorical), np.array(num), codes)


def spec_on(
    layout: MonitorSpec, prof: Profile, index: int, version: str, *, restored: bool = False
) -> MonitorSpec:
    """``build_spec`` on a warmup profile: reuses the calibration it carries when it still
    matches the monitor's window and tests, else calibrates (logged with its duration)."""
    t0 = time.perf_counter()
    spec = build_spec(layout.cfg, prof, index)
    log.info(
        "monitor %s version %s: warmup reference %s %s (%d events); tests and"
        " thresholds resolved in %.2fs",
        layout.cfg.name,
        version,
        prof.id,
        "restored from the checkpoint" if restored else "complete",
        prof.events,
        time.perf_counter() - t0,
        extra={"monitor": layout.cfg.name, "model_version": version},
    )
    return replace(spec, mode="warmup", open_categories=layout.open_categories)


def profile_state(prof: Profile, arrays: dict[str, Any], prefix: str) -> dict[str, Any]:
    """A warmup profile for the checkpoint: numeric samples as arrays, the rest as JSON."""
    feats: dict[str, Any] = {}
    items = list(prof.features.items())
    if prof.prediction is not None:
        items.append(("prediction", prof.prediction))
    for name, ref in items:
        if isinstance(ref, NumericReference):
            arrays[f"{prefix}{name}"] = ref.sample
            feats[name] = {
                "kind": "numeric",
                "count": ref.count,
                "missing": ref.missing,
                "mean": ref.mean,
                "std": ref.std,
                "min": ref.min,
                "max": ref.max,
            }
        else:
            feats[name] = ref.to_json()
    out = {
        "id": prof.id,
        "events": prof.events,
        "features": feats,
        "has_prediction": prof.prediction is not None,
        "calibration": prof.calibration,
    }
    mv = prof.multivariate
    if mv is not None:
        out["multivariate"] = {"key": mv.key, "meta": mv.meta, "arrays": sorted(mv.arrays)}
        for name, arr in mv.arrays.items():
            arrays[f"{prefix}#mv.{name}"] = arr
    return out


def profile_from_state(meta: dict[str, Any], arrays: dict[str, Any], prefix: str) -> Profile:
    from driftd.reference.features import numeric_from_sample

    refs: dict[str, FeatureRef] = {}
    for name, d in meta["features"].items():
        if d["kind"] == "numeric":
            refs[name] = numeric_from_sample(
                np.asarray(arrays[f"{prefix}{name}"], dtype=np.float64),
                count=int(d["count"]),
                missing=int(d["missing"]),
                mean=float(d["mean"]),
                std=float(d["std"]),
                lo=float(d["min"]),
                hi=float(d["max"]),
            )
        else:
            refs[name] = CategoricalReference.from_json(d)
    pred = refs.pop("prediction") if meta["has_prediction"] else None
    mv = meta.get("multivariate")
    fitted = None
    if mv is not None:
        saved = {name: np.asarray(arrays[f"{prefix}#mv.{name}"]) for name in mv["arrays"]}
        fitted = Fitted(dict(mv["key"]), dict(mv["meta"]), saved)
    return Profile(
        monitor="",
        events=int(meta["events"]),
        features=refs,
        prediction=pred,
        created="",
        id=str(meta["id"]),
        calibration=meta.get("calibration"),
        multivariate=fitted,
    )


# ---------------------------------------------------------------------------- version


def baseline_of(cfg: MonitorConfig, version: str, order: list[str], live: set[str]) -> str | None:
    """The version ``version`` is compared with (None: it is not evaluated)."""
    ref = cfg.reference
    assert isinstance(ref, VersionReference)
    if ref.version != PREVIOUS:
        return ref.version if version != ref.version and ref.version in live else None
    if version in order:
        i = order.index(version)
        if i > 0:
            return order[i - 1]
    fb = cfg.fallback_version
    return fb if fb is not None and fb != version and fb in live else None


def versus_spec(
    layout: MonitorSpec, baseline: CountWindow, tables: list[dict[str, int]]
) -> tuple[MonitorSpec, list[Any]]:
    """The layout with references built from the baseline window's current content, and the
    lookup tables that map the evaluated window's category codes onto them."""
    cap = layout.open_categories
    luts: list[Any] = []

    def ref_of(f: FeatureSpec) -> FeatureSpec:
        if f.kind == "numeric":
            return replace(f, ref=build_numeric(baseline.num_column(f.column)))
        codes = baseline.cat_column(f.column)
        present = codes[codes >= 0]
        table = tables[f.column]
        labels = list(table)
        counts = np.bincount(present, minlength=cap + 1)[: len(labels)]
        idx = np.array(
            sorted(np.flatnonzero(counts > 0).tolist(), key=labels.__getitem__), dtype=np.int64
        )  # label order: independent of how the dictionary numbered the codes
        ref = CategoricalReference(
            count=int(counts.sum()),
            missing=int(codes.shape[0] - present.shape[0]),
            categories=tuple(labels[i] for i in idx),
            counts=counts[idx].astype(np.int64),
        )
        return replace(f, ref=ref)

    spec = replace(
        layout,
        features=tuple(ref_of(f) for f in layout.features),
        prediction=ref_of(layout.prediction) if layout.prediction is not None else None,
    )
    luts = luts_for(spec, tables, cap)
    return spec, luts
