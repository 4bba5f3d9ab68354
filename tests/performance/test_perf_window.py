"""Labelled count windows: ring semantics, metrics input, snapshot/restore."""

from __future__ import annotations

import numpy as np

from driftd.performance import LabelJoiner, LabelledWindow, classification_metrics


def test_window_keeps_the_last_pairs_and_round_trips() -> None:
    j = LabelJoiner(1e6)
    w = LabelledWindow(5)
    for b in range(4):
        ids = [f"{b}-{k}" for k in range(3)]
        j.add_predictions(ids, "v1", [b / 10, 0.5, 0.9], [float(b)] * 3, pred_labels=[0, 1, 1])
        w.append(j.add_labels(ids, [0.0, 1.0, 1.0], [b + 1.0] * 3))
    assert len(w) == 5 and w.total == 12
    s = w.sample()
    assert sorted(np.asarray(s.pred).tolist()) == [0.3, 0.5, 0.5, 0.9, 0.9]
    assert s.pred_labels is not None
    assert w.span() == {"events": 5, "start_ts": 2.0, "end_ts": 3.0}
    m = classification_metrics(s.pred, s.y, pred_labels=s.pred_labels)
    assert m["accuracy"] == 1.0
    w2 = LabelledWindow.restore({k: v.copy() for k, v in w.snapshot().items()})
    assert w2.total == 12 and len(w2) == 5
    np.testing.assert_array_equal(w2.sample().pred, s.pred)


def test_a_batch_larger_than_the_window() -> None:
    j = LabelJoiner(1e6)
    ids = [str(k) for k in range(10)]
    j.add_predictions(ids, "v1", np.arange(10) / 10, np.zeros(10))
    w = LabelledWindow(4)
    w.append(j.add_labels(ids, np.ones(10), np.ones(10)))
    np.testing.assert_allclose(np.sort(np.asarray(w.sample().pred)), [0.6, 0.7, 0.8, 0.9])
    assert w.sample().pred_labels is None and w.total == 10
