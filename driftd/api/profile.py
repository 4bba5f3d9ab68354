"""``driftd.Profile``: a reference profile built from a table or event files in Python, saved
as the very file ``driftd profile build`` writes (and loaded from one)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from driftd.api import _engine
from driftd.api.inputs import is_files, lines_of, sample_features, table_columns
from driftd.api.monitor import (
    FeaturesArg,
    Kind,
    PerFeature,
    Settings,
    describe,
    feature_columns,
    from_config,
    infer_kind,
    override,
)
from driftd.config import Config, SchemaConfig
from driftd.errors import ConfigError
from driftd.reference.features import NumericReference


class Profile:
    """A reference profile: per-feature summaries of baseline data (raw-value reservoir and
    quantile bins for numeric features, category counts for categorical ones), plus the
    thresholds calibrated on it when the monitor's config asks for calibration."""

    __slots__ = ("data", "settings", "_specs")

    def __init__(self, data: _engine.ProfileData, settings: Settings | None = None) -> None:
        self.data = data
        self.settings = settings
        # compare()'s resolved settings and specs, by its arguments
        self._specs: dict[bytes, tuple[Settings, _engine.MonitorSpec]] = {}

    # ------------------------------------------------------------------ build / save / load

    @classmethod
    def build(
        cls,
        data: Any,
        *,
        config: str | Path | Config | None = None,
        monitor: str | None = None,
        features: FeaturesArg = None,
        tests: str | PerFeature | None = None,
        thresholds: float | PerFeature | None = None,
        prediction: bool | Kind | None = None,
        format: str | None = None,
        seed: int = 0,
        name: str = "reference",
    ) -> Profile:
        """Build a profile from ``data``: a pandas/polars DataFrame, a pyarrow Table, a dict of
        arrays (flat columns, see :mod:`driftd.io`), or event file path(s) in JSONL, CSV or
        Parquet (``format`` to override the extension).

        With ``config`` (a daemon config file or :class:`driftd.config.Config`) and
        ``monitor``, the monitor's features, schema and calibration are used, exactly as by
        ``driftd profile build -c CONFIG --monitor NAME`` (same file, same id). Without, the
        features are ``features`` (names, or name → kind / feature settings) or every feature
        column of ``data``, with kinds told from the values, and the profile is named
        ``name``.
        """
        settings = cls._settings(
            data, config, monitor, features, tests, thresholds, prediction, format, name
        )
        return cls._build(data, settings, format, seed)

    @classmethod
    def _build(cls, data: Any, settings: Settings, fmt: str | None, seed: int) -> Profile:
        lines = lines_of(data, settings.schema, fmt)
        prof = _engine.build(settings.monitor, settings.schema, lines, seed=seed)
        if prof.events == 0:
            raise ConfigError("data", "no usable events in the reference data")
        # As `driftd profile build`: resolve the spec now, which stores calibrated thresholds
        # in the profile when the monitor asks for calibration.
        _engine.spec_for(settings.monitor, prof, settings.index)
        # The id a saved file will carry (a digest of the content, computed once).
        prof = replace(prof, id=str(prof.to_json()["id"]))
        return cls(prof, settings)

    @staticmethod
    def _settings(
        data: Any,
        config: str | Path | Config | None,
        monitor: str | None,
        features: FeaturesArg,
        tests: str | PerFeature | None,
        thresholds: float | PerFeature | None,
        prediction: bool | Kind | None,
        fmt: str | None,
        name: str,
    ) -> Settings:
        if config is not None:
            return override(from_config(config, monitor), features, tests, thresholds)
        schema = SchemaConfig()
        if is_files(data):
            values, preds = sample_features(lines_of(data, schema, fmt), schema)
            kinds: dict[str, Kind | None] = {k: infer_kind(v) for k, v in values.items()}
            pred_values: list[Any] | None = preds
        else:
            cols = table_columns(data)
            by_feature = feature_columns(cols, schema)
            kinds = {f: infer_kind(cols[c]) for f, c in by_feature.items()}
            pred_col = schema.prediction if schema.prediction in cols else None
            pred_values = cols.values_of(pred_col) if pred_col else None
        return describe(
            name=name,
            kinds=kinds,
            prediction=_prediction_kind(prediction, pred_values),
            features=features,
            tests=tests,
            thresholds=thresholds,
        )

    def save(self, path: str | Path) -> str:
        """Write the profile file (atomically); returns the profile id."""
        return self.data.save(Path(path))

    @classmethod
    def load(cls, path: str | Path) -> Profile:
        """Read a profile file written by ``driftd profile build`` or :meth:`save`."""
        try:
            return cls(_engine.ProfileData.load(Path(path)))
        except FileNotFoundError:
            raise ConfigError("profile", f"profile file {path} does not exist") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError("profile", f"cannot read profile {path}: {exc}") from None

    # ------------------------------------------------------------------ reading

    @property
    def id(self) -> str:
        """The content digest (the id ``driftd`` puts in alerts)."""
        return self.data.id or str(self.data.to_json()["id"])

    @property
    def monitor(self) -> str:
        return self.data.monitor

    @property
    def events(self) -> int:
        return self.data.events

    @property
    def rejected(self) -> int:
        return self.data.rejected

    @property
    def kinds(self) -> dict[str, Kind]:
        """Feature name → ``numeric`` / ``categorical``."""
        return {n: _kind(r) for n, r in self.data.features.items()}

    @property
    def prediction_kind(self) -> Kind | None:
        return _kind(self.data.prediction) if self.data.prediction is not None else None

    def to_dict(self) -> dict[str, Any]:
        """The profile file's content."""
        return self.data.to_json()

    def __repr__(self) -> str:
        return (
            f"Profile(monitor={self.monitor!r}, id={self.id!r}, events={self.events},"
            f" features={list(self.data.features)})"
        )


def _kind(ref: Any) -> Kind:
    return "numeric" if isinstance(ref, NumericReference) else "categorical"


def _prediction_kind(given: bool | Kind | None, values: list[Any] | None) -> Kind | None:
    if given is False:
        return None
    if isinstance(given, str):
        return given
    kind = infer_kind(values) if values is not None else None
    if given is True and kind is None:
        raise ConfigError("prediction", "no prediction values to tell the kind from")
    return kind
