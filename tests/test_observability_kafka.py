"""A live `driftd run --log-format json` against the real broker, observed as an SRE would:
`promtool check metrics` on its `/metrics` (with the process collectors and the data-quality
gauges in it), an OpenMetrics scrape parsed by prometheus_client's strict parser, and its log
read back as JSON lines with the fields to filter on.

Stream: credit-scoring v1 (clean), then v2 (scores shifted: drift, one alert delivered to a
webhook receiver), in which every 10th event lacks ``income`` — so v2's window has a missing
rate of exactly 10 % for it, and v1's 0.
"""

from __future__ import annotations

import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from driftd_testutil import (
    SECRET,
    Driftd,
    build_credit_profile,
    credit_config,
    free_port,
    http_get,
    wait_until,
)
from kafka_harness import create_topic, produce, unique_topic
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from driftd.demo.credit import generate
from driftd.demo.sink import WebhookSink
from driftd.runtime.console import CONTEXT_FIELDS

pytestmark = pytest.mark.kafka


def get(url: str, headers: dict[str, str]) -> tuple[int, bytes, str]:
    """(status, body, Content-Type) of one GET."""
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as r:
        return int(r.status), bytes(r.read()), str(r.headers["Content-Type"])


def without_income_every_10th(lines: list[bytes]) -> list[bytes]:
    out = []
    for i, line in enumerate(lines):
        if i % 10 == 0:
            event = orjson.loads(line)
            del event["features"]["income"]
            line = orjson.dumps(event)
        out.append(line)
    return out


@dataclass(frozen=True)
class LiveRun:
    topic: str
    text: bytes  # GET /metrics
    openmetrics: bytes  # GET /metrics, Accept: application/openmetrics-text
    content_type: str
    payloads: list[dict[str, Any]]  # webhook deliveries
    log: list[dict[str, Any]]  # every line of the process's output, parsed
    exit_code: int


@pytest.fixture(scope="module")
def live_run(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRun]:
    tmp = tmp_path_factory.mktemp("observability")
    profile = build_credit_profile(tmp)
    topic = create_topic(kafka_bootstrap, unique_topic("observability"), 1)
    events = list(generate(6000, version="v1", seed=31)) + without_income_every_10th(
        list(generate(6000, version="v2", seed=32, score_shift=1.0))
    )
    produce(kafka_bootstrap, topic, events)
    with WebhookSink(SECRET) as sink:
        cfg = credit_config(
            tmp,
            profile=profile,
            bootstrap=kafka_bootstrap,
            topic=topic,
            group=f"obs-{topic}",
            webhook_url=sink.url,
        )
        d = Driftd(cfg, free_port(), tmp / "driftd.log", options=["--log-format", "json"])
        try:
            wait_until(d.ready, 60, "/readyz")

            def v2_evaluated_and_drifted() -> bool:
                view = d.get_json("/api/v1/monitors/credit")
                v2 = view["versions"].get("v2")
                return bool(view["drifted"]) and v2 is not None and v2["window_events"] == 2000

            wait_until(v2_evaluated_and_drifted, 60, "v2 drifted over a full window")
            code, text = http_get(d.base + "/metrics")
            assert code == 200
            accept = {"Accept": "application/openmetrics-text; version=1.0.0"}
            status, om, content_type = get(d.base + "/metrics", accept)
            assert status == 200
            assert sink.wait_for(1, timeout_s=30)
            exit_code = d.terminate()
        finally:
            d.kill()
        payloads = [orjson.loads(r.body) for r in sink.valid_requests]
    lines = [line for line in d.log.read_bytes().splitlines() if line.strip()]
    log = [orjson.loads(line) for line in lines]  # every line is one JSON object
    yield LiveRun(topic, text, om, content_type, payloads, log, exit_code)


def test_promtool_check_metrics_on_a_live_run(live_run: LiveRun) -> None:
    families = {f.name: f for f in text_string_to_metric_families(live_run.text.decode())}
    rss = families["process_resident_memory_bytes"].samples[0].value
    assert rss > 20 * 2**20  # driftd with NumPy, numba and a consumer
    assert families["process_start_time_seconds"].samples[0].value > 1.7e9
    quality = {
        (s.labels["model_version"], s.labels["feature"], s.labels["check"]): s.value
        for s in families["driftd_feature_quality"].samples
    }
    assert quality[("v2", "income", "missing_rate")] == pytest.approx(0.1)
    assert quality[("v1", "income", "missing_rate")] == 0.0
    assert ("v2", "region", "unseen_rate") in quality
    assert ("v2", "prediction", "out_of_range_rate") in quality
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found (Debian's prometheus package; .ci/run installs it)"
    res = subprocess.run(
        [promtool, "check", "metrics"], input=live_run.text, capture_output=True, timeout=60
    )
    assert res.returncode == 0 and res.stdout.strip() == b"" and res.stderr.strip() == b"", (
        f"promtool check metrics complained (exit {res.returncode}):\n{res.stdout!r}{res.stderr!r}"
    )


def test_openmetrics_scrape_of_a_live_run_parses(live_run: LiveRun) -> None:
    assert live_run.content_type.startswith("application/openmetrics-text")
    text = live_run.openmetrics.decode()
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in openmetrics_families(text)}  # strict: raises on any flaw
    assert families["process_resident_memory_bytes"].samples[0].value > 0
    assert families["driftd_feature_quality"].type == "gauge"
    assert families["driftd_events"].type == "counter"
    events = {s.labels["model_version"]: s.value for s in families["driftd_events"].samples}
    assert events == {"v1": 6000, "v2": 6000}


def test_json_log_lines_of_a_live_run(live_run: LiveRun) -> None:
    assert live_run.exit_code == 0
    log = live_run.log
    for d in log:
        assert {"ts", "level", "logger", "msg"} <= set(d)
        assert set(d) <= {"ts", "level", "logger", "msg", "exc", *CONTEXT_FIELDS}
    (payload,) = live_run.payloads
    aid = payload["id"]
    (alert,) = [d for d in log if d["msg"].startswith("drift.detected ")]
    assert alert["level"] == "warning" and alert["alert_id"] == aid
    assert (alert["monitor"], alert["model_version"]) == ("credit", "v2")
    assert f"id={aid}" in alert["msg"]  # the message reads as in text format
    (delivered,) = [d for d in log if "delivered alert" in d["msg"]]
    assert delivered["action"] == "rollback" and delivered["alert_id"] == aid
    assert (delivered["monitor"], delivered["model_version"]) == ("credit", "v2")
    key = f"{live_run.topic}/0"
    (assigned,) = [d for d in log if d["msg"].startswith(f"{key}: not in the checkpoint")]
    assert assigned["partition"] == key
    # lines about the process as a whole carry no context fields
    (listening,) = [d for d in log if d["msg"].startswith("listening on ")]
    assert not set(listening) & set(CONTEXT_FIELDS)
    assert not [d for d in log if d["level"] in ("error", "critical")]
