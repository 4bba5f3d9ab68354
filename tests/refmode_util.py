"""Configs and seeded streams for the warmup / version reference-mode tests."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml
from driftd_testutil import credit_config

# No `test:` and no `threshold:`: tests are chosen on the reference and thresholds calibrated
# (warmup) or set to the false-alert budget (version).
AUTO_FEATURES: dict[str, dict[str, Any]] = {
    "income": {"kind": "numeric"},
    "age": {"kind": "numeric"},
    "debt_ratio": {"kind": "numeric"},
    "region": {"kind": "categorical"},
    "employment": {"kind": "categorical"},
}


def mode_config(tmp: Path, reference: dict[str, Any], **kw: Any) -> Path:
    """The credit monitor of driftd_testutil.credit_config with another reference mode."""
    p = credit_config(tmp, profile=tmp / "no-profile.json", **kw)
    data = yaml.safe_load(p.read_text())
    mon = data["monitors"][0]
    mon["reference"] = reference
    if "features" not in kw:
        mon["features"] = AUTO_FEATURES
    if "prediction" not in kw:
        mon["prediction"] = {"kind": "numeric"}
    p.write_text(yaml.safe_dump(data))
    return p


def interleave(*streams: Iterable[bytes]) -> Iterator[bytes]:
    """Round-robin over the streams until all are exhausted."""
    its = [iter(s) for s in streams]
    while its:
        alive = []
        for it in its:
            x = next(it, None)
            if x is not None:
                yield x
                alive.append(it)
        its = alive
