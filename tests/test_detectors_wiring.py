"""river detectors attached to monitors: fed aggregate signals, reported, checkpointed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from driftd_testutil import build_credit_profile, credit_config, read_jsonl, roundtrip, write_lines

from driftd.cli import main
from driftd.config import load_config
from driftd.demo.credit import generate
from driftd.metrics import build_registry
from driftd.runtime.pipeline import Pipeline
from driftd.types import RawRecord

DETECTORS = [
    {"type": "adwin", "signal": "prediction"},
    {"type": "page_hinkley", "signal": "drift_share", "params": {"threshold": 1.0}},
]


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_credit_profile(tmp_path_factory.mktemp("det-profile"))


def config(tmp: Path, profile: Path, detectors: list[dict]) -> Path:  # type: ignore[type-arg]
    cfg = credit_config(tmp, profile=profile)
    data = yaml.safe_load(cfg.read_text())
    data["monitors"][0]["detectors"] = detectors
    cfg.write_text(yaml.safe_dump(data))
    return cfg


def stream() -> list[bytes]:
    return list(generate(8000, version="v1", seed=101)) + list(
        generate(8000, version="v1", seed=102, score_shift=0.8)
    )


def test_adwin_on_scores_flags_after_the_change_only(tmp_path: Path, profile: Path) -> None:
    cfg = config(tmp_path, profile, DETECTORS)
    src = write_lines(tmp_path / "s.jsonl", stream())
    assert main(["replay", "-c", str(cfg), str(src), "--out", str(tmp_path / "o.jsonl")]) == 0
    out = read_jsonl(tmp_path / "o.jsonl")
    hits = [o for o in out if o["type"] == "detector" and o["detector"] == "adwin:prediction"]
    assert hits, "ADWIN missed a 0.8 logit shift of the score"
    assert all(h["position"] > 8000 for h in hits)
    assert hits[0]["position"] < 8000 + 3000
    evals = [o for o in out if o["type"] == "evaluation"]
    assert set(evals[-1]["detectors"]) == {"adwin:prediction", "page_hinkley:drift_share"}
    assert evals[-1]["detectors"]["adwin:prediction"]["drifts"] == len(hits)


def test_detector_state_checkpointed_and_metric(tmp_path: Path, profile: Path) -> None:
    cfg = load_config(config(tmp_path, profile, DETECTORS), environ={})
    recs = [RawRecord(v, i + 1, None, 0, i, "t") for i, v in enumerate(stream())]

    def run(e: Pipeline, rs: list[RawRecord]) -> list[dict]:  # type: ignore[type-arg]
        out = []
        for i in range(0, len(rs), 900):
            out.extend(e.process(rs[i : i + 900]))
        return out

    whole_engine = Pipeline(cfg)
    whole = run(whole_engine, recs)
    first = Pipeline(cfg)
    a = run(first, recs[:8100])
    second = roundtrip(first, cfg, tmp_path / "ck")
    assert a + run(second, recs[8100:]) == whole
    n = sum(1 for o in whole if o["type"] == "detector" and o["detector"] == "adwin:prediction")
    v = build_registry(whole_engine.status).get_sample_value(
        "driftd_detector_drifts_total",
        {"monitor": "credit", "model_version": "v1", "detector": "adwin:prediction"},
    )
    assert v == n > 0


@pytest.mark.parametrize(
    ("det", "key"),
    [
        ({"type": "cusum"}, "monitors.0.detectors.0.type"),
        ({"type": "adwin", "params": {"delta": 0}}, "monitors.0.detectors.0.params"),
        ({"type": "adwin", "signal": "feature:nope"}, "monitors.0.detectors.0.signal"),
    ],
)
def test_bad_detector_config_exit_2_names_key(
    tmp_path: Path,
    profile: Path,
    det: dict,
    key: str,
    capsys: pytest.CaptureFixture[str],  # type: ignore[type-arg]
) -> None:
    cfg = config(tmp_path, profile, [det])
    assert main(["check-config", "-c", str(cfg)]) == 2
    assert key in capsys.readouterr().err
