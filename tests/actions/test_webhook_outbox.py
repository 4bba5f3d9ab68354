"""Durable outbox: atomic files, idempotent put, schedules persisted, restart, bounds."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from driftd.actions.outbox import Outbox, entry_filename

MakeAlert = Callable[..., dict[str, Any]]


class FakeClock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name != "done.log")


def test_put_writes_json_entry_before_returning(tmp_path: Path, make_alert: MakeAlert) -> None:
    box = Outbox(tmp_path, clock=FakeClock(1000.0))
    alert = make_alert()
    assert box.put(alert) is True
    files = _files(tmp_path)
    assert files == [entry_filename(alert["id"])]
    stored = orjson.loads((tmp_path / files[0]).read_bytes())  # JSON, never pickle
    assert stored == {
        "format_version": 1,
        "id": alert["id"],
        "attempts": 0,
        "next_attempt": 1000.0,
        "created": 1000.0,
        "alert": alert,
    }
    assert box.pending() == 1


def test_put_is_idempotent_on_alert_id(tmp_path: Path, make_alert: MakeAlert) -> None:
    box = Outbox(tmp_path)
    assert box.put(make_alert("a1"))
    before = (tmp_path / entry_filename("a1")).read_bytes()
    assert box.put(make_alert("a1", severity="warning"))  # same id: no-op, first one wins
    assert box.pending() == 1
    assert (tmp_path / entry_filename("a1")).read_bytes() == before
    assert len(_files(tmp_path)) == 1


def test_put_after_finish_is_still_a_no_op(tmp_path: Path, make_alert: MakeAlert) -> None:
    box = Outbox(tmp_path)
    box.put(make_alert("a1"))
    assert box.remove("a1")
    assert box.put(make_alert("a1"))
    assert box.pending() == 0 and _files(tmp_path) == []


def test_put_before_load_does_not_duplicate(tmp_path: Path, make_alert: MakeAlert) -> None:
    Outbox(tmp_path).put(make_alert("a1"))
    box = Outbox(tmp_path)
    assert box.put(make_alert("a1"))  # not loaded yet, but the file is there
    assert box.load() == 1
    assert len(_files(tmp_path)) == 1


def test_due_reschedule_remove(tmp_path: Path, make_alert: MakeAlert) -> None:
    clock = FakeClock(100.0)
    box = Outbox(tmp_path, clock=clock)
    box.put(make_alert("a1"))
    clock.now = 101.0
    box.put(make_alert("a2"))
    assert [e.id for e in box.due(101.0)] == ["a1", "a2"]
    box.reschedule("a1", next_at=150.0, attempts=1)
    assert [e.id for e in box.due(120.0)] == ["a2"]
    assert box.next_due() == 101.0
    entry = box.get("a1")
    assert entry is not None and entry.attempts == 1 and entry.next_attempt == 150.0
    assert box.remove("a2")
    assert not box.remove("a2")
    assert box.next_due() == 150.0
    assert [e.id for e in box.due(150.0)] == ["a1"]
    box.reschedule("gone", 1.0, 1)  # unknown id: no-op
    assert box.pending() == 1


def test_load_restores_schedule_and_attempts(tmp_path: Path, make_alert: MakeAlert) -> None:
    box = Outbox(tmp_path, clock=FakeClock(100.0))
    box.put(make_alert("a1"))
    box.put(make_alert("a2"))
    box.reschedule("a1", next_at=500.0, attempts=3)
    box.remove("a2")

    restarted = Outbox(tmp_path)
    assert restarted.load() == 1
    entry = restarted.get("a1")
    assert entry is not None
    assert (entry.attempts, entry.next_attempt, entry.created) == (3, 500.0, 100.0)
    assert entry.alert == make_alert("a1")
    assert restarted.due(499.0) == [] and len(restarted.due(500.0)) == 1


def test_load_cleans_tmp_and_sets_corrupt_aside(
    tmp_path: Path, make_alert: MakeAlert, caplog: pytest.LogCaptureFixture
) -> None:
    Outbox(tmp_path).put(make_alert("good"))
    (tmp_path / ".tmp-crashed.json.1.2").write_bytes(b'{"half')
    bad = tmp_path / entry_filename("bad")
    bad.write_bytes(b"not json")
    renamed = tmp_path / entry_filename("renamed")
    renamed.write_bytes((tmp_path / entry_filename("good")).read_bytes())  # wrong name for id
    (tmp_path / "README.txt").write_text("ignored")

    box = Outbox(tmp_path)
    with caplog.at_level(logging.ERROR, logger="driftd.actions.outbox"):
        assert box.load() == 1
    assert box.get("good") is not None
    names = _files(tmp_path)
    assert not any(n.startswith(".tmp-") for n in names)
    assert bad.name + ".corrupt" in names and renamed.name + ".corrupt" in names
    assert sum("unreadable entry" in r.getMessage() for r in caplog.records) == 2


def test_bounded(tmp_path: Path, make_alert: MakeAlert, caplog: pytest.LogCaptureFixture) -> None:
    box = Outbox(tmp_path, max_pending=2)
    assert box.put(make_alert("a1")) and box.put(make_alert("a2"))
    with caplog.at_level(logging.ERROR, logger="driftd.actions.outbox"):
        assert box.put(make_alert("a3")) is False
    assert box.dropped_full == 1
    assert box.pending() == 2 and len(_files(tmp_path)) == 2
    assert any("full" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)
    assert box.put(make_alert("a1"))  # a duplicate of a queued alert is not a drop
    assert box.dropped_full == 1
    box.remove("a1")
    assert box.put(make_alert("a3"))


def test_load_keeps_entries_beyond_a_lowered_bound(tmp_path: Path, make_alert: MakeAlert) -> None:
    box = Outbox(tmp_path)
    for i in range(3):
        box.put(make_alert(f"a{i}"))
    smaller = Outbox(tmp_path, max_pending=2)
    assert smaller.load() == 3  # durable data is never discarded
    assert smaller.put(make_alert("a9")) is False


@pytest.mark.parametrize(
    ("a", "b"),
    [("a/b", "a_b"), ("ABC", "abc"), ("x" * 300, "x" * 301), ("../../etc", "etc")],
)
def test_filenames_are_distinct_and_safe(a: str, b: str) -> None:
    fa, fb = entry_filename(a), entry_filename(b)
    assert fa != fb
    for name in (fa, fb):
        assert "/" not in name and not name.startswith(".") and len(name) < 120


def test_put_requires_string_id(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Outbox(tmp_path).put({"type": "drift.detected"})


def test_finished_ids_are_remembered_across_restarts(tmp_path: Path, make_alert: MakeAlert) -> None:
    box = Outbox(tmp_path)
    box.load()
    a, b = make_alert("a"), make_alert("b")
    assert box.put(a) and box.put(b)
    assert box.remove(a["id"])
    # A new process re-derives alert `a` while re-processing events: it must not be re-sent.
    box2 = Outbox(tmp_path)
    assert box2.load() == 1
    assert box2.put(a) is True
    assert box2.pending() == 1 and box2.get(a["id"]) is None
    # A torn last line (crash mid-append) does not count as finished.
    with open(tmp_path / "done.log", "ab") as fh:
        fh.write(b"half-written-id")
    box3 = Outbox(tmp_path)
    box3.load()
    assert box3.put(make_alert("half-written-id"))
    assert box3.get("half-written-id") is not None


def test_done_log_compacts(tmp_path: Path, make_alert: MakeAlert) -> None:
    box = Outbox(tmp_path, remember_done=3)
    box.load()
    ids = []
    for i in range(10):
        a = make_alert(f"id-{i}")
        ids.append(a["id"])
        box.put(a)
        box.remove(a["id"])
    lines = (tmp_path / "done.log").read_text().splitlines()
    assert len(lines) <= 6
    box2 = Outbox(tmp_path, remember_done=3)
    box2.load()
    assert box2.put(make_alert(ids[-1])) and box2.pending() == 0
