"""Seeded credit-scoring predictions with delayed labels, for the performance tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from driftd_testutil import credit_config

from driftd.demo.credit import generate, labels_for

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
RATE_PER_S = 50.0  # event time: 4000 predictions span 80 s, labels come 1-60 s later
# v2's scores shifted up by this much: the approval rate jumps and accuracy drops by ~5 points
BAD_SHIFT = 1.2


def labelled_stream(
    *,
    v2_shift: float,
    n: int = 4000,
    n2: int = 6000,
    seed: int = 21,
    model: str = "credit-scoring",
    id_prefix: str = "",
) -> tuple[list[bytes], list[bytes]]:
    """v1 (calibrated) then v2 (scores shifted by ``v2_shift``), and their labels in
    label-time order (out of order with respect to the predictions)."""
    preds: list[bytes] = []
    labels: list[bytes] = []
    for k, (version, shift, count) in enumerate((("v1", 0.0, n), ("v2", v2_shift, n2))):
        ev = list(
            generate(
                count,
                version=version,
                seed=seed + k,
                score_shift=shift,
                start=T0 + timedelta(seconds=k * n / RATE_PER_S),
                rate_per_s=RATE_PER_S,
                model=model,
                id_prefix=id_prefix,
            )
        )
        preds += ev
        labels += labels_for(ev, score_shift=shift, seed=seed + k)
    labels.sort(key=_label_ts)
    return preds, labels


def _label_ts(raw: bytes) -> bytes:
    return raw.split(b'"ts":"', 1)[1]


PERFORMANCE: dict[str, Any] = {
    "window": 2000,
    "step": 500,
    "label_horizon_s": 3600,
    "metrics": ["accuracy"],
}


def perf_config(
    tmp: Path,
    *,
    profile: Path,
    performance: dict[str, Any] | None = None,
    second_model: str | None = None,
    label_topic: str | None = None,
    **kw: Any,
) -> Path:
    """credit_config with a performance block (prediction drift switched off: these tests
    are about labels), optionally a second monitor on ``second_model`` and a label topic."""
    kw.setdefault("prediction", {"kind": "numeric", "test": "psi", "threshold": 1e6})
    p = credit_config(tmp, profile=profile, **kw)
    cfg = yaml.safe_load(p.read_text())
    mon = cfg["monitors"][0]
    mon["performance"] = dict(performance or PERFORMANCE)
    if second_model is not None:
        cfg["monitors"].append({**mon, "name": "credit-eq", "model": second_model})
    if label_topic is not None:
        cfg["kafka"]["label_topics"] = [label_topic]
    p.write_text(yaml.safe_dump(cfg))
    return p
