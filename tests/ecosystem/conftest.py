"""Fixtures for the ecosystem tests: a live driftd HTTP listener over a populated engine.

The engine is fed real seeded events through ``Pipeline.process`` — v1 of the credit-scoring
model (clean), then v2 (scores shifted: drift detected, alert open), plus a few events that
are rejected — and the metrics registry gets a real dry-run ``WebhookAction`` that has
handled the alert, so every metric family driftd exports has samples. Tests talk to it over
real HTTP, the way Prometheus, Argo Rollouts and Flagger do.

``promtool`` comes from Debian's ``prometheus`` package (``.ci/run`` installs it). Tests that
need it fail when it is missing: a skipped promtool check is a missing check.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from driftd_testutil import build_credit_profile, credit_config
from ecosystem_support import REPO, Live, http
from prometheus_client.parser import text_string_to_metric_families

from driftd.actions.webhook import WebhookAction
from driftd.config import load_config
from driftd.demo.credit import generate
from driftd.metrics import build_registry
from driftd.monitor.outputs import webhook_payload
from driftd.runtime.http import HttpServer
from driftd.runtime.pipeline import Pipeline
from driftd.types import RawRecord


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("ecosystem")
    profile = build_credit_profile(tmp)
    cfg_path = credit_config(tmp, profile=profile)
    data = yaml.safe_load(cfg_path.read_text())
    data["monitors"][0]["detectors"] = [{"type": "adwin", "signal": "prediction"}]
    cfg_path.write_text(yaml.safe_dump(data))
    cfg = load_config(cfg_path, environ={})
    engine = Pipeline(cfg)
    lines = list(generate(3000, version="v1", seed=21)) + list(
        generate(3000, version="v2", seed=22, score_shift=1.5)
    )
    # rejected on purpose, so driftd_events_rejected_total has samples
    lines[10:10] = [b"{broken", b"[1, 2]", b'{"model": "fraud", "model_version": "v1"}']
    records = [RawRecord(v, i + 1, None) for i, v in enumerate(lines)]
    outputs = []
    for i in range(0, len(records), 700):
        outputs.extend(engine.process(records[i : i + 700]))
    alerts = [o for o in outputs if o["type"] == "alert"]
    assert alerts, "the seeded v2 stream must raise drift.detected"

    action = WebhookAction(
        name="rollback",
        url="http://127.0.0.1:9/rollback",  # never contacted: dry run
        secret=b"ecosystem-secret",
        outbox_dir=tmp / "outbox",
        dry_run=True,
    )
    payloads = tuple(webhook_payload(a) for a in alerts)
    action.start()
    for payload in payloads:
        assert action.submit(payload)
    assert action.flush(10)
    action.stop()

    lag = {("predictions", 0): 42}
    registry = build_registry(engine.status, {"rollback": action}, lambda: lag)
    server = HttpServer("127.0.0.1", 0, engine.status, registry, lambda: (True, "consuming"))
    server.start()
    try:
        yield Live(engine, server, action, payloads)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def scrape(live: Live) -> str:
    """The /metrics exposition, fetched over HTTP like Prometheus does."""
    status, body = http(live.base + "/metrics")
    assert status == 200
    return body.decode()


@pytest.fixture(scope="session")
def exported_names(scrape: str) -> frozenset[str]:
    """Every series name a PromQL query can select from driftd (sample names: counters with
    ``_total``, histograms as ``_bucket`` / ``_sum`` / ``_count``)."""
    names = {s.name for fam in text_string_to_metric_families(scrape) for s in fam.samples}
    assert names, "empty scrape"
    return frozenset(names)
