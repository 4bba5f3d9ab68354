"""Acceptance for delayed-label performance monitoring on the real broker, through
`driftd run` (issue 8).

Predictions of two models go to one topic; their labels (1-60 s of event time after the
prediction, shuffled, so out of order) to a second topic. driftd consumes
the predictions, is stopped (SIGTERM: the pending predictions go into the checkpoint), the
labels are produced, and a new driftd process joins them to the restored pending predictions:
``credit-scoring`` v2, 5 accuracy points worse than v1, raises one signed
``performance.degraded`` webhook naming ``rollback_to: v1``; ``credit-equal`` v2, as accurate
as its v1, is compared at every step and never flagged. Offsets of both topics are committed
in full."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
import yaml
from driftd_testutil import SECRET, Driftd, build_credit_profile, metric_value, wait_until
from kafka_harness import committed_offsets, produce
from perf_workload import BAD_SHIFT, labelled_stream, perf_config

from driftd.actions.signing import verify
from driftd.demo.sink import WebhookSink

N = 4000  # predictions per version


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_credit_profile(tmp_path_factory.mktemp("perf-kafka-profile"))


@pytest.mark.kafka
@pytest.mark.parametrize("source", ["kafka", "confluent"])
def test_worse_version_flagged_equal_version_not_across_restart(
    source: str,
    tmp_path: Path,
    profile: Path,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    driftd_proc: Callable[..., Driftd],
) -> None:
    preds_topic = make_topic(partitions=2, prefix="perf-preds")
    # One label partition: labels are joined in the (shuffled) order they were produced, so
    # the labelled windows, and the verdicts on them, are the same in every run. With two,
    # the fetch interleaving decides which labels fill each window, and the equal version's
    # windows can by chance differ by the 2.5 % per comparison the 95 % interval allows.
    labels_topic = make_topic(partitions=1, prefix="perf-labels")
    group = f"perf-{preds_topic}"
    bad_p, bad_l = labelled_stream(v2_shift=BAD_SHIFT, n=N, n2=N)
    eq_p, eq_l = labelled_stream(v2_shift=0.0, n=N, n2=N, seed=41, model="credit-equal",
                                 id_prefix="eq-")  # fmt: skip
    labels = bad_l + eq_l
    random.Random(7).shuffle(labels)  # out of order
    with WebhookSink(SECRET) as sink:
        cfg = perf_config(
            tmp_path,
            profile=profile,
            second_model="credit-equal",
            label_topic=labels_topic,
            bootstrap=kafka_bootstrap,
            topic=preds_topic,
            group=group,
            webhook_url=sink.url,
        )
        if source != "kafka":  # the label topic through confluent-kafka (librdkafka) as well
            doc = yaml.safe_load(cfg.read_text())
            doc["source"] = {"type": source}
            cfg.write_text(yaml.safe_dump(doc))
        # Producers key predictions by model, so a model's versions meet in one partition.
        produce(kafka_bootstrap, preds_topic, bad_p, key=b"credit-scoring")
        produce(kafka_bootstrap, preds_topic, eq_p, key=b"credit-equal")

        d = driftd_proc(cfg)
        wait_until(d.ready, 60, "/readyz")

        def pending(monitor: str) -> float | None:
            return metric_value(d.metrics(), "driftd_label_pending_predictions", monitor=monitor)

        wait_until(lambda: pending("credit") == 2 * N and pending("credit-eq") == 2 * N, 60,
                   "every prediction waiting for its label")  # fmt: skip
        assert d.terminate() == 0
        assert sum(committed_offsets(kafka_bootstrap, group, preds_topic).values()) == 4 * N

        # The labels arrive while driftd is down; the pending predictions are in its checkpoint.
        produce(kafka_bootstrap, labels_topic, labels)
        d = driftd_proc(cfg)
        wait_until(d.ready, 60, "/readyz after restart")

        def labelled(monitor: str, version: str) -> float | None:
            return metric_value(
                d.metrics(), "driftd_labelled_events_total", monitor=monitor, model_version=version
            )

        wait_until(
            lambda: all(labelled(m, v) == N for m in ("credit", "credit-eq") for v in ("v1", "v2")),
            60,
            "every prediction joined to its label",
        )
        assert sink.wait_for(1, timeout_s=30)
        time.sleep(1.5)  # room for a wrong second delivery
        perf = [orjson.loads(r.body) for r in sink.requests]
        perf = [p for p in perf if p["type"].startswith("performance.")]
        assert len(perf) == 1, perf
        [p] = perf
        req = next(r for r in sink.requests if orjson.loads(r.body)["id"] == p["id"])
        assert verify(SECRET, req.body, req.headers["driftd-signature"])
        assert req.headers["idempotency-key"] == p["id"]
        assert p["type"] == "performance.degraded" and p["monitor"] == "credit"
        assert p["model_version"] == "v2" and p["rollback_to"] == "v1"
        assert p["metric"] == "accuracy" and p["baseline_version"] == "v1"
        assert p["current"] < p["baseline"] - 0.03
        lo, hi = p["ci"]
        assert lo < p["difference"] < hi < 0 and p["level"] == 0.95
        assert p["window"]["labelled_events"] >= 2500  # two consecutive breaching steps

        m = d.metrics()
        assert (
            metric_value(m, "driftd_performance_degraded", monitor="credit", model_version="v2")
            == 1
        )
        assert (
            metric_value(m, "driftd_performance_degraded", monitor="credit-eq", model_version="v2")
            == 0
        )
        for mon in ("credit", "credit-eq"):
            acc = metric_value(
                m, "driftd_performance", monitor=mon, model_version="v2", metric="accuracy"
            )
            assert acc is not None and 0.6 < acc < 0.8
            lag_n = metric_value(m, "driftd_label_lag_seconds_count", monitor=mon)
            lag_sum = metric_value(m, "driftd_label_lag_seconds_sum", monitor=mon)
            assert lag_n == 2 * N and lag_sum is not None and 1 <= lag_sum / lag_n <= 60
            assert metric_value(m, "driftd_label_lag_seconds_bucket", monitor=mon, le="1.0") == 0
            assert metric_value(m, "driftd_labels_total", monitor=mon, outcome="late") == 0
        view = d.get_json("/api/v1/monitors/credit")
        assert view["performance"]["v2"]["degraded"] is True
        assert view["performance"]["v2"]["open_alert_id"] == p["id"]
        assert d.get_json("/api/v1/monitors/credit-eq")["performance"]["v2"]["degraded"] is False
        assert d.terminate() == 0
    assert sum(committed_offsets(kafka_bootstrap, group, labels_topic).values()) == len(labels)
    assert sum(committed_offsets(kafka_bootstrap, group, preds_topic).values()) == 4 * N


@pytest.mark.kafka
def test_kill9_mid_join_counts_every_label_once(
    tmp_path: Path,
    profile: Path,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    driftd_proc: Callable[..., Driftd],
) -> None:
    import threading

    import yaml

    preds_topic = make_topic(partitions=1, prefix="perf9-preds")
    labels_topic = make_topic(partitions=2, prefix="perf9-labels")
    group = f"perf9-{preds_topic}"
    preds, labels = labelled_stream(v2_shift=BAD_SHIFT, n=N, n2=N)
    random.Random(8).shuffle(labels)
    with WebhookSink(SECRET) as sink:
        cfg = perf_config(tmp_path, profile=profile, label_topic=labels_topic,
                          bootstrap=kafka_bootstrap, topic=preds_topic, group=group,
                          webhook_url=sink.url)  # fmt: skip
        doc = yaml.safe_load(cfg.read_text())
        doc["kafka"]["max_poll_records"] = 200  # many small batches and checkpoints
        cfg.write_text(yaml.safe_dump(doc))
        produce(kafka_bootstrap, preds_topic, preds)
        d = driftd_proc(cfg)
        wait_until(d.ready, 60, "/readyz")

        def total(d: Driftd, name: str, **labels: str) -> float:
            return metric_value(d.metrics(), name, **labels) or 0.0

        wait_until(
            lambda: total(d, "driftd_label_pending_predictions", monitor="credit") == 2 * N,
            60,
            "predictions pending",
        )

        def slowly() -> None:  # labels trickle in while driftd runs
            for i in range(0, len(labels), 500):
                produce(kafka_bootstrap, labels_topic, labels[i : i + 500])
                time.sleep(0.3)

        producer = threading.Thread(target=slowly)
        producer.start()
        wait_until(
            lambda: total(d, "driftd_labels_total", monitor="credit", outcome="joined") >= 1500,
            60,
            "some labels joined",
        )
        at_kill = total(d, "driftd_labels_total", monitor="credit", outcome="joined")
        d.kill()  # SIGKILL mid-join: no drain, no final checkpoint
        producer.join(60)
        assert at_kill < 2 * N  # the crash really came in the middle
        d = driftd_proc(cfg)
        wait_until(d.ready, 60, "/readyz after SIGKILL")

        def labelled(version: str) -> float:
            return total(d, "driftd_labelled_events_total", monitor="credit", model_version=version)

        wait_until(lambda: labelled("v1") == N and labelled("v2") == N, 60, "all labels joined")
        time.sleep(1.0)  # nothing is counted twice, later either
        m = d.metrics()
        assert labelled("v1") == N and labelled("v2") == N
        assert metric_value(m, "driftd_labels_total", monitor="credit", outcome="joined") == 2 * N
        assert metric_value(m, "driftd_label_pending_predictions", monitor="credit") == 0
        assert metric_value(m, "driftd_labels_total", monitor="credit", outcome="orphaned") == 0
        assert sink.wait_for(1, timeout_s=30)
        ids = {
            orjson.loads(r.body)["id"]
            for r in sink.requests
            if orjson.loads(r.body)["type"] == "performance.degraded"
        }
        assert len(ids) == 1  # re-raised after the crash at most under the same id
        assert d.terminate() == 0
        assert "restored performance state of credit" in d.log_text()
    assert sum(committed_offsets(kafka_bootstrap, group, labels_topic).values()) == len(labels)
