"""Checkpoints: atomic store, exact engine snapshot/restore, config-change discard."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from driftd_testutil import LogLines, build_credit_profile, credit_config

from driftd.config import load_config
from driftd.demo.credit import generate
from driftd.runtime.engine import Engine
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


def run(engine: Engine, recs: list[RawRecord], batch: int = 777) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(0, len(recs), batch):
        out.extend(engine.process(recs[i : i + batch]))
    return out


def test_store_roundtrip_and_atomic_replace(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "ck")
    arrays = {"a": np.arange(10.0), "b": np.full((3, 2), -1, dtype=np.int32)}
    store.save("topic/3", {"next_offset": 42, "x": [1, 2]}, arrays)
    store.save("topic/3", {"next_offset": 43, "x": [1, 2]}, arrays)  # replaces
    meta, got = store.load("topic/3")  # type: ignore[misc]
    assert meta["next_offset"] == 43 and meta["key"] == "topic/3" and meta["format_version"] == 1
    assert np.array_equal(got["a"], arrays["a"]) and got["b"].dtype == np.int32
    assert [p.name for p in (tmp_path / "ck").iterdir()] == ["topic__3.ckpt.npz"]
    assert store.load("topic/4") is None


def test_corrupt_checkpoint_is_moved_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = CheckpointStore(tmp_path)
    store.path_for("t/0").write_bytes(b"garbage, not an npz")
    with LogLines() as logs:
        assert store.load("t/0") is None
    assert "unreadable" in logs.text
    assert not store.path_for("t/0").exists()
    assert any(p.name.startswith("t__0.ckpt.npz.corrupt") for p in tmp_path.iterdir())


def test_pickled_payload_is_refused(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    obj = np.array([{"evil": 1}], dtype=object)
    with open(store.path_for("t/0"), "wb") as fh:
        np.savez(fh, __meta__=obj)
    assert store.load("t/0") is None  # allow_pickle=False: never unpickled


def test_unwritable_store_raises_state_error(tmp_path: Path) -> None:
    from driftd.errors import StateError

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StateError):
        CheckpointStore(blocker / "ck").save("t/0", {}, {})


def test_snapshot_restore_is_exact(tmp_path: Path, profile: Path) -> None:
    cfg = load_config(credit_config(tmp_path, profile=profile), environ={})
    recs = records(stream())
    whole = run(Engine(cfg), recs)

    first = Engine(cfg)
    part1 = run(first, recs[:4321])
    store = CheckpointStore(tmp_path / "ck")
    meta, arrays = first.snapshot_partition("t/0")
    store.save("t/0", meta, arrays)

    second = Engine(cfg)
    loaded = store.load("t/0")
    assert loaded is not None
    ps = second.restore_partition("t/0", *loaded)
    assert ps.next_offset == 4321
    second.adopt(ps)
    part2 = run(second, recs[4321:])
    assert part1 + part2 == whole  # identical evaluations, statistics and alert ids


def test_changed_window_discards_state(
    tmp_path: Path, profile: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg_path = credit_config(tmp_path, profile=profile)
    cfg = load_config(cfg_path, environ={})
    e = Engine(cfg)
    run(e, records(stream()[:3000]))
    meta, arrays = e.snapshot_partition("t/0")

    data = yaml.safe_load(cfg_path.read_text())
    data["monitors"][0]["window"] = {"type": "sliding", "events": 3000, "step": 500}
    cfg_path.write_text(yaml.safe_dump(data))
    changed = Engine(load_config(cfg_path, environ={}))
    with LogLines() as logs:
        ps = changed.restore_partition("t/0", meta, arrays)
    assert ps.versions == {}
    assert "changed" in logs.text and "discarding" in logs.text
    assert ps.next_offset == 3000  # the position still holds: nothing is re-read twice

    # thresholds / policy changes keep the saved windows
    data["monitors"][0]["window"] = {"type": "sliding", "events": 2000, "step": 500}
    data["monitors"][0]["policy"]["consecutive"] = 3
    cfg_path.write_text(yaml.safe_dump(data))
    kept = Engine(load_config(cfg_path, environ={})).restore_partition("t/0", meta, arrays)
    assert list(kept.versions) == [("credit", "v1")]


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
