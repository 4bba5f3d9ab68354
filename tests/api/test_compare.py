"""driftd.compare and driftd.Profile: the daemon's numbers, bit for bit, and scipy's."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
import yaml
from driftd_testutil import credit_config, read_jsonl, write_lines
from scipy import stats as ss
from scipy.spatial.distance import jensenshannon

import driftd
from driftd.cli import main
from driftd.demo.credit import generate
from driftd.errors import ConfigError

# Every test kind the daemon has, explicit thresholds and calibrated ones.
FEATURES: dict[str, dict[str, Any]] = {
    "income": {"kind": "numeric", "test": "ks", "threshold": 0.01},
    "age": {"kind": "numeric", "test": "cvm", "threshold": 0.01},
    "debt_ratio": {"kind": "numeric", "test": "wasserstein_norm"},  # calibrated
    "loan_amount": {"kind": "numeric", "test": "psi", "threshold": 0.1},
    "credit_history_months": {"kind": "numeric", "test": "ad", "threshold": 0.01},
    "num_accounts": {"kind": "numeric", "test": "energy", "threshold": 0.1},
    "region": {"kind": "categorical", "test": "chi2", "threshold": 0.01},
    "employment": {"kind": "categorical", "test": "js"},  # calibrated
    "has_mortgage": {"kind": "categorical", "test": "z", "threshold": 0.01},
}
CURRENT = 3000


def flat(lines: list[bytes]) -> dict[str, list[Any]]:
    evs = [orjson.loads(x) for x in lines]
    cols: dict[str, list[Any]] = {f: [e["features"][f] for e in evs] for f in FEATURES}
    cols["prediction"] = [e["prediction"] for e in evs]
    return cols


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("compare")
    cfg = credit_config(
        tmp,
        profile=tmp / "profile.json",
        features=FEATURES,
        window={"type": "tumbling", "events": CURRENT},
        policy={"min_events": CURRENT, "consecutive": 1, "cooldown_s": 0},
        prediction={"kind": "numeric", "test": "ks", "threshold": 0.01},
    )
    doc = yaml.safe_load(cfg.read_text())
    doc["monitors"][0]["calibration"] = {"resamples": 200, "seed": 3}
    cfg.write_text(yaml.safe_dump(doc))
    ref_lines = list(generate(5000, version="v1", seed=21))
    cur_lines = list(generate(CURRENT, version="v2", seed=22, income_shift=0.05))
    # a few missing and odd values: quality rates and codes for unseen / missing
    cur_evs = [orjson.loads(x) for x in cur_lines]
    cur_evs[1]["features"]["income"] = None
    cur_evs[2]["features"]["region"] = "MARS"
    cur_evs[3]["features"]["employment"] = None
    cur_evs[4]["features"]["age"] = 250
    cur_lines = [orjson.dumps(e) for e in cur_evs]
    ref = write_lines(tmp / "reference.jsonl", ref_lines)
    cur = write_lines(tmp / "current.jsonl", cur_lines)
    prof = tmp / "profile.json"
    args = ["profile", "build", "-c", str(cfg), "--monitor", "credit", "--input", str(ref)]
    assert main([*args, "--out", str(prof)]) == 0
    out = tmp / "replay.jsonl"
    subprocess.run(
        [sys.executable, "-m", "driftd", "replay", "-c", str(cfg), str(cur), "--out", str(out)],
        check=True,
        cwd=tmp,
    )
    evals = [o for o in read_jsonl(out) if o["type"] == "evaluation"]
    assert len(evals) == 1 and evals[0]["window"]["events"] == CURRENT
    return {
        "cfg": cfg,
        "profile": prof,
        "evaluation": evals[0],
        "ref_lines": ref_lines,
        "cur_lines": cur_lines,
        "cur": cur,
    }


def assert_same(report: driftd.DriftReport, evaluation: dict[str, Any]) -> None:
    got = report.to_dict()
    assert set(got["features"]) == set(evaluation["features"])
    for name, want in [*evaluation["features"].items(), ("prediction", evaluation["prediction"])]:
        g = got["features"][name] if name != "prediction" else got["prediction"]
        for key in ("test", "statistic", "p_value", "threshold", "drifted", "level", "quality"):
            assert g[key] == want[key], (name, key, g[key], want[key])  # exact, no tolerance
    assert got["drift_share"] == evaluation["drift_share"]
    assert got["drifted"] == evaluation["drifted"]
    assert got["quality_breaches"] == evaluation["quality_breaches"]


def test_compare_equals_replay_to_the_last_bit(setup: dict[str, Any]) -> None:
    ev = setup["evaluation"]
    # the calibrated thresholds really came from the calibration, not a default
    assert ev["features"]["debt_ratio"]["threshold"] != 0.1
    prof = driftd.Profile.load(setup["profile"])
    cols = flat(setup["cur_lines"])
    for current in (
        cols,  # dict of lists
        pd.DataFrame(cols),
        pl.DataFrame(cols, strict=False),
        pa.table(pd.DataFrame(cols)),
        setup["cur"],  # the replay input itself
    ):
        report = driftd.compare(prof, current, config=setup["cfg"], monitor="credit")
        assert report.current_events == CURRENT and report.rejected == 0
        assert_same(report, ev)


def test_profile_build_in_python_writes_the_cli_file(setup: dict[str, Any], tmp_path: Path) -> None:
    cols = flat(setup["ref_lines"])
    p = driftd.Profile.build(pd.DataFrame(cols), config=setup["cfg"], monitor="credit")
    path = tmp_path / "p.json"
    pid = p.save(path)
    mine = orjson.loads(path.read_bytes())
    cli = orjson.loads(setup["profile"].read_bytes())
    assert pid == cli["id"] == driftd.Profile.load(path).id
    for doc in (mine, cli):
        doc.pop("created")
        for cal in doc["calibration"]["features"].values():
            cal.pop("seconds")  # how long calibrating took
    assert mine == cli  # calibrated thresholds included
    # and comparing from the reference table gives the same report as from the profile
    report = driftd.compare(pd.DataFrame(cols), flat(setup["cur_lines"]), config=setup["cfg"])
    assert_same(report, setup["evaluation"])


def close(a: float, b: float, rel: float = 1e-9, abs_: float = 1e-12) -> bool:
    return abs(a - b) <= max(rel * abs(b), abs_)


def test_compare_agrees_with_scipy() -> None:
    rng = np.random.default_rng(7)
    n, m = 2000, 1500
    ref = {
        "x": rng.normal(0.0, 1.0, n),
        "y": rng.lognormal(1.0, 0.5, n),
        "c": rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1]).tolist(),
    }
    cur = {
        "x": rng.normal(0.1, 1.0, m),
        "y": rng.lognormal(1.05, 0.5, m),
        "c": rng.choice(["a", "b", "c", "e"], m, p=[0.35, 0.3, 0.25, 0.1]).tolist(),
    }
    x, y = ref["x"], cur["x"]

    def run(test: str, feature: str = "x") -> driftd.FeatureResult:
        return driftd.compare(ref, cur, features=[feature], tests=test, prediction=False).features[
            feature
        ]

    r = run("ks")
    s = ss.ks_2samp(x, y)
    assert close(r.statistic, s.statistic) and r.p_value is not None
    assert close(r.p_value, s.pvalue)
    assert close(run("wasserstein").statistic, ss.wasserstein_distance(x, y))
    r = run("cvm")
    s = ss.cramervonmises_2samp(x, y)
    assert close(r.statistic, s.statistic, abs_=1e-12 * n * m)
    assert r.p_value is not None and close(r.p_value, s.pvalue)
    assert close(run("energy").statistic, ss.energy_distance(x, y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy notes its p-value is capped
        s = ss.anderson_ksamp([ref["y"], cur["y"]], variant="midrank")
    assert close(run("ad", "y").statistic, s.statistic)
    # categorical: the 2×(k+1) table, the last column the values unseen in the reference
    cats = ["a", "b", "c", "d"]
    rc = [ref["c"].count(k) for k in cats] + [0]
    cc = [cur["c"].count(k) for k in cats] + [sum(v not in cats for v in cur["c"])]
    s = ss.chi2_contingency(np.array([rc, cc]))
    r = run("chi2", "c")
    assert close(r.statistic, s.statistic) and r.p_value is not None
    assert close(r.p_value, s.pvalue)
    p, q = np.array(rc) / sum(rc), np.array(cc) / sum(cc)
    assert close(run("js", "c").statistic, float(jensenshannon(p, q, base=2)))
    assert run("chi2", "c").quality["unseen_rate"] == cc[-1] / m


def test_inputs_and_kinds() -> None:
    rng = np.random.default_rng(1)
    ref = pd.DataFrame(
        {
            "a": rng.normal(size=500),
            "flag": rng.random(500) < 0.5,
            "city": pd.Series(rng.choice(["x", "y"], 500)).astype("string"),
            "n": pd.array(rng.integers(0, 5, 500), dtype="Int64"),
        }
    )
    cur = ref.copy()
    cur.loc[3, "n"] = pd.NA
    cur.loc[4, "city"] = pd.NA
    cur.loc[5, "a"] = np.nan
    report = driftd.compare(ref, cur)
    kinds = {r.name: r.kind for r in report}
    assert kinds == {"a": "numeric", "flag": "categorical", "city": "categorical", "n": "numeric"}
    assert not report.drifted
    assert report.features["n"].quality["missing_rate"] == 1 / 500
    assert report.features["city"].quality["missing_rate"] == 1 / 500
    assert report.features["a"].statistic == 0.0 or report.features["a"].p_value == 1.0
    # strings in a numeric column reject their rows, as the daemon rejects those events
    bad = {"a": [0.1, "oops", 0.3] * 10, "flag": [True] * 30, "city": ["x"] * 30, "n": [1] * 30}
    r = driftd.compare(ref, bad)
    assert r.rejected == 10 and r.current_events == 20
    html = report._repr_html_()
    assert "<table>" in html and "city" in html
    frame = report.to_frame()
    assert list(frame.index) == ["a", "flag", "city", "n"]
    assert math.isnan(frame.loc["flag", "out_of_range_rate"])


def test_errors_name_the_problem() -> None:
    ref = {"a": [1.0, 2.0, 3.0] * 10}
    with pytest.raises(ConfigError, match="no column for 'a'"):
        driftd.compare(ref, {"b": [1.0] * 10})
    with pytest.raises(ConfigError, match="unknown drift test"):
        driftd.compare(ref, ref, tests="nope")
    with pytest.raises(ConfigError, match="no such column"):
        driftd.compare(ref, ref, features=["zzz"])
