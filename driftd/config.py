"""Configuration: frozen pydantic models matching DESIGN.md.

Precedence (highest first): CLI flags > ``DRIFTD_*`` environment variables > YAML file >
defaults. Environment keys nest with ``__`` and list items are addressed by index, e.g.
``DRIFTD_KAFKA__BOOTSTRAP_SERVERS='["k1:9092","k2:9092"]'`` or
``DRIFTD_MONITORS__0__POLICY__MIN_EVENTS=500``; values are parsed as YAML scalars. Only
variables whose first segment is a top-level config key are applied, so secrets such as
``DRIFTD_WEBHOOK_SECRET`` referenced with ``{env: …}`` never collide with overrides.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SecretStr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from driftd.errors import ConfigError, raise_all
from driftd.types import DetectorName, DriftTestName

ENV_PREFIX = "DRIFTD_"


class _Frozen(BaseModel):
    # Attribute docstrings become the JSON Schema's descriptions (`driftd config-schema`,
    # docs/config-reference.md): each field documents itself where it is declared.
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class SecretRef(_Frozen):
    """A secret given by environment variable, file, or (discouraged) inline value."""

    env: str | None = None
    """Name of the environment variable holding the secret."""
    file: Path | None = None
    """File holding the secret (surrounding whitespace is stripped), e.g. a mounted Secret."""
    value: SecretStr | None = None
    """The secret itself, inline (masked when printed; prefer env or file)."""

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        given = [x for x in (self.env, self.file, self.value) if x is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of env, file, value")
        return self

    def resolve(self, key: str = "secret") -> bytes:
        """The secret's bytes; ``ConfigError`` naming ``<key>.env`` / ``<key>.file`` when the
        variable is unset or the file unreadable."""
        if self.env is not None:
            v = os.environ.get(self.env)
            if v is None:
                raise ConfigError(f"{key}.env", f"environment variable {self.env} is not set")
            return v.encode()
        if self.file is not None:
            try:
                return self.file.read_bytes().strip()
            except OSError as exc:
                raise ConfigError(f"{key}.file", f"cannot read {self.file}: {exc}") from exc
        assert self.value is not None
        return self.value.get_secret_value().encode()


def _secret_kind(value: Any) -> str:
    return "SecretRef" if isinstance(value, dict | SecretRef) else "SecretStr"


# A string given inline (masked when printed), or a reference to an environment variable or a
# file: header values and proxy URLs, which may hold credentials.
SecretValue = Annotated[
    Annotated[SecretStr, Tag("SecretStr")] | Annotated[SecretRef, Tag("SecretRef")],
    Discriminator(_secret_kind),
]


class KafkaConfig(_Frozen):
    bootstrap_servers: list[str] = ["localhost:9092"]
    """Brokers to bootstrap from (`host:port`; a comma list in an environment variable)."""
    topics: list[str] = ["predictions"]
    """Topics carrying prediction events."""
    label_topics: list[str] = []
    """Topics carrying delayed labels (`{"event_id": …, "label": 1, "ts": …}`) for monitors with a
    `performance` block; consumed in the same group and committed the same way."""
    group_id: str = "driftd"
    """Consumer group; offsets are committed under it once the checkpoint covering them is
    durable."""
    client_id: str = "driftd"
    """Client id reported to the brokers."""
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    """Where a group without committed offsets starts reading."""
    max_poll_records: int = Field(default=10_000, ge=1)
    """Records fetched per poll (the micro-batch upper bound)."""
    fetch_max_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    """Most bytes one fetch request may return."""
    max_partition_fetch_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    """Most bytes one fetch may return per partition."""
    poll_timeout_ms: int = Field(default=200, ge=1)
    """How long one poll waits for records."""
    session_timeout_ms: int = Field(default=45_000, ge=1000)
    """Group session timeout: a member silent for this long is removed."""
    stall_restart_s: float = Field(default=60.0, ge=5.0)
    """Watchdog: a poll that has not returned for this long is a hung client; driftd persists its
    state and re-executes itself (restoring from the checkpoint)."""
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """Kafka security protocol (passed to the client)."""
    sasl_mechanism: str | None = None
    """SASL mechanism, e.g. `PLAIN` or `SCRAM-SHA-512`."""
    sasl_plain_username: str | None = None
    """SASL user name."""
    sasl_plain_password: SecretStr | None = None
    """SASL password (masked when printed)."""
    ssl_cafile: str | None = None
    """PEM file of the CA that signed the brokers' certificates."""
    ssl_certfile: str | None = None
    """PEM client certificate for TLS client authentication."""
    ssl_keyfile: str | None = None
    """PEM private key of `ssl_certfile`."""
    ssl_password: SecretStr | None = None
    """Password of `ssl_keyfile` (masked when printed)."""
    ssl_check_hostname: bool = True
    """Check that the broker certificate matches its host name."""

    @field_validator("bootstrap_servers", "topics", "label_topics", mode="before")
    @classmethod
    def _split_csv(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [s.strip() for s in v.split(",") if s.strip()]
        return v

    @field_validator("bootstrap_servers", "topics")
    @classmethod
    def _non_empty(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("must not be empty")
        return v

    @model_validator(mode="after")
    def _label_topics_apart(self) -> KafkaConfig:
        both = sorted(set(self.topics) & set(self.label_topics))
        if both:
            raise _KeyedValueError("label_topics", f"{', '.join(both)} also listed in kafka.topics")
        return self


class SchemaConfig(_Frozen):
    """Where each field lives in an event (dotted paths into the JSON object)."""

    model: str = "model"
    """Path of the model name."""
    model_version: str = "model_version"
    """Path of the model version."""
    timestamp: str = "ts"
    """Path of the event time (RFC 3339 string or epoch milliseconds; absent: the Kafka record
    timestamp)."""
    features: str = "features"
    """Path of the object holding the features."""
    prediction: str = "prediction"
    """Path of the prediction (a score or a class)."""
    event_id: str = "event_id"
    """Path of the event id (joins delayed labels; the normal message key)."""
    label: str = "label"
    """Path of a label carried by the prediction event itself (null or absent: none)."""


class ProfileReference(_Frozen):
    type: Literal["profile"]
    """Reference kind: a profile compiled by `driftd profile build`."""
    path: Path
    """Profile file (relative paths: to the working directory, else to the config file's
    directory)."""


class WarmupReference(_Frozen):
    """Each model version's first ``events`` accepted events are its reference; evaluation of
    that version starts after them. Categorical features learn their categories meanwhile (at
    most ``max_categories`` distinct labels per feature across the monitor; labels beyond
    that, and labels a version did not see during its warmup, count as unseen)."""

    type: Literal["warmup"]
    """Reference kind: each version's first events."""
    events: int = Field(default=10_000, ge=10)
    """Accepted events of each version that form its reference."""
    max_categories: int = Field(default=1000, ge=2)
    """Distinct categories learnt per categorical feature across the monitor."""


class VersionReference(_Frozen):
    """Compare each version's current window with the current window of a baseline version:
    the version named ``version`` (which is itself not evaluated), or with ``previous`` the
    version that served before it (first appearance in the stream; else
    ``fallback_version``). Needs a count window."""

    type: Literal["version"]
    """Reference kind: another live version's current window."""
    version: str = Field(min_length=1)
    """The baseline version's name, or `previous` for the version that served before."""
    max_categories: int = Field(default=1000, ge=2)
    """Distinct categories tracked per categorical feature across the monitor."""


Reference = Annotated[
    ProfileReference | WarmupReference | VersionReference, Field(discriminator="type")
]


class SlidingWindow(_Frozen):
    type: Literal["sliding"]
    """Window kind: the last `events` events, evaluated every `step` events."""
    events: int = Field(default=5000, ge=10)
    """Events in the window."""
    step: int = Field(default=1000, ge=1)
    """New events between two evaluations (at most `events`)."""

    @model_validator(mode="after")
    def _step_le_events(self) -> SlidingWindow:
        if self.step > self.events:
            raise ValueError("step must not exceed events")
        return self


class TumblingWindow(_Frozen):
    type: Literal["tumbling"]
    """Window kind: back-to-back windows of `events` events."""
    events: int = Field(default=5000, ge=10)
    """Events in each window."""


class TumblingTimeWindow(_Frozen):
    """Back-to-back windows of ``size_s`` seconds of event time. The monitor's watermark is
    the oldest of the newest event times its partitions delivered, minus
    ``allowed_lateness_s``; an event below it is rejected as ``late``. A partition that
    delivered nothing to the monitor for ``idle_partition_s`` (wall clock) stops holding the
    watermark back. Events more than ``max_future_s`` ahead of the clock are rejected as
    ``bad_timestamp`` (null: no bound)."""

    type: Literal["tumbling_time"]
    """Window kind: back-to-back windows of `size_s` seconds of event time."""
    size_s: float = Field(default=300.0, gt=0)
    """Window length in seconds of event time."""
    allowed_lateness_s: float = Field(default=30.0, ge=0)
    """How far behind the monitor's watermark (the oldest of its partitions' newest event
    times) an event may be; later ones are rejected as `late`."""
    max_events: int = Field(default=100_000, ge=100)
    """Events kept per window; beyond it a seeded subsample."""
    idle_partition_s: float = Field(default=30.0, gt=0)
    """A partition that delivered nothing to the monitor for this long (wall clock) stops
    holding the watermark back until it delivers again."""
    max_future_s: float | None = Field(default=86_400.0, gt=0)
    """Events more than this far ahead of this machine's clock are rejected as
    `bad_timestamp` (null: no bound)."""


class SlidingTimeWindow(_Frozen):
    type: Literal["sliding_time"]
    """Window kind: `size_s` seconds of event time, evaluated every `step_s`."""
    size_s: float = Field(default=300.0, gt=0)
    """Window length in seconds of event time (a whole multiple of `step_s`)."""
    step_s: float = Field(default=60.0, gt=0)
    """Seconds of event time between evaluations."""
    allowed_lateness_s: float = Field(default=30.0, ge=0)
    """How far behind the newest event time an event may be; later ones are rejected as `late`."""
    max_events: int = Field(default=100_000, ge=100)
    """Events kept per window; beyond it a seeded subsample."""
    idle_partition_s: float = Field(default=30.0, gt=0)
    """A partition that delivered nothing to the monitor for this long (wall clock) stops
    holding the watermark back until it delivers again."""
    max_future_s: float | None = Field(default=86_400.0, gt=0)
    """Events more than this far ahead of this machine's clock are rejected as
    `bad_timestamp` (null: no bound)."""

    @model_validator(mode="after")
    def _multiple(self) -> SlidingTimeWindow:
        k = round(self.size_s / self.step_s)
        if k < 1 or abs(k * self.step_s - self.size_s) > 1e-9 * self.size_s:
            raise ValueError("size_s must be a whole multiple of step_s")
        return self


Window = Annotated[
    SlidingWindow | TumblingWindow | TumblingTimeWindow | SlidingTimeWindow,
    Field(discriminator="type"),
]


class FeatureConfig(_Frozen):
    kind: Literal["numeric", "categorical"]
    """Numeric or categorical values."""
    test: DriftTestName | None = None
    """Drift test; null picks one from the kind and the reference size."""
    threshold: float | None = None
    """Critical level (p-value below it, or statistic above it, is drift); null: calibrated, or the
    test's default."""
    warn_threshold: float | None = None
    """Optional earlier warning level (alerts of severity warning, never sent to rollback
    actions)."""
    path: str | None = None
    """Dotted path inside the features object; null: the feature's name."""


class QualityConfig(_Frozen):
    """Data-quality checks run on every feature (and the prediction) beside its drift test.
    A breach drives alerts like drift does and is listed under the feature with its own test
    name. ``null`` disables a check."""

    missing_rate: float | None = Field(default=0.1, gt=0, le=1)
    """Breach when the window's missing share exceeds the reference's by more than this; null
    disables."""
    out_of_range_rate: float | None = Field(default=0.05, gt=0, le=1)
    """Numeric features: breach when this share of values lies outside the reference's [min, max];
    null disables."""
    unseen_rate: float | None = Field(default=0.05, gt=0, le=1)
    """Categorical features: breach when this share of values is in categories the reference never
    saw; null disables."""


class DetectorConfig(_Frozen):
    """A river detector on an aggregate signal of the monitor: ``prediction`` (the score
    stream, up to ``max_per_batch`` sampled values per micro-batch), ``prediction_mean`` (one
    batch mean), or per-evaluation ``drift_share`` / ``prediction_statistic`` /
    ``feature:<name>`` (that feature's drift statistic)."""

    type: DetectorName
    """river detector."""
    signal: str = Field(
        default="prediction",
        pattern=r"^(prediction|prediction_mean|prediction_statistic|drift_share|feature:.+)$",
    )
    """What it watches: `prediction`, `prediction_mean`, `prediction_statistic`, `drift_share` or
    `feature:<name>`."""
    params: dict[str, float | int | str] = {}
    """Parameters passed to the river detector (e.g. `delta` for adwin)."""
    max_per_batch: int = Field(default=1000, ge=1)
    """`prediction` signal: sampled values fed per micro-batch."""


class CalibrationConfig(_Frozen):
    """Thresholds derived from the reference for features without an explicit ``threshold``.
    ``null`` target disables calibration (the tests' default thresholds apply)."""

    false_alerts_per_million_events: float | None = Field(default=1.0, gt=0)
    """Target false-alert rate the thresholds are calibrated to; null disables calibration."""
    resamples: int = Field(default=1000, ge=100)
    """Reference resamples drawn to calibrate."""
    seed: int = 0
    """Seed of the resampling (calibration is reproducible)."""


class PolicyConfig(_Frozen):
    min_events: int = Field(default=1000, ge=1)
    """Events a window needs before it is evaluated."""
    consecutive: int = Field(default=2, ge=1)
    """Breaching windows in a row that raise `drift.detected`."""
    resolve_consecutive: int | None = Field(default=None, ge=1)
    """Clean windows in a row that raise `drift.resolved`; null: same as `consecutive`."""
    cooldown_s: float = Field(default=900.0, ge=0)
    """Seconds of event time after an alert before the same version may alert again."""
    drift_share: float | None = Field(default=None, gt=0, le=1)
    """Share of drifted features that breaches a window; null: any drifted feature."""
    multiple_testing: Literal["none", "bonferroni", "bh"] = "none"
    """Family-wise (`bonferroni`) or false-discovery (`bh`) control across the monitor's
    uncalibrated p-value tests."""


_CLASSIFICATION_METRICS = (
    "accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "brier", "positive_rate",
    "label_positive_rate", "ece",
)  # fmt: skip
_REGRESSION_METRICS = ("mae", "rmse", "mape", "bias")
# What confidence-based performance estimation (driftd.performance.cbpe) estimates.
CBPE_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "positive_rate")


class PerformanceConfig(_Frozen):
    """Model performance on delayed labels, per model version (see the docs, "Performance with
    delayed labels"). Predictions are joined by ``event_id`` to labels carried by prediction
    events (``schema.label``) or label events on ``kafka.label_topics``; each version's last
    ``window`` labelled events are measured every ``step`` new ones, and the ``metrics`` are
    compared with the ``baseline`` with a ``level`` confidence interval. A version is degraded
    when, for one of the ``metrics``, the interval excludes zero on the bad side and the
    difference is at least ``min_effect``; the monitor's ``policy`` (consecutive, cooldown,
    resolve) turns that into ``performance.degraded`` / ``performance.resolved`` alerts.

    With ``estimate: cbpe`` the performance of every drift window is also estimated from its
    scores alone, before any label (see the docs, "Multivariate drift and estimated
    performance"); an estimate whose band lies on the bad side of the reference's realised
    value raises ``performance.estimated_degraded`` through the same policy."""

    task: Literal["classification", "regression"] = "classification"
    """Kind of model: classification (scores or classes) or regression."""
    threshold: float = 0.5
    """Classification: a score at or above it predicts the positive class."""
    label_horizon_s: float = Field(default=30 * 86400.0, gt=0)
    """A label joins its prediction within this many seconds."""
    window: int = Field(default=2000, ge=10)
    """Labelled events per version in a performance window."""
    step: int | None = Field(default=None, ge=1)
    """New labelled events between two measurements; null: window // 4."""
    min_events: int | None = Field(default=None, ge=10)
    """Labelled events needed in both windows before comparing; null: window."""
    baseline: str = Field(
        default="previous_version", pattern=r"^(previous_version|reference|version:.+)$"
    )
    """What a version is compared with: `previous_version`, `version:<name>` or `reference` (the
    values under `reference`)."""
    reference: dict[str, float] = {}
    """Fixed metric values for `baseline: reference`."""
    metrics: list[str] | None = None
    """Metrics compared; null: accuracy (classification) or mae (regression). All are exported."""
    min_effect: dict[str, float] = {}
    """Smallest difference per metric that counts as degraded."""
    level: float = Field(default=0.95, gt=0, lt=1)
    """Confidence level of the interval on the difference."""
    n_resamples: int = Field(default=1000, ge=100)
    """Bootstrap resamples."""
    seed: int = 0
    """Seed of the bootstrap."""
    detector: Literal["adwin", "ddm"] | None = None
    """Optional river detector on the per-event error."""
    max_pending: int = Field(default=1_000_000, ge=1)
    """Predictions kept waiting for their label."""
    max_early: int = Field(default=100_000, ge=0)
    """Labels kept waiting for their prediction."""
    labels: bool = True
    """Join delayed labels and measure the realised performance (everything above); false:
    only the `estimate`, no label join (nothing is kept per prediction)."""
    estimate: Literal["cbpe"] | None = None
    """Estimate the performance of every drift window from its scores alone, before any label:
    `cbpe` (confidence-based performance estimation; binary classifiers with scores in [0, 1],
    a numeric `prediction`, and a profile built from labelled reference data). null: no
    estimate."""
    estimate_metrics: list[str] | None = None
    """Estimated metrics whose degradation raises `performance.estimated_degraded` (of
    accuracy, precision, recall, f1, roc_auc, positive_rate; all are estimated and exported);
    null: accuracy."""
    estimate_min_effect: dict[str, float] = {}
    """Smallest distance of an estimate from the reference's realised value that counts as
    degraded, per metric (defaults as `min_effect`: accuracy 0.02, roc_auc 0.02, precision,
    recall and f1 0.03, positive_rate 0.05)."""
    estimate_severity: Literal["warning", "critical"] = "warning"
    """Severity of `performance.estimated_degraded`: `warning` alerts are audited and counted
    but never sent to actions; `critical` ones go to the monitor's actions (rollbacks) like
    drift alerts."""

    @model_validator(mode="after")
    def _consistent(self) -> PerformanceConfig:
        self._check_estimate()
        known = _CLASSIFICATION_METRICS if self.task == "classification" else _REGRESSION_METRICS
        for i, name in enumerate(self.metrics or []):
            if name not in known:
                raise _KeyedValueError(
                    f"metrics.{i}", f"{name!r} is not a {self.task} metric ({', '.join(known)})"
                )
        for name in [*self.min_effect, *self.reference]:
            if name not in known:
                key = "min_effect" if name in self.min_effect else "reference"
                raise _KeyedValueError(f"{key}.{name}", f"not a {self.task} metric")
        if self.baseline == "reference":
            missing = [m for m in self.compared if m not in self.reference]
            if missing:
                raise _KeyedValueError(
                    "reference", f"baseline: reference needs values for {', '.join(missing)}"
                )
        if self.detector == "ddm" and self.task != "classification":
            raise _KeyedValueError("detector", "ddm needs a classifier's 0/1 error stream")
        if self.min_events is not None and self.min_events > self.window:
            raise _KeyedValueError("min_events", "must not exceed window")
        return self

    def _check_estimate(self) -> None:
        if self.estimate is None:
            given = [k for k in ("estimate_metrics", "estimate_min_effect") if getattr(self, k)]
            if given:
                raise _KeyedValueError(given[0], "needs `estimate: cbpe`")
            if not self.labels:
                raise _KeyedValueError(
                    "labels", "with labels: false the block needs `estimate: cbpe` (else it does"
                    " nothing)"
                )  # fmt: skip
            return
        if self.task != "classification":
            raise _KeyedValueError("estimate", "cbpe estimates binary classifiers only")
        for i, name in enumerate(self.estimate_metrics or []):
            if name not in CBPE_METRICS:
                raise _KeyedValueError(
                    f"estimate_metrics.{i}",
                    f"{name!r} is not estimated (estimated: {', '.join(CBPE_METRICS)})",
                )
        for name in self.estimate_min_effect:
            if name not in CBPE_METRICS:
                raise _KeyedValueError(f"estimate_min_effect.{name}", "not an estimated metric")

    @property
    def estimated(self) -> list[str]:
        """The estimated metrics that can raise ``performance.estimated_degraded``."""
        return list(self.estimate_metrics) if self.estimate_metrics else ["accuracy"]

    @property
    def compared(self) -> list[str]:
        if self.metrics:
            return list(self.metrics)
        return ["accuracy"] if self.task == "classification" else ["mae"]

    @property
    def every(self) -> int:
        return self.step or max(1, self.window // 4)

    @property
    def min_labelled(self) -> int:
        return self.min_events or self.window

    @property
    def baseline_version(self) -> str | None:
        return self.baseline[len("version:") :] if self.baseline.startswith("version:") else None


MULTIVARIATE = "multivariate"  # the statistic's name in evaluations, alerts and metrics


class MultivariateConfig(_Frozen):
    """One drift statistic over several features at once, for changes no per-feature test
    sees (features whose distributions stay put while the way they move together changes).
    Fitted on the reference rows by `driftd profile build` (or on each version's warmup
    reference when it completes) and evaluated on every window beside the per-feature tests;
    a window whose statistic is above the threshold breaches like a drifted prediction."""

    method: Literal["pca_reconstruction", "mmd"]
    """`pca_reconstruction`: the window's mean PCA reconstruction error (NannyML's data
    reconstruction drift; numeric and categorical features). `mmd`: the kernel maximum mean
    discrepancy between bounded, seeded subsamples of the reference and the window (numeric
    features)."""
    features: list[str] | None = None
    """Features the statistic reads (names under `features`); null: every numeric feature, and
    for `pca_reconstruction` the categorical ones too."""
    threshold: float | None = Field(default=None, ge=0)
    """A statistic above it is drift; null: calibrated to the monitor's false-alert budget, the
    statistic counting as one more tested feature (count windows with calibration on)."""
    variance: float = Field(default=0.65, gt=0, lt=1)
    """pca_reconstruction: share of the reference's variance the kept principal components
    explain (NannyML's default)."""
    encoding: Literal["frequency", "onehot"] = "frequency"
    """pca_reconstruction: a categorical feature as its category's reference frequency
    (NannyML's encoding) or as one indicator column per reference category."""
    reference_rows: int = Field(default=1000, ge=10, le=20_000)
    """mmd: reference rows in the fixed subsample every window is compared with."""
    window_rows: int = Field(default=1000, ge=10, le=20_000)
    """mmd: window rows compared per evaluation, at most (a subsample seeded by the window's
    end position, so a replay and a restarted daemon draw the same rows)."""
    pool_rows: int = Field(default=5000, ge=100, le=100_000)
    """mmd: further reference rows kept in the profile to calibrate the threshold from."""

    @field_validator("features")
    @classmethod
    def _distinct(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            if not v:
                raise ValueError("list at least one feature, or null for the default")
            if len(set(v)) != len(v):
                raise ValueError("features must be distinct")
        return v


class MonitorConfig(_Frozen):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    """Monitor name (metrics label, API path, alert field)."""
    model: str
    """Model whose events this monitor reads (the event's `model` value)."""
    reference: Reference
    """What each version's window is compared with."""
    window: Window = SlidingWindow(type="sliding")
    """How events are grouped into evaluated windows."""
    features: dict[str, FeatureConfig]
    """Features to test, by name."""
    prediction: FeatureConfig | None = None
    """How the prediction is tested; null: not tested."""
    policy: PolicyConfig = PolicyConfig()
    """How verdicts become alerts."""
    quality: QualityConfig = QualityConfig()
    """Data-quality checks run beside the drift tests."""
    calibration: CalibrationConfig = CalibrationConfig()
    """Threshold calibration for features without an explicit threshold."""
    detectors: list[DetectorConfig] = []
    """river detectors on aggregate signals (they inform, they never trigger rollbacks)."""
    actions: list[str] = []
    """Names of the actions (under `actions`) that receive this monitor's alerts."""
    fallback_version: str | None = None
    """`rollback_to` when no earlier version of the model was seen."""
    max_versions: int = Field(default=50, ge=2, le=10_000)
    """Version states kept; beyond it the least recently seen version is dropped (logged, counted),
    so invented versions cannot exhaust memory."""
    performance: PerformanceConfig | None = None
    """Model performance on delayed labels, and estimated from the scores before them
    (`estimate: cbpe`); null: off."""
    multivariate: MultivariateConfig | None = None
    """One drift statistic over several features at once (`pca_reconstruction` or `mmd`);
    null: off."""
    segment_by: list[str] = []
    """Event paths (e.g. `features.region`) whose values split each version into segments with their
    own windows, verdicts and alerts."""
    max_segments: int = Field(default=100, ge=1, le=10_000)
    """Distinct segments tracked per version; events of further segments go to `__other__`."""
    segment_min_reference_events: int = Field(default=1000, ge=10)
    """Rows a segment needs in the baseline data for `profile build` to store its own reference."""
    segment_series: Literal["full", "summary"] = "full"
    """Metric series per segment: `full` repeats every drift, p-value, threshold and quality gauge
    per feature with a `segment` label; `summary` keeps only the segment's verdict (drifted, drift
    share, window events, events), not its per-feature series (docs/metrics.md, series budget)."""

    @field_validator("segment_by")
    @classmethod
    def _segment_paths(cls, v: list[str]) -> list[str]:
        if len(v) > 8:
            raise ValueError("at most 8 segment fields")
        for p in v:
            if not isinstance(p, str) or not p or any(not part for part in p.split(".")):
                raise ValueError(f"{p!r} is not a dotted path such as 'features.region'")
        if len(set(v)) != len(v):
            raise ValueError("segment fields must be distinct")
        return v

    @field_validator("features")
    @classmethod
    def _some_features(cls, v: dict[str, FeatureConfig]) -> dict[str, FeatureConfig]:
        if not v:
            raise ValueError("a monitor needs at least one feature")
        return v

    @model_validator(mode="after")
    def _multivariate_and_estimate(self) -> MonitorConfig:
        mv = self.multivariate
        if mv is not None:
            if MULTIVARIATE in self.features:
                raise _KeyedValueError(
                    f"features.{MULTIVARIATE}",
                    "the name is the multivariate statistic's (in evaluations, alerts and"
                    " metrics): rename the feature",
                )
            for i, name in enumerate(mv.features or []):
                fc = self.features.get(name)
                if fc is None:
                    raise _KeyedValueError(
                        f"multivariate.features.{i}", f"{name!r} is not one of the features"
                    )
                if mv.method == "mmd" and fc.kind != "numeric":
                    raise _KeyedValueError(
                        f"multivariate.features.{i}", f"mmd compares numeric features; {name!r}"
                        " is categorical"
                    )  # fmt: skip
            if not self.multivariate_features[0] and not self.multivariate_features[1]:
                raise _KeyedValueError("multivariate.features", "mmd needs a numeric feature")
            if self.reference.type == "version":
                raise _KeyedValueError(
                    "multivariate",
                    "is fitted on a reference's rows: use a profile or warmup reference",
                )
            if mv.threshold is None:
                if self.window.type in ("tumbling_time", "sliding_time"):
                    raise _KeyedValueError(
                        "multivariate.threshold",
                        "time windows have no fixed event count to calibrate for: give a"
                        " threshold",
                    )
                if self.calibration.false_alerts_per_million_events is None:
                    raise _KeyedValueError(
                        "multivariate.threshold",
                        "calibration is off (calibration.false_alerts_per_million_events:"
                        " null): give a threshold",
                    )
        perf = self.performance
        if perf is not None and perf.estimate is not None:
            if self.prediction is None or self.prediction.kind != "numeric":
                raise _KeyedValueError(
                    "performance.estimate",
                    "cbpe reads the scores from the window's prediction column: configure"
                    " `prediction: {kind: numeric}`",
                )
            if self.reference.type != "profile":
                raise _KeyedValueError(
                    "performance.estimate",
                    "cbpe is fitted on labelled reference data: use a profile reference built"
                    " with labels (schema.label)",
                )
        return self

    @property
    def multivariate_features(self) -> tuple[list[str], list[str]]:
        """(numeric, categorical) feature names the multivariate statistic reads, in the
        order of ``features``; empty lists without ``multivariate``."""
        mv = self.multivariate
        if mv is None:
            return [], []
        chosen = set(mv.features) if mv.features is not None else None
        num = [
            n
            for n, f in self.features.items()
            if f.kind == "numeric" and (chosen is None or n in chosen)
        ]
        cat = [
            n
            for n, f in self.features.items()
            if f.kind == "categorical"
            and mv.method == "pca_reconstruction"
            and (chosen is None or n in chosen)
        ]
        return num, cat


# Headers driftd sets itself; a configured value would break signing, idempotency or framing.
RESERVED_WEBHOOK_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "transfer-encoding",
        "host",
        "connection",
        "idempotency-key",
        "driftd-signature",
    }
)
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def check_webhook_url(url: str) -> str:
    """The URL itself, or ``ValueError`` naming what is wrong (scheme, host, port, userinfo)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        # credentials in the URL would end up in logs and in check-config's output
        raise ValueError("must not contain credentials; use headers (e.g. Authorization)")
    try:
        parts.port  # noqa: B018 (parsing the port is the check)
    except ValueError as exc:
        raise ValueError(f"bad port: {exc}") from None
    return url


def check_proxy_url(url: str) -> str:
    """The proxy URL itself, or ``ValueError`` (never quoting it: it may hold credentials)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    try:
        parts.port  # noqa: B018
    except ValueError:
        raise ValueError("bad port") from None
    return url


def check_header(name: str, value: str | None = None) -> None:
    """``ValueError`` for a header name that is not an HTTP token or that driftd owns, or a
    value that would split the request (CR/LF)."""
    if not _HEADER_NAME.fullmatch(name) or name.lower() in RESERVED_WEBHOOK_HEADERS:
        raise ValueError(f"header {name!r} is invalid or reserved")
    if value is not None and ("\r" in value or "\n" in value or "\0" in value):
        raise ValueError(f"header {name!r} value has a line break")


class TlsConfig(_Frozen):
    """TLS towards an `https://` webhook: which CAs to trust and an optional client
    certificate (mutual TLS)."""

    ca_file: Path | None = None
    """PEM file of the CA certificate(s) that signed the receiver's certificate. When set, only
    these CAs are trusted; when null, the certifi bundle shipped with driftd is."""
    cert_file: Path | None = None
    """PEM client certificate presented to the receiver (mutual TLS); may also hold the key."""
    key_file: Path | None = None
    """PEM private key of `cert_file` (unencrypted) when it is not in `cert_file`."""
    verify: bool = True
    """Verify the receiver's certificate and host name. false is for experiments only: anyone
    on the path can then read and change alerts (a warning is logged at start)."""

    @model_validator(mode="after")
    def _key_needs_cert(self) -> TlsConfig:
        if self.key_file is not None and self.cert_file is None:
            raise _KeyedValueError("key_file", "needs cert_file")
        return self


class WebhookActionConfig(_Frozen):
    """POST each alert, signed, to one URL from a durable outbox (see the webhook docs)."""

    type: Literal["webhook"]
    """The action type."""
    url: str = Field(pattern=r"^https?://")
    """Absolute `http://` or `https://` URL the alerts are POSTed to. Redirects are never
    followed (a 3xx is retried), so a signed body never goes to another host."""
    secret: SecretRef | None = None
    """Key of the `Driftd-Signature` HMAC; null sends unsigned requests."""
    format: Literal["driftd", "cloudevents"] = "driftd"
    """Body format: driftd's own JSON, or CloudEvents 1.0 structured mode."""
    headers: dict[str, SecretValue] = {}
    """Extra request headers, e.g. `Authorization: {env: DEPLOYER_TOKEN}`; a value is a
    string or a secret reference (env/file). Values are masked in check-config and never
    logged. Content-Type, Content-Length, Host, Idempotency-Key and Driftd-Signature are
    driftd's own."""
    tls: TlsConfig | None = None
    """CA, client certificate and verification for an https:// URL; null: system defaults."""
    proxy: SecretValue | None = None
    """HTTP(S) proxy URL (`http://proxy:3128`; credentials allowed, so it may be a secret
    reference such as `{env: HTTPS_PROXY}`). Proxy environment variables are not read."""
    timeout_s: float = Field(default=5.0, gt=0)
    """Deadline of one whole attempt (connect, TLS, send, response): a receiver that answers
    byte by byte is cut off after it and the attempt is retried."""
    concurrency: int = Field(default=4, ge=1, le=64)
    """Attempts in flight at once for this action; alerts of one monitor and model version
    are still sent one at a time, in order."""
    backoff_initial_s: float = Field(default=0.5, gt=0)
    """Ceiling of the first retry delay; it doubles per attempt (full jitter)."""
    backoff_max_s: float = Field(default=300.0, gt=0)
    """Largest retry delay ceiling (a Retry-After from the receiver may ask for more)."""
    max_attempts: int | None = Field(default=None, ge=1)
    """Attempts before an alert is given up and counted as failed; null retries forever."""
    max_pending: int = Field(default=10_000, ge=1)
    """Alerts kept in the outbox; further alerts are dropped (counted, logged)."""
    dry_run: bool = False
    """Log what would be sent instead of sending it."""

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return check_webhook_url(v)

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, SecretStr | SecretRef]) -> dict[str, SecretStr | SecretRef]:
        for name, value in v.items():
            check_header(name, value.get_secret_value() if isinstance(value, SecretStr) else None)
        return v

    @field_validator("proxy")
    @classmethod
    def _proxy(cls, v: SecretStr | SecretRef | None) -> SecretStr | SecretRef | None:
        if isinstance(v, SecretStr):
            check_proxy_url(v.get_secret_value())
        return v

    @model_validator(mode="after")
    def _consistent(self) -> WebhookActionConfig:
        if self.backoff_initial_s > self.backoff_max_s:
            raise _KeyedValueError("backoff_initial_s", "must not exceed backoff_max_s")
        if self.tls is not None and not self.url.startswith("https://"):
            raise _KeyedValueError("tls", "is only used with an https:// url")
        return self


