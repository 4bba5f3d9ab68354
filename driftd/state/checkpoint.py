"""Atomic, versioned checkpoints: one ``.npz`` file per source partition.

A checkpoint holds NumPy arrays (window ring buffers) and a JSON document (policy states,
counts, positions, config fingerprints) stored as a uint8 array named ``__meta__``. It is
written to a temporary file, fsynced, renamed over the previous one and the directory fsynced,
so a crash leaves either the old or the new checkpoint, never a torn one. Files are read with
``allow_pickle=False``: nothing in a checkpoint is ever unpickled.

This module only stores what stages hand it (``snapshot()`` / ``restore()`` live with the
stages); it knows nothing about windows or policies.
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from driftd.errors import StateError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_META = "__meta__"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
# The one entry that is not a source partition: process-level performance state (labels and
# predictions from different partitions meet there). Partition keys contain a "/".
PERFORMANCE_KEY = "__performance__"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CheckpointStore:
    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def path_for(self, key: str) -> Path:
        name = _UNSAFE.sub("_", key.replace("/", "__")) or "file"
        return self.dir / f"{name}.ckpt.npz"

    def save(self, key: str, meta: dict[str, Any], arrays: dict[str, npt.NDArray[Any]]) -> Path:
        """Write atomically. Raises StateError when the directory is not writable."""
        path = self.path_for(key)
        tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
        doc = {"format_version": FORMAT_VERSION, "key": key, "saved_at": time.time(), **meta}
        payload = {
            _META: np.frombuffer(
                orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY), dtype=np.uint8
            ),
            **arrays,
        }
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as fh:
                np.savez(fh, **payload)  # type: ignore[arg-type]
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            _fsync_dir(self.dir)
        except OSError as exc:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
            raise StateError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from exc
        return path

    def load(self, key: str) -> tuple[dict[str, Any], dict[str, npt.NDArray[Any]]] | None:
        """The saved (meta, arrays) for ``key``; None when absent. A corrupt or foreign file is
        renamed ``*.corrupt``, logged, and treated as absent."""
        path = self.path_for(key)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            meta = orjson.loads(arrays.pop(_META).tobytes())
            if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"unsupported checkpoint format {meta.get('format_version')!r}")
            if meta.get("key") != key:
                raise ValueError(f"checkpoint is for {meta.get('key')!r}, not {key!r}")
        except (OSError, ValueError, KeyError, orjson.JSONDecodeError) as exc:
            bad = path.with_name(path.name + f".corrupt-{int(time.time())}")
            log.error(
                "checkpoint %s is unreadable (%s); moved to %s, starting that partition "
                "from the committed offset",
                path,
                exc,
                bad.name,
            )
            try:
                os.replace(path, bad)
            except OSError:
                pass
            return None
        return meta, arrays

    def remove(self, key: str) -> None:
        self.path_for(key).unlink(missing_ok=True)


def split_arrays(state: dict[str, Any], arrays: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The JSON part of a component's snapshot: its NumPy arrays go to ``arrays`` under
    ``prefix`` and are referenced as ``{"__array__": name}`` (see :func:`join_arrays`)."""
    meta: dict[str, Any] = {}
    for k, v in state.items():
        if isinstance(v, np.ndarray):
            arrays[prefix + k] = v
            meta[k] = {"__array__": prefix + k}
        else:
            meta[k] = v
    return meta


def join_arrays(meta: dict[str, Any], arrays: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`split_arrays`."""
    return {
        k: arrays[v["__array__"]] if isinstance(v, dict) and "__array__" in v else v
        for k, v in meta.items()
    }
