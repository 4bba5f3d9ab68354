"""Atomic checkpoints of many entries at once: entry files plus a manifest.

A checkpoint is a set of *entries* — one per monitor, per (monitor, version), for the
performance state — and a small JSON document (the position counter, each source partition's
next offset, alerts not yet handed to their actions). Each entry is a ``.npz`` file: NumPy
arrays plus its JSON meta stored as a uint8 array named ``__meta__``; nothing is ever
unpickled (``allow_pickle=False``).

``commit`` writes only the entries that changed, each to a new file whose name carries the
checkpoint's generation (created exclusively: two writers can never share a file), fsyncs
them, then replaces ``MANIFEST.json`` (temp file → fsync → rename → fsync directory). The
manifest names every entry's file with its SHA-256 and size, so the rename is the one commit
point: a crash leaves either the old or the new checkpoint, whole. Files the manifest no
longer names are removed after it is durable, and at start (a crash's leftovers).

Reading is isolated per entry: an entry whose file is missing, truncated, altered or unreadable
is moved to ``corrupt/``, logged, counted in :attr:`CheckpointStore.bad_entries` and treated as
absent — that monitor or version starts fresh; the others are restored.

This module only stores what stages hand it (``snapshot()`` / ``restore()`` live with the
stages); it knows nothing about windows or policies.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import logging
import os
import re
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from driftd.errors import StateError

log = logging.getLogger(__name__)

FORMAT_VERSION = 2
MANIFEST = "MANIFEST.json"
_META = "__meta__"
_ENTRY = re.compile(r"^e-\d+-[0-9a-f]{16}\.npz$")
_TMP = re.compile(r"^\.MANIFEST\..*\.tmp$")
_LEGACY = re.compile(r"\.ckpt\.npz$")
# The entry that is not a monitor: performance state (labels and predictions meet there).
PERFORMANCE_KEY = "__performance__"

Entry = tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_new(path: Path, data: bytes) -> None:
    """Create ``path`` (it must not exist), write, fsync."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)


def encode_entry(key: str, meta: dict[str, Any], arrays: dict[str, npt.NDArray[Any]]) -> bytes:
    doc = {"format_version": FORMAT_VERSION, "key": key, **meta}
    buf = io.BytesIO()
    payload = {
        _META: np.frombuffer(orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY), np.uint8),
        **arrays,
    }
    np.savez(buf, **payload)  # type: ignore[arg-type]
    return buf.getvalue()


def decode_entry(key: str, data: bytes) -> Entry:
    """Raises ValueError (or OSError, KeyError) for anything that is not this key's entry."""
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = orjson.loads(arrays.pop(_META).tobytes())
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"unsupported entry format {meta.get('format_version')!r}")
    if meta.get("key") != key:
        raise ValueError(f"entry is for {meta.get('key')!r}, not {key!r}")
    return meta, arrays


@dataclass(slots=True)
class Loaded:
    """What :meth:`CheckpointStore.open` found: the checkpoint's meta and its entry keys."""

    generation: int
    meta: dict[str, Any]
    keys: list[str] = field(default_factory=list)


