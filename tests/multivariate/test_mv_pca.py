"""PCA reconstruction error: equal to NannyML's ``DataReconstructionDriftCalculator`` (to
1e-6, in practice ~1e-12), one-hot encoding equal to a scikit-learn pipeline, state
round-trips, calibration inputs."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pandas as pd
import pytest
from nannyml_support import nml, quiet
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from driftd.stats import multivariate as MV
from driftd.stats.multivariate.pca import PCAReconstruction, fit_pca

LABELS = ("b", "a", "c", "d")  # reference category order (codes): not alphabetical on purpose


def numeric_rows(rng: np.random.Generator, n: int, rho: float, missing: float) -> np.ndarray:
    d = 6
    cov = np.eye(d)
    cov[0, 1] = cov[1, 0] = rho
    cov[2, 3] = cov[3, 2] = -0.4
    x = rng.multivariate_normal(np.zeros(d), cov, size=n)
    x = x * np.array([1.0, 20.0, 0.01, 3.0, 1.0, 5.0]) + np.array([0.0, 1e3, 0.0, -2.0, 0.0, 7.0])
    x[rng.random(x.shape) < missing] = np.nan
    return x


def category_codes(rng: np.random.Generator, n: int, k_drawn: int, missing: float) -> np.ndarray:
    p = np.array([0.35, 0.3, 0.2, 0.1, 0.05])[:k_drawn]
    codes = rng.choice(k_drawn, size=(n, 2), p=p / p.sum())
    codes[rng.random(codes.shape) < missing] = -1
    return codes


def frame(num: np.ndarray, cat: np.ndarray | None = None) -> pd.DataFrame:
    df = pd.DataFrame(num, columns=[f"f{i}" for i in range(num.shape[1])])
    if cat is not None:
        labels = np.array([*LABELS, "zz-unseen"], dtype=object)
        for j in range(cat.shape[1]):
            col = labels[np.clip(cat[:, j], 0, len(LABELS))].astype(object)
            # missing as NaN, as pandas reads it: NannyML's imputer only sees NaN as missing
            col[cat[:, j] < 0] = np.nan
            df[f"c{j}"] = pd.Series(col, dtype=object)
    return df


def nannyml_values(
    ref: pd.DataFrame, ana: pd.DataFrame, chunk: int, variance: float = 0.65
) -> tuple[np.ndarray, int]:
    with quiet():
        calc = nml.DataReconstructionDriftCalculator(
            column_names=list(ref.columns), chunk_size=chunk, n_components=variance
        )
        calc.fit(ref)
        res = calc.calculate(ana).filter(period="analysis").to_df()
    return res[("reconstruction_error", "value")].to_numpy(), int(calc._pca.n_components_)


@pytest.mark.parametrize("variance", [0.3, 0.65, 0.9])
def test_numeric_equals_nannyml(variance: float) -> None:
    rng = np.random.default_rng(18)
    ref = numeric_rows(rng, 4000, 0.8, 0.05)
    ana = numeric_rows(rng, 3000, -0.8, 0.05)
    want, k = nannyml_values(frame(ref), frame(ana), 1000, variance)
    model = fit_pca(ref, variance=variance)
    assert model.n_components == k
    got = [model.statistic(ana[i : i + 1000]) for i in range(0, 3000, 1000)]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    np.testing.assert_allclose(got, want, rtol=1e-10)  # in fact equal to rounding


def test_mixed_features_equal_nannyml_with_missing_and_unseen() -> None:
    rng = np.random.default_rng(19)
    ref_num = numeric_rows(rng, 5000, 0.7, 0.04)
    ref_cat = category_codes(rng, 5000, 4, 0.06)
    ana_num = numeric_rows(rng, 2000, 0.2, 0.04)
    ana_cat = category_codes(rng, 2000, 5, 0.06)  # code 4: a label the reference never saw
    want, k = nannyml_values(frame(ref_num, ref_cat), frame(ana_num, ana_cat), 500)
    model = fit_pca(ref_num, ref_cat, categories=[LABELS, LABELS])
    assert model.n_components == k
    got = [model.statistic(ana_num[i : i + 500], ana_cat[i : i + 500]) for i in range(0, 2000, 500)]
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-6)


def test_most_frequent_ties_break_to_the_smallest_label_as_nannyml() -> None:
    # codes 0 ("b") and 1 ("a") equally frequent: scikit-learn's imputer picks "a"
    rng = np.random.default_rng(20)
    n = 2000
    ref_num = numeric_rows(rng, n, 0.5, 0.0)
    col = rng.permutation(np.repeat([0, 1, 2, 3], [600, 600, 500, 300]))
    col[np.flatnonzero(col == 2)[:100]] = -1  # missing, leaving codes 0 and 1 tied
    ref_cat = np.column_stack([col, rng.permutation(col)])
    ana_num = numeric_rows(rng, 1000, 0.5, 0.0)
    ana_cat = category_codes(rng, 1000, 4, 0.3)
    want, _ = nannyml_values(frame(ref_num, ref_cat), frame(ana_num, ana_cat), 1000)
    model = fit_pca(ref_num, ref_cat, categories=[LABELS, LABELS])
    assert LABELS[int(model.pipeline.modes[0])] == "a"
    assert model.statistic(ana_num, ana_cat) == pytest.approx(float(want[0]), rel=1e-10)


def test_onehot_equals_a_scikit_learn_pipeline() -> None:
    rng = np.random.default_rng(21)
    ref_num = numeric_rows(rng, 4000, 0.8, 0.03)
    ref_cat = category_codes(rng, 4000, 4, 0.05)
    ana_num = numeric_rows(rng, 1500, -0.8, 0.03)
    ana_cat = category_codes(rng, 1500, 5, 0.05)
    ref_df, ana_df = frame(ref_num, ref_cat), frame(ana_num, ana_cat)
    nums = [f"f{i}" for i in range(6)]
    cats = ["c0", "c1"]
    pre = ColumnTransformer(
        [
            ("num", SimpleImputer(strategy="mean"), nums),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(categories=[list(LABELS)] * 2, handle_unknown="ignore"),
                ),
                cats,
            ),
        ],
        sparse_threshold=0.0,
    )
    scaler = StandardScaler()
    pca = PCA(n_components=0.65)
    with quiet():
        z_ref = scaler.fit_transform(pre.fit_transform(ref_df))
        pca.fit(z_ref)
        z = scaler.transform(pre.transform(ana_df))
    want = float(np.mean(np.linalg.norm(z - pca.inverse_transform(pca.transform(z)), axis=1)))
    model = fit_pca(ref_num, ref_cat, categories=[LABELS, LABELS], encoding="onehot")
    assert model.n_components == pca.n_components_
    assert model.statistic(ana_num, ana_cat) == pytest.approx(want, rel=1e-10)


def test_state_round_trips_exactly() -> None:
    rng = np.random.default_rng(22)
    ref_num = numeric_rows(rng, 3000, 0.8, 0.05)
    ref_cat = category_codes(rng, 3000, 4, 0.05)
    model = fit_pca(
        ref_num,
        ref_cat,
        numeric=[f"f{i}" for i in range(6)],
        categorical=["c0", "c1"],
        categories=[LABELS, LABELS],
        seed=3,
    )
    meta, arrays = model.to_state()
    assert all(isinstance(a, np.ndarray) and a.dtype != object for a in arrays.values())
    back = PCAReconstruction.from_state(orjson.loads(orjson.dumps(meta)), arrays)
    doc = orjson.loads(orjson.dumps(MV.to_json(model)))
    again = MV.from_json(doc)
    win_num = numeric_rows(rng, 700, 0.0, 0.05)
    win_cat = category_codes(rng, 700, 5, 0.05)
    want = model.statistic(win_num, win_cat)
    for other in (back, again, MV.from_state(meta, arrays)):
        assert isinstance(other, PCAReconstruction)
        assert other.statistic(win_num, win_cat) == want
        assert other.numeric == model.numeric and other.categorical == model.categorical
        a = other.calibrate(700, 1e-3, resamples=200, seed=1)
        b = model.calibrate(700, 1e-3, resamples=200, seed=1)
        assert a.threshold == b.threshold


def test_out_of_fold_errors_are_unbiased_where_in_sample_ones_are_low() -> None:
    # the PCA fit minimises the errors of its own rows: fresh rows score higher, by about a
    # window mean's standard error at this size, so the calibration must not use them
    mix = np.random.default_rng(0).normal(size=(20, 20)) / np.sqrt(20)
    in_sample, out_of_fold = [], []
    for seed in range(5):
        rng = np.random.default_rng(100 + seed)
        ref = rng.normal(size=(1000, 20)) @ mix
        model = fit_pca(ref, seed=seed)
        assert model.folds == 5
        assert model.reference_statistic == pytest.approx(float(np.mean(model.row_errors(ref))))
        fresh = float(np.mean(model.row_errors(rng.normal(size=(50_000, 20)) @ mix)))
        in_sample.append(model.reference_statistic - fresh)
        out_of_fold.append(model.errors_mean - fresh)
    assert np.mean(in_sample) < -0.03  # measured -0.04
    assert abs(np.mean(out_of_fold)) < 0.015


def test_calibrated_threshold_is_above_the_reference_level() -> None:
    rng = np.random.default_rng(24)
    model = fit_pca(numeric_rows(rng, 5000, 0.8, 0.0))
    cal = model.calibrate(1000, 1e-4, seed=2)
    assert cal.test == "pca_reconstruction" and cal.threshold_kind == "statistic"
    assert cal.threshold > model.errors_mean
    assert cal.method.startswith("out-of-fold-errors:")
    assert cal.null["center"] == model.errors_mean
    assert model.calibrate(1000, 1e-4, seed=2).threshold == cal.threshold  # seeded


def test_windows_and_edge_cases() -> None:
    rng = np.random.default_rng(25)
    ref = numeric_rows(rng, 500, 0.8, 0.0)
    model = fit_pca(ref)
    assert math.isnan(model.statistic(np.zeros((0, 6))))
    with pytest.raises(ValueError):
        model.statistic(np.zeros((3, 5)))
    with pytest.raises(ValueError):
        fit_pca(ref, variance=1.0)
    with pytest.raises(ValueError):
        fit_pca(ref[:1])
    # a row entirely missing is the reference mean: standardised 0 (up to PCA's own mean)
    assert model.statistic(np.full((1, 6), np.nan)) < 1e-9
    # a constant column is scaled by 1, not divided by zero
    const = ref.copy()
    const[:, 2] = 5.0
    m2 = fit_pca(const)
    assert np.isfinite(m2.statistic(const[:50]))
    # tiny references are scored in-sample, and the calibration says so
    small = fit_pca(ref[:40])
    assert small.folds == 0
    assert any("in-sample" in n for n in small.calibrate(20, 0.01, resamples=100).notes)
    # categorical-only
    cat_only = fit_pca(None, category_codes(rng, 400, 4, 0.1), categories=[LABELS, LABELS])
    win = category_codes(rng, 50, 5, 0.1)
    assert np.isfinite(cat_only.statistic(None, win))
    assert cat_only.row_errors(None, win).shape == (50,)
