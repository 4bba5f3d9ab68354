"""Shared helpers for driftd's tests: configs, profiles and seeded streams on disk."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import yaml

from driftd.cli import main
from driftd.demo.credit import generate

CREDIT_FEATURES: dict[str, dict[str, Any]] = {
    "income": {"kind": "numeric", "test": "ks", "threshold": 0.001},
    "age": {"kind": "numeric", "test": "ks", "threshold": 0.001},
    "debt_ratio": {"kind": "numeric", "test": "ks", "threshold": 0.001},
    "region": {"kind": "categorical", "test": "chi2", "threshold": 0.001},
    "employment": {"kind": "categorical", "test": "chi2", "threshold": 0.001},
}


def credit_config(
    tmp: Path,
    *,
    profile: Path,
    bootstrap: str = "127.0.0.1:9",
    topic: str = "predictions",
    group: str = "driftd-test",
    webhook_url: str | None = None,
    window: dict[str, Any] | None = None,
    policy: dict[str, Any] | None = None,
    prediction: dict[str, Any] | None = None,
    features: dict[str, dict[str, Any]] | None = None,
    listen: str = "127.0.0.1:0",
) -> Path:
    mon: dict[str, Any] = {
        "name": "credit",
        "model": "credit-scoring",
        "reference": {"type": "profile", "path": str(profile)},
        "window": window or {"type": "sliding", "events": 2000, "step": 500},
        "features": features or CREDIT_FEATURES,
        "prediction": prediction or {"kind": "numeric", "test": "psi", "threshold": 0.2},
        "policy": policy or {"min_events": 1000, "consecutive": 2, "cooldown_s": 0},
    }
    cfg: dict[str, Any] = {
        "kafka": {
            "bootstrap_servers": [bootstrap],
            "topics": [topic],
            "group_id": group,
            "poll_timeout_ms": 100,
        },
        "monitors": [mon],
        "http": {"listen": listen},
        "state": {"dir": str(tmp / "state"), "checkpoint_interval_s": 1},
    }
    if webhook_url is not None:
        mon["actions"] = ["rollback"]
        cfg["actions"] = {
            "rollback": {
                "type": "webhook",
                "url": webhook_url,
                "secret": {"env": "DRIFTD_TEST_SECRET"},
                "backoff_initial_s": 0.05,
                "backoff_max_s": 0.5,
            }
        }
    p = tmp / "driftd.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def write_lines(path: Path, lines: Iterable[bytes]) -> Path:
    with open(path, "wb") as fh:
        for line in lines:
            fh.write(line + b"\n")
    return path


def build_credit_profile(tmp: Path, events: int = 20_000, seed: int = 1) -> Path:
    """Reference profile from seeded v1 traffic, built through the CLI."""
    ref = write_lines(tmp / "reference.jsonl", generate(events, version="v1", seed=seed))
    boot = tmp / "boot.yaml"
    credit_config(tmp, profile=tmp / "unused.json").rename(boot)
    out = tmp / "credit-profile.json"
    assert (
        main(
            [
                "profile",
                "build",
                "-c",
                str(boot),
                "--monitor",
                "credit",
                "--input",
                str(ref),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    return out


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
