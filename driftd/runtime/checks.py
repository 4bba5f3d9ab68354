"""Everything ``driftd run`` checks before it connects, as one list of problems.

``driftd check-config`` and ``driftd run`` call the same :func:`problems`, so a config that
passes the first never crash-loops in the second, and both name the same key for the same
mistake. Every problem is reported, not only the first. :func:`connect_problems` goes further
(``check-config --connect``): the brokers answer, the topics exist (partition counts), and
every webhook host resolves.
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from driftd.actions import REGISTRY
from driftd.config import Config, DeadLetterFile, ProfileReference, WebhookActionConfig
from driftd.errors import ConfigError
from driftd.monitor import detect, refmodes
from driftd.monitor.spec import build_spec
from driftd.reference.profile import load_profile_for


def problems(cfg: Config) -> list[ConfigError]:
    """Every problem ``driftd run`` would stop at before connecting, each naming its key."""
    out: list[ConfigError] = []
    for i, m in enumerate(cfg.monitors):
        try:
            if m.detectors:
                detect.validate(m, i)
            ref = m.reference
            if isinstance(ref, ProfileReference):
                profile = load_profile_for(m, ref.path, f"monitors.{i}.reference.path")
                build_spec(m, profile, i, allow_calibration=False)
            else:
                refmodes.layout_spec(m, i)
        except ConfigError as exc:
            out.append(exc)
    with tempfile.TemporaryDirectory(prefix="driftd-check-") as tmp:
        for name, a in cfg.actions.items():
            assert isinstance(a, WebhookActionConfig)
            try:
                REGISTRY[a.type](name, a, Path(tmp) / name)  # secrets, TLS files, URL
            except ConfigError as exc:
                out.append(exc)
    if cfg.http.token is not None:
        try:
            cfg.http.token.resolve("http.token")
        except ConfigError as exc:
            out.append(exc)
    try:
        _writable_dir(cfg.state.dir, "state.dir")
    except ConfigError as exc:
        out.append(exc)
    if isinstance(cfg.dead_letter, DeadLetterFile):
        try:
            _writable_dir(cfg.dead_letter.path.parent, "dead_letter.path")
        except ConfigError as exc:
            out.append(exc)
    return out


def _writable_dir(path: Path, key: str) -> None:
    """``path`` can be created (its nearest existing ancestor is a writable directory) or is a
    writable directory — checked without creating anything."""
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    if not p.is_dir():
        raise ConfigError(key, f"{path} is not writable: {p} is not a directory")
    if not os.access(p, os.W_OK | os.X_OK):
        raise ConfigError(key, f"{path} is not writable ({p})")


def connect_problems(cfg: Config, timeout_s: float = 10.0) -> tuple[list[ConfigError], list[str]]:
    """(problems, notes) of the brokers, topics and webhook hosts, reached for real."""
    out: list[ConfigError] = []
    notes: list[str] = []
    try:
        from kafka import KafkaConsumer

        from driftd.sources.kafka import consumer_settings

        settings = consumer_settings(cfg.kafka)
        settings.pop("group_id", None)
        consumer = KafkaConsumer(**settings, request_timeout_ms=int(timeout_s * 1000))
        counts: dict[str, int] = {}
        try:
            for key, topics in (("kafka.topics", cfg.kafka.topics),
                                ("kafka.label_topics", cfg.kafka.label_topics)):  # fmt: skip
                for j, t in enumerate(topics):
                    parts = consumer.partitions_for_topic(t)
                    if not parts:
                        out.append(ConfigError(f"{key}.{j}", f"topic {t!r} does not exist"))
                    else:
                        counts[t] = len(parts)
                        notes.append(f"topic {t}: {len(parts)} partitions")
            if cfg.scale_out.enabled:
                out += _scale_out_problems(cfg, consumer, counts)
        finally:
            consumer.close()
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - any client failure is "cannot connect"
        out.append(
            ConfigError(
                "kafka.bootstrap_servers",
                f"cannot reach {','.join(cfg.kafka.bootstrap_servers)}: {exc}",
            )
        )
    for name, a in cfg.actions.items():
        assert isinstance(a, WebhookActionConfig)
        host = urlsplit(a.url).hostname or ""
        try:
            socket.getaddrinfo(host, None)
            notes.append(f"webhook {name}: {host} resolves")
        except OSError as exc:
            out.append(ConfigError(f"actions.{name}.url", f"host {host!r} does not resolve: {exc}"))
    return out, notes


def _scale_out_problems(cfg: Config, consumer: Any, counts: dict[str, int]) -> list[ConfigError]:
    """What ``driftd run`` in scale-out would refuse at start: label topics not co-partitioned
    with the prediction topics, internal topics with another partition count."""
    from driftd.runtime.scaleout import copartition_problem, topic_names

    out: list[ConfigError] = []
    if cfg.kafka.label_topics and counts:
        problem = copartition_problem(counts)
        if problem is not None:
            out.append(problem)
    panes, state, _ = topic_names(cfg)
    for t in (panes, state):
        parts = consumer.partitions_for_topic(t)
        if parts and len(parts) != cfg.scale_out.partitions:
            out.append(ConfigError(
                "scale_out.partitions",
                f"internal topic {t} has {len(parts)} partitions, configured"
                f" {cfg.scale_out.partitions}",
            ))  # fmt: skip
    return out