def check_state_dir(path: Path) -> None:
    """Create the state directory and prove it is writable, or raise StateError."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-probe-{os.getpid()}"
        with open(probe, "wb") as fh:
            fh.write(b"ok")
            fh.flush()
            os.fsync(fh.fileno())
        probe.unlink()
    except OSError as exc:
        raise StateError(f"state.dir {path} is not writable: {exc.strerror or exc}") from exc


class CheckpointStore:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.generation = 0
        self.entries: dict[str, dict[str, Any]] = {}  # key → {"file", "sha256", "bytes"}
        self.bad_entries = 0  # entries found unusable at restore (moved to corrupt/)
        self._lock_fd: int | None = None

    # ------------------------------------------------------------------ reading

    def open(self) -> Loaded | None:
        """Read the manifest, tidy the directory; None when there is no usable checkpoint.

        Checkpoints of driftd 0.1 (one file per source partition, state per partition) are
        moved to ``legacy-<time>/`` with a warning: their per-partition windows cannot be
        merged into per-version state, so the monitors start fresh from the consumer group's
        committed offsets.
        """
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(f"cannot create {self.dir}: {exc.strerror or exc}") from exc
        self._lock()
        self._move_legacy()
        path = self.dir / MANIFEST
        loaded: Loaded | None = None
        if path.exists():
            try:
                doc = orjson.loads(path.read_bytes())
                if not isinstance(doc, dict) or doc.get("format_version") != FORMAT_VERSION:
                    raise ValueError(f"unsupported manifest format {doc.get('format_version')!r}")
                self.generation = int(doc["generation"])
                self.entries = {str(k): dict(v) for k, v in doc["entries"].items()}
                loaded = Loaded(self.generation, dict(doc["meta"]), sorted(self.entries))
            except (OSError, ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
                self._aside(path, f"manifest unreadable ({exc})")
                self.entries = {}
        self._remove_strays()
        return loaded

    def load_entry(self, key: str) -> Entry | None:
        """An entry of the opened checkpoint; None when absent or unusable (moved aside)."""
        e = self.entries.get(key)
        if e is None:
            return None
        path = self.dir / e["file"]
        try:
            data = path.read_bytes()
            if len(data) != int(e["bytes"]) or hashlib.sha256(data).hexdigest() != e["sha256"]:
                raise ValueError("size or checksum differs from the manifest")
            return decode_entry(key, data)
        except (
            OSError,
            ValueError,
            KeyError,
            EOFError,
            zipfile.BadZipFile,
            orjson.JSONDecodeError,
        ) as exc:
            self.bad_entries += 1
            self._aside(path, f"entry {key!r} unusable ({exc}); it starts fresh")
            self.entries.pop(key, None)
            return None

    # ------------------------------------------------------------------ writing

    def commit(
        self,
        meta: dict[str, Any],
        changed: dict[str, tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]],
        removed: list[str] | tuple[str, ...] = (),
    ) -> None:
        """Write the changed entries and a new manifest atomically. Raises StateError (the
        previous checkpoint is then still the current one)."""
        gen = self.generation + 1
        entries = dict(self.entries)
        written: list[Path] = []
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            for key, (emeta, arrays) in changed.items():
                data = encode_entry(key, emeta, arrays)
                name = f"e-{gen:08d}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"
                path = self.dir / name
                _write_new(path, data)
                written.append(path)
                entries[key] = {
                    "file": name,
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "bytes": len(data),
                }
            for key in removed:
                entries.pop(key, None)
            doc = {
                "format_version": FORMAT_VERSION,
                "generation": gen,
                "saved_at": time.time(),
                "meta": meta,
                "entries": entries,
            }
            tmp = self.dir / f".MANIFEST.{gen}.{os.getpid()}.{time.monotonic_ns()}.tmp"
            _write_new(tmp, orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY))
            written.append(tmp)
            os.replace(tmp, self.dir / MANIFEST)
            written.pop()
            _fsync_dir(self.dir)
        except (OSError, TypeError, ValueError) as exc:
            for p in written:
                try:
                    p.unlink(missing_ok=True)
                except OSError:
                    pass
            raise StateError(f"cannot write checkpoint in {self.dir}: {exc}") from exc
        old = {e["file"] for e in self.entries.values()}
        self.generation = gen
        self.entries = entries
        for name in old - {e["file"] for e in entries.values()}:
            try:
                (self.dir / name).unlink(missing_ok=True)
            except OSError as exc:  # a leftover is removed at the next start
                log.warning("could not remove old checkpoint file %s: %s", name, exc)

    # ------------------------------------------------------------------ housekeeping

    def _lock(self) -> None:
        """One process per checkpoint directory: a second one would overwrite the first's
        manifest. The lock is released when the process ends (or execs)."""
        if self._lock_fd is not None:
            return
        path = self.dir / "LOCK"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise StateError(
                f"state.dir: {self.dir} is in use by another driftd process (pid {other});"
                " every process needs a state directory of its own"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def retire(self, why: str) -> Path | None:
        """Move a checkpoint that will not be used (its manifest and entries) to
        ``retired-<time>/``, so that it is never restored later as if current; the
        directory it went to, or None when there was none."""
        files = [p for p in self.dir.iterdir() if p.name == MANIFEST or _ENTRY.match(p.name)]
        if not files:
            return None
        dest = self.dir / f"retired-{int(time.time())}"
        try:
            dest.mkdir(exist_ok=True)
            for p in files:
                os.replace(p, dest / p.name)
        except OSError as exc:
            raise StateError(f"cannot move the unused checkpoint to {dest}: {exc}") from exc
        log.warning("%s: the checkpoint in %s is not used; moved to %s", why, self.dir, dest)
        return dest

    def _aside(self, path: Path, why: str) -> None:
        bad = self.dir / "corrupt"
        target = bad / f"{path.name}.{int(time.time())}"
        log.error("checkpoint %s: %s; moved to %s", path, why, target)
        try:
            bad.mkdir(exist_ok=True)
            os.replace(path, target)
        except OSError:
            pass

    def _remove_strays(self) -> None:
        """Entry files no manifest names and temp files: leftovers of a crash."""
        named = {e["file"] for e in self.entries.values()}
        for p in self.dir.iterdir():
            if (_ENTRY.match(p.name) and p.name not in named) or _TMP.match(p.name):
                try:
                    p.unlink()
                except OSError as exc:
                    log.warning("could not remove stray checkpoint file %s: %s", p, exc)

    def _move_legacy(self) -> None:
        legacy = [p for p in self.dir.iterdir() if _LEGACY.search(p.name)]
        legacy += [p for p in self.dir.iterdir() if p.name.startswith(".tmp-")]
        if not legacy:
            return
        dest = self.dir / f"legacy-{int(time.time())}"
        log.warning(
            "found %d checkpoint files of driftd 0.1, which kept state per source partition;"
            " this release keeps one state per model version and cannot merge them. Starting"
            " the monitors fresh from the consumer group's committed offsets; the old files"
            " are in %s",
            len(legacy),
            dest,
        )
        try:
            dest.mkdir(exist_ok=True)
            for p in legacy:
                os.replace(p, dest / p.name)
        except OSError as exc:
            raise StateError(f"cannot move old checkpoints to {dest}: {exc}") from exc


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
