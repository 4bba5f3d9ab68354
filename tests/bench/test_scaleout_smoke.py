"""benchmarks.scaleout end to end on a small stream against the suite's broker: every mode
merges every event once (its own checks), and the JSON carries the figures the docs quote."""

from __future__ import annotations

import pytest

from benchmarks import scaleout

pytestmark = pytest.mark.kafka


def test_scaleout_benchmark_runs_and_reports(kafka_bootstrap: str) -> None:
    out = scaleout.main(["--events", "48000", "--rounds", "1", "--bootstrap", kafka_bootstrap])
    assert out["problems"] == []
    assert out["keyed_by"] == "event_id" and out["partitions"] == 4
    for key in ("one_process", "one_process_scale_out", "two_processes"):
        assert out[f"{key}_events_per_s"] > 0
    assert out["cores"] >= 1
    internal = out["internal_topic"]
    assert internal["pane_records"] > 0
    # panes carry decoded features: 23 of them plus time and offset, far below the JSON
    assert 0 < internal["lz4_bytes_per_event"] <= internal["bytes_per_event"] < 430
