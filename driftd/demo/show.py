"""Print what a running driftd says about a monitor (used by `make demo`).

``python -m driftd.demo.show --url http://127.0.0.1:9108 --monitor credit``
"""

from __future__ import annotations

import argparse
import urllib.request
from typing import Any

import orjson

METRICS = (
    "driftd_monitor_drifted",
    "driftd_alerts_total",
    "driftd_webhook_deliveries_total",
    "driftd_events_total",
    "driftd_feature_drifted",
)


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as r:
        return bytes(r.read())


def describe(view: dict[str, Any]) -> list[str]:
    out = [
        f"  model {view['model']}: current version {view['model_version']},"
        f" drifted={view['drifted']}, state={view['state']}, rollback_to={view['rollback_to']}"
    ]
    for name, s in view["versions"].items():
        ev = s.get("last_evaluation") or {}
        pred = ev.get("prediction") or {}
        drifted = [f for f, r in (ev.get("features") or {}).items() if r.get("drifted")]
        stat = pred.get("statistic")
        stat_s = f"{stat:.3f}" if isinstance(stat, float) else "n/a"
        out.append(
            f"  {name}: {s['events']} events, state={s['state']},"
            f" prediction {pred.get('test')}={stat_s} (threshold {pred.get('threshold')}),"
            f" drifted features: {', '.join(drifted) or 'none'}"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url", default="http://127.0.0.1:9108")
    ap.add_argument("--monitor", default="credit")
    a = ap.parse_args(argv)
    view = orjson.loads(_get(f"{a.url}/api/v1/monitors/{a.monitor}"))
    print(f"What driftd says about monitor {a.monitor!r} (GET /api/v1/monitors/{a.monitor}):")
    print("\n".join(describe(view)))
    print("\nSelected metrics (GET /metrics):")
    for line in _get(f"{a.url}/metrics").decode().splitlines():
        if line.startswith(METRICS) and (
            "feature_drifted" not in line or line.rstrip().endswith(" 1.0")
        ):
            print("  " + line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
