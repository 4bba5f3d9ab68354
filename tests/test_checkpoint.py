"""Checkpoints: atomic multi-entry store, isolation of bad entries, exact pipeline
snapshot/restore, config-change discard, checkpoints of the previous release."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from driftd_testutil import LogLines, build_credit_profile, credit_config, roundtrip

from driftd.config import load_config
from driftd.demo.credit import generate
from driftd.errors import StateError
from driftd.runtime.pipeline import Pipeline
from driftd.state.checkpoint import CheckpointStore
from driftd.types import RawRecord


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_credit_profile(tmp_path_factory.mktemp("ckpt-profile"))


def records(lines: list[bytes], start: int = 0, topic: str = "t", part: int = 0) -> list[RawRecord]:
    return [RawRecord(v, start + i + 1, None, part, start + i, topic) for i, v in enumerate(lines)]


def stream() -> list[bytes]:
    return list(generate(5000, version="v1", seed=31)) + list(
        generate(5000, version="v2", seed=32, score_shift=1.2)
    )


def run(engine: Pipeline, recs: list[RawRecord], batch: int = 777) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(0, len(recs), batch):
        out.extend(engine.process(recs[i : i + batch]))
    return out


def test_store_roundtrip_and_atomic_replace(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "ck")
    assert store.open() is None
    arrays = {"a": np.arange(10.0), "b": np.full((3, 2), -1, dtype=np.int32)}
    store.commit({"position": 1}, {"monitor/m": ({"x": [1, 2]}, arrays), "other": ({}, {})})
    store.commit({"position": 2}, {"monitor/m": ({"x": [3]}, arrays)})  # replaces one entry
    store.close()
    again = CheckpointStore(tmp_path / "ck")
    loaded = again.open()
    assert loaded is not None and loaded.meta == {"position": 2} and loaded.generation == 2
    assert loaded.keys == ["monitor/m", "other"]
    meta, got = again.load_entry("monitor/m")  # type: ignore[misc]
    assert meta["x"] == [3] and meta["key"] == "monitor/m" and meta["format_version"] == 2
    assert np.array_equal(got["a"], arrays["a"]) and got["b"].dtype == np.int32
    assert again.load_entry("monitor/none") is None
    # the lock, the manifest and the two live entry files; the replaced file is gone
    names = sorted(p.name for p in (tmp_path / "ck").iterdir())
    assert names[:2] == ["LOCK", "MANIFEST.json"] and len(names) == 4
    again.commit({"position": 3}, {}, removed=["other"])
    assert len(list((tmp_path / "ck").iterdir())) == 3
    with pytest.raises(StateError, match="in use by another driftd process"):
        CheckpointStore(tmp_path / "ck").open()


def test_bad_entry_is_isolated_and_moved_aside(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    store.open()
    entries = {f"version/m/v{i}": ({"i": i}, {"a": np.arange(5.0) + i}) for i in range(4)}
    store.commit({"position": 9}, entries)
    files = {k: tmp_path / e["file"] for k, e in store.entries.items()}
    files["version/m/v0"].write_bytes(files["version/m/v0"].read_bytes()[:50])  # truncated
    files["version/m/v1"].write_bytes(b"")  # zero length
    data = bytearray(files["version/m/v2"].read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    files["version/m/v2"].write_bytes(bytes(data))
    store.close()
    again = CheckpointStore(tmp_path)
    loaded = again.open()
    assert loaded is not None
    with LogLines() as logs:
        got = {k: again.load_entry(k) for k in loaded.keys}
    assert [k for k, v in got.items() if v is not None] == ["version/m/v3"]
    assert again.bad_entries == 3 and "starts fresh" in logs.text
    assert len(list((tmp_path / "corrupt").iterdir())) == 3


def test_pickled_payload_is_refused() -> None:
    import io

    from driftd.state.checkpoint import decode_entry

    buf = io.BytesIO()
    np.savez(buf, __meta__=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(ValueError):
        decode_entry("k", buf.getvalue())  # allow_pickle=False: never unpickled


def test_unwritable_store_raises_state_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StateError):
        CheckpointStore(blocker / "ck").commit({}, {"k": ({}, {})})


def test_stray_files_are_removed_at_open(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    store.open()
    store.commit({}, {"k": ({}, {"a": np.zeros(3)})})
    (tmp_path / "e-00000007-0123456789abcdef.npz").write_bytes(b"left by a crash")
    (tmp_path / ".MANIFEST.8.123.456.tmp").write_bytes(b"{")
    store.close()
    assert CheckpointStore(tmp_path).open() is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["LOCK", "MANIFEST.json", store.entries["k"]["file"]]
    )


def test_checkpoints_of_the_previous_release_are_set_aside(tmp_path: Path) -> None:
    (tmp_path / "t__0.ckpt.npz").write_bytes(b"old per-partition state")
    with LogLines() as logs:
        assert CheckpointStore(tmp_path).open() is None
    assert "driftd 0.1" in logs.text and "committed offsets" in logs.text
    (legacy,) = tmp_path.glob("legacy-*")
    assert [p.name for p in legacy.iterdir()] == ["t__0.ckpt.npz"]


def test_a_checkpoint_scale_out_does_not_use_is_retired(tmp_path: Path) -> None:
    """Scale-out keeps monitor state in the state topic: a checkpoint of the one-process mode
    is moved away at its start, so that going back never restores it as if it were current."""
    store = CheckpointStore(tmp_path / "ck")
    store.open()
    store.commit({"position": 7}, {"monitor/m": ({"x": [1]}, {"a": np.arange(3.0)})})
    with LogLines() as logs:
        dest = store.retire("scale-out keeps monitor state in the state topic")
    assert dest is not None and "not used" in logs.text
    assert sorted(p.name for p in dest.iterdir())[0] == "MANIFEST.json"
    store.close()
    assert CheckpointStore(tmp_path / "ck").open() is None  # nothing left to restore


def test_snapshot_restore_is_exact(tmp_path: Path, profile: Path) -> None:
    cfg = load_config(credit_config(tmp_path, profile=profile), environ={})
    recs = records(stream())
    whole = run(Pipeline(cfg), recs)

    first = Pipeline(cfg)
    part1 = run(first, recs[:4321])
    second = roundtrip(first, cfg, tmp_path / "ck")
    assert second.sources == {"t/0": 4321} and second.position == 4321
    part2 = run(second, recs[4321:])
    assert part1 + part2 == whole  # identical evaluations, statistics and alert ids


def test_changed_window_discards_state(tmp_path: Path, profile: Path) -> None:
    cfg_path = credit_config(tmp_path, profile=profile)
    cfg = load_config(cfg_path, environ={})
    e = Pipeline(cfg)
    run(e, records(stream()[:3000]))

    data = yaml.safe_load(cfg_path.read_text())
    data["monitors"][0]["window"] = {"type": "sliding", "events": 3000, "step": 500}
    cfg_path.write_text(yaml.safe_dump(data))
    with LogLines() as logs:
        changed = roundtrip(e, load_config(cfg_path, environ={}), tmp_path / "a")
    assert changed.by_name["credit"].versions == {}
    assert "changed" in logs.text and "discarding" in logs.text
    assert changed.sources == {"t/0": 3000}  # the position still holds: nothing read twice

    # thresholds / policy changes keep the saved windows
    data["monitors"][0]["window"] = {"type": "sliding", "events": 2000, "step": 500}
    data["monitors"][0]["policy"]["consecutive"] = 3
    cfg_path.write_text(yaml.safe_dump(data))
    kept = roundtrip(e, load_config(cfg_path, environ={}), tmp_path / "b")
    assert list(kept.by_name["credit"].versions) == ["v1"]


def test_unwritable_state_dir_at_start_exits_2(tmp_path: Path, profile: Path) -> None:
    import subprocess
    import sys

    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    cfg = credit_config(tmp_path, profile=profile)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "driftd",
            "run",
            "-c",
            str(cfg),
            "--state-dir",
            str(blocker / "state"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "state.dir" in r.stderr and "not writable" in r.stderr