ActionConfig = Annotated[WebhookActionConfig, Field(discriminator="type")]


class HttpConfig(_Frozen):
    listen: str = "127.0.0.1:9108"
    """`HOST:PORT` of the HTTP listener (/metrics, /healthz, /readyz, /api/v1). Loopback by
    default; the container image sets `DRIFTD_HTTP__LISTEN=0.0.0.0:9108`."""
    token: SecretRef | None = None
    """Bearer token required on `/api/…` (the status API and Flagger gates): `Authorization:
    Bearer <token>`, else 401. `/metrics`, `/healthz` and `/readyz` stay open."""
    max_connections: int = Field(default=64, ge=1, le=10_000)
    """Connections served at once; one more is closed at once (its descriptor freed)."""
    request_timeout_s: float = Field(default=10.0, gt=0)
    """A request must arrive whole within this long of its connection (or of the previous
    response on a kept-alive one); slower clients are disconnected."""

    @field_validator("listen")
    @classmethod
    def _host_port(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("expected HOST:PORT")
        return v

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


class StateConfig(_Frozen):
    dir: Path = Path("/var/lib/driftd")
    """State directory: checkpoints, webhook outbox, audit log. Must be writable."""
    checkpoint_interval_s: float = Field(default=10.0, gt=0)
    """Seconds between checkpoints."""
    checkpoint_events: int = Field(default=500_000, ge=1)
    """Also checkpoint after this many events."""
    audit_max_bytes: int = Field(default=100 * 1024 * 1024, ge=1024)
    """Rotate the audit log (`audit.jsonl`, created 0600) when it would grow past this size."""
    audit_backups: int = Field(default=5, ge=0, le=100)
    """Rotated audit logs kept (`audit.jsonl.1` …); the oldest beyond this is removed."""
    audit_evaluations: bool = False
    """Also write every evaluation to the audit log (the lines `driftd replay` prints):
    debugging, or comparing a live run with a replay."""


class DeadLetterFile(_Frozen):
    """Rejected events appended as JSON lines (reason, source position, raw value)."""

    type: Literal["file"]
    """Dead-letter kind: a JSONL file."""
    path: Path
    """File the rejected events are appended to (created 0600)."""
    max_bytes: int = Field(default=100 * 1024 * 1024, ge=1024)
    """Rotate the file when it would grow past this size (`path.1`, `path.2`, …)."""
    backups: int = Field(default=5, ge=0, le=100)
    """Rotated files kept; the oldest beyond this is removed."""


class DeadLetterKafka(_Frozen):
    """Rejected events produced to a topic, raw value unchanged, reason in headers."""

    type: Literal["kafka"]
    """Dead-letter kind: a Kafka topic."""
    topic: str
    """Topic the rejected events are produced to."""


DeadLetter = Annotated[DeadLetterFile | DeadLetterKafka, Field(discriminator="type")]


class InputConfig(_Frozen):
    max_event_bytes: int = Field(default=1024 * 1024, ge=64)
    """Larger events are rejected as `too_large`."""
    model_version_pattern: str = r"[A-Za-z0-9][A-Za-z0-9._:+@/=-]*"
    """A `model_version` must match this regular expression (whole string); other events are
    rejected as `bad_version`: a stray empty or invented version never becomes a version with
    its own state, series or `rollback_to`."""
    max_model_version_chars: int = Field(default=128, ge=1, le=4096)
    """Longer `model_version` values are rejected as `bad_version`."""

    @field_validator("model_version_pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return v


class SourceConfig(_Frozen):
    type: Literal["kafka", "confluent"] = "kafka"
    """Kafka client: `kafka` (kafka-python, the default) or `confluent` (librdkafka; install the
    `driftd[confluent]` extra). Both take their settings from `kafka`."""


class ScaleOutConfig(_Frozen):
    """Several processes (``driftd run --workers N``, or ``driftd run`` on several hosts) in one
    consumer group: partition stages publish panes to an internal topic keyed by monitor, and
    each monitor is decided by one process at a time, its state kept in a compacted internal
    topic so that it can move with a rebalance."""

    enabled: bool = False
    """Use the internal topics (``--workers N`` with N > 1 sets this)."""
    panes_topic: str | None = None
    """Internal topic of panes; null: `<kafka.group_id>.panes`. Created when missing."""
    state_topic: str | None = None
    """Compacted internal topic of monitor state; null: `<kafka.group_id>.state`."""
    members_topic: str | None = None
    """Compacted internal topic where each process says which monitors it decides; null:
    `<kafka.group_id>.members`."""
    partitions: int = Field(default=12, ge=1, le=1000)
    """Partitions of the panes and state topics (at most this many processes share the
    monitors). A topic that exists with another count is refused."""
    replication_factor: int = Field(default=1, ge=1, le=10)
    """Replication of the internal topics when driftd creates them."""
    advertise: str | None = None
    """`http://host:port` other processes use to reach this one's API (a monitor decided here,
    asked of another process, is answered through it); null: this host's name and the
    `http.listen` port."""
    max_state_bytes: int = Field(default=64 * 1024 * 1024, ge=1024 * 1024)
    """Largest monitor state written to the state topic (its `max.message.bytes`)."""
    purge_interval_s: float = Field(default=30.0, gt=0)
    """How often panes that every monitor has consumed are deleted from the panes topic (it
    has no time limit: panes wait for a monitor that is down)."""


class Config(_Frozen):
    kafka: KafkaConfig = KafkaConfig()
    """Kafka connection and consumer settings."""
    source: SourceConfig = SourceConfig()
    """Which Kafka client reads the events."""
    schema_: SchemaConfig = Field(default=SchemaConfig(), alias="schema")
    """Where each field lives in an event."""
    input: InputConfig = InputConfig()
    """Limits on incoming events."""
    monitors: list[MonitorConfig]
    """The monitors: what to watch and how to decide."""
    actions: dict[str, ActionConfig] = {}
    """Actions by name, referred to by `monitors[i].actions`."""
    http: HttpConfig = HttpConfig()
    """The HTTP listener."""
    state: StateConfig = StateConfig()
    """Durable state."""
    dead_letter: DeadLetter | None = None
    """Where rejected events are copied; null: counted only."""
    scale_out: ScaleOutConfig = ScaleOutConfig()
    """Several processes sharing the work through Kafka (see Scaling out)."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, use_attribute_docstrings=True
    )

    @model_validator(mode="after")
    def _cross_checks(self) -> Config:
        names: set[str] = set()
        for i, m in enumerate(self.monitors):
            if m.name in names:
                raise _KeyedValueError(f"monitors.{i}.name", f"duplicate monitor name {m.name!r}")
            names.add(m.name)
            for j, a in enumerate(m.actions):
                if a not in self.actions:
                    raise _KeyedValueError(
                        f"monitors.{i}.actions.{j}",
                        f"unknown action {a!r} (defined: {sorted(self.actions) or 'none'})",
                    )
        if self.kafka.label_topics and not any(
            m.performance and m.performance.labels for m in self.monitors
        ):
            raise _KeyedValueError(
                "kafka.label_topics",
                "label topics are read for performance monitoring, but no monitor has a"
                " `performance:` block joining labels (their events would all be rejected)",
            )
        return self

    def monitor(self, name: str) -> MonitorConfig:
        for m in self.monitors:
            if m.name == name:
                return m
        raise ConfigError("monitor", f"no monitor named {name!r}")


class _KeyedValueError(ValueError):
    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        super().__init__(f"[{key}] {problem}")


# ---------------------------------------------------------------- loading


def _parse_scalar(raw: str) -> Any:
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """Apply ``DRIFTD_A__B__0__C=value`` overrides to the raw config mapping."""
    top = set(Config.model_fields) | {"schema"}
    for key in sorted(environ):
        if not key.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in key[len(ENV_PREFIX) :].split("__")]
        if not parts or parts[0] not in top:
            continue
        node: Any = data
        path = ""
        for p in parts[:-1]:
            path = f"{path}.{p}" if path else p
            if isinstance(node, list):
                if not p.isdigit() or int(p) >= len(node):
                    raise ConfigError(path, f"{key}: no list item {p}")
                node = node[int(p)]
            else:
                node = node.setdefault(p, {})
            if not isinstance(node, dict | list):
                raise ConfigError(path, f"{key}: cannot override inside a scalar")
        last = parts[-1]
        value = _parse_scalar(environ[key])
        if isinstance(node, list):
            if not last.isdigit() or int(last) >= len(node):
                raise ConfigError(f"{path}.{last}", f"{key}: no list item {last}")
            node[int(last)] = value
        else:
            node[last] = value
    return data


def _set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    parts = dotted.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value


def load_config(
    path: str | Path,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Load, override and validate. Raises ConfigError naming the offending key."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError("config", f"cannot read {p}: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError("config", f"{p} is not valid YAML: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("config", f"{p} must hold a mapping at the top level")
    data = apply_env(data, os.environ if environ is None else environ)
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_path(data, dotted, value)
    cfg = validate_config(data)
    return _resolve_relative_paths(cfg, p.parent)


def validate_config(data: dict[str, Any]) -> Config:
    """Validate; every problem is reported (``ConfigErrors`` when there are several), each
    naming its key."""
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        errors: list[ConfigError] = []
        for err in exc.errors():
            e = _config_error(err)
            if all((e.key, e.problem) != (x.key, x.problem) for x in errors):
                errors.append(e)
        raise_all(errors)
        raise AssertionError("unreachable") from None


def _config_error(err: Any) -> ConfigError:
    ctx_err = err.get("ctx", {}).get("error")
    if isinstance(ctx_err, _KeyedValueError):
        # a nested model's validator names its key relative to the model's location
        where = ".".join(str(x) for x in err["loc"] if not _is_union_tag(x))
        key = f"{where}.{ctx_err.key}" if where else ctx_err.key
        return ConfigError(key, str(ctx_err).split("] ", 1)[1])
    key = ".".join(str(x) for x in err["loc"] if not _is_union_tag(x))
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    elif err["type"] == "missing":
        msg = "required key is missing"
    return ConfigError(key or "config", msg)


def _is_union_tag(x: Any) -> bool:
    # pydantic inserts the discriminator value / class name into locations of union members.
    return isinstance(x, str) and x in {
        "profile",
        "warmup",
        "version",
        "sliding",
        "tumbling",
        "webhook",
        "SecretRef",
        "SecretStr",
    }


def _resolve_relative_paths(cfg: Config, base: Path) -> Config:
    """Profile paths are relative to the current directory if they exist there, else to the
    config file's directory."""
    monitors = []
    for m in cfg.monitors:
        ref = m.reference
        if isinstance(ref, ProfileReference) and not ref.path.is_absolute():
            if not ref.path.exists() and (base / ref.path).exists():
                ref = ProfileReference(type="profile", path=base / ref.path)
                m = m.model_copy(update={"reference": ref})
        monitors.append(m)
    return cfg.model_copy(update={"monitors": monitors})


SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "urn:driftd:config:1"


def json_schema() -> dict[str, Any]:
    """The config's JSON Schema (draft 2020-12), as ``driftd config-schema`` prints it: every
    property described, choices as enums (drift tests, detectors, window and reference kinds),
    with ``$schema`` and ``$id`` so editors and validators know what they hold."""
    body = Config.model_json_schema(by_alias=True)
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": SCHEMA_ID,
        "title": "driftd configuration",
        **{k: v for k, v in body.items() if k != "title"},
    }


def masked_dump(cfg: Config) -> dict[str, Any]:
    """Effective config as plain data, secrets masked (SecretStr values, and the query string
    and user info of webhook URLs, which often carry tokens)."""
    data = cfg.model_dump(mode="json", by_alias=True)
    for action in (data.get("actions") or {}).values():
        if isinstance(action, dict) and isinstance(action.get("url"), str):
            action["url"] = mask_url(action["url"])
    return data


def mask_url(url: str) -> str:
    """``https://user:pw@host/p?token=x`` → ``https://***@host/p?***``."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    return urlunsplit(
        (
            parts.scheme,
            netloc,
            parts.path,
            "***" if parts.query else "",
            "***" if parts.fragment else "",
        )
    )
