"""``driftd.state.arrays``: NumPy arrays through a JSON document and back."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from driftd.state.arrays import arrays_from_json, arrays_to_json


def test_round_trip_is_exact_and_typed() -> None:
    rng = np.random.default_rng(1)
    arrays = {
        "f": rng.normal(size=(3, 4)) * 10.0 ** rng.integers(-300, 300, size=(3, 4)),
        "nan": np.array([np.nan, 1.5, np.inf, -np.inf, 5e-324]),
        "i": np.array([[1, -2], [3, 2**62]], dtype=np.int64),
        "i32": np.array([-1, 4], dtype=np.int32),
        "empty": np.zeros((0, 3)),
    }
    doc = orjson.loads(orjson.dumps(arrays_to_json(arrays)))
    back = arrays_from_json(doc)
    assert set(back) == set(arrays)
    for k, a in arrays.items():
        assert back[k].dtype == a.dtype and back[k].shape == a.shape
        assert back[k].flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(back["f"], arrays["f"])  # bit for bit
    np.testing.assert_array_equal(back["i"], arrays["i"])
    # strict JSON has no NaN/inf: they come back as NaN
    np.testing.assert_array_equal(back["nan"], [np.nan, 1.5, np.nan, np.nan, 5e-324])


def test_only_numeric_arrays() -> None:
    with pytest.raises(ValueError, match="dtype"):
        arrays_to_json({"o": np.array(["a", None], dtype=object)})
    with pytest.raises(ValueError, match="dtype"):
        arrays_from_json({"o": {"dtype": "object", "shape": [1], "data": [1]}})
    with pytest.raises(ValueError, match="shape"):
        arrays_from_json({"a": {"dtype": "float64", "shape": [2, 2], "data": [1.0]}})
    with pytest.raises(ValueError, match="malformed"):
        arrays_from_json({"a": {"shape": [1], "data": [1.0]}})
