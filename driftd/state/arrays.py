"""NumPy arrays in a JSON document, for state that lives in the profile file.

A component's state is ``(meta, arrays)``: a JSON-ready dict and named NumPy arrays. A
checkpoint stores the arrays as they are (``.npz``, :mod:`driftd.state.checkpoint`); the profile
is one JSON document, so there the arrays are spelt out by :func:`arrays_to_json` as
``{"dtype": "float64", "shape": [r, c], "data": [...]}``. Only plain numeric dtypes are
accepted — nothing here can carry an object, so nothing is ever unpickled. Non-finite floats
are written as ``null`` (strict JSON has no NaN) and read back as NaN; finite float64 values
round-trip exactly (orjson writes the shortest representation that parses back to the same
double).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

_DTYPES = frozenset({"float64", "float32", "int64", "int32", "uint8", "bool"})


def arrays_to_json(arrays: Mapping[str, npt.NDArray[Any]]) -> dict[str, Any]:
    """``{name: {"dtype", "shape", "data"}}``; ``ValueError`` for a non-numeric dtype."""
    out: dict[str, Any] = {}
    for name, a in arrays.items():
        arr = np.asarray(a)
        dtype = arr.dtype.name
        if dtype not in _DTYPES:
            raise ValueError(f"array {name!r}: dtype {dtype} cannot be stored as JSON state")
        flat = arr.reshape(-1)
        if arr.dtype.kind == "f":
            data: list[Any] = [
                float(v) if fin else None
                for v, fin in zip(flat.tolist(), np.isfinite(flat).tolist(), strict=True)
            ]
        else:
            data = flat.tolist()
        out[name] = {"dtype": dtype, "shape": list(arr.shape), "data": data}
    return out


def arrays_from_json(doc: Mapping[str, Any]) -> dict[str, npt.NDArray[Any]]:
    """Inverse of :func:`arrays_to_json`; ``ValueError`` on a malformed entry."""
    out: dict[str, npt.NDArray[Any]] = {}
    for name, entry in doc.items():
        try:
            dtype = str(entry["dtype"])
            shape = tuple(int(s) for s in entry["shape"])
            data = entry["data"]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"array {name!r}: malformed JSON state") from exc
        if dtype not in _DTYPES:
            raise ValueError(f"array {name!r}: unsupported dtype {dtype!r}")
        if np.dtype(dtype).kind == "f":
            data = [np.nan if v is None else v for v in data]
        arr = np.asarray(data, dtype=dtype)
        if arr.size != int(np.prod(shape, dtype=np.int64)):
            raise ValueError(f"array {name!r}: {arr.size} values for shape {shape}")
        out[name] = np.ascontiguousarray(arr.reshape(shape))
    return out


__all__ = ["arrays_from_json", "arrays_to_json"]
