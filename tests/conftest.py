"""Shared pytest fixtures for the driftd test-suite.

Sections:
  1. Kafka: a real single-node KRaft broker (``scripts/kafka/kafka.sh``,
     helpers in ``tests/kafka_harness.py``).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

# Test helper modules (kafka_harness, ...) are imported as top-level modules,
# also if tests/ ever becomes a package.
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

if TYPE_CHECKING:
    from kafka_harness import KafkaBroker

# =========================================================================== 1. Kafka
#
# * ``kafka_bootstrap`` (session): "host:port". Uses $KAFKA_BOOTSTRAP_SERVERS if
#   set, otherwise lazily starts ONE broker for the session (only when some test
#   asks for it) and stops it at session end. Its state dir (data, config, broker
#   log ``kafka-<port>.log``) is under pytest's basetemp (``.../kafka0``).
# * ``kafka_topic`` (function): fresh 1-partition topic name.
# * ``make_topic`` (function): factory ``make_topic(partitions=N, configs=None)``.
# * ``private_kafka_broker`` (function): a dedicated, started ``KafkaBroker``
#   the test may stop / kill9 / restart without disturbing the shared one.
#
# Tests using any of these (directly or via other fixtures) MUST be marked
# ``@pytest.mark.kafka`` (checked at collection). Kafka tests are never
# skipped: if the broker cannot be started they fail/error loudly. Deselect
# them explicitly with ``-m "not kafka"``.

# kafka-python 3.0.x loads its protocol schemas with the legacy
# importlib.resources.read_text/open_text API (deprecated on 3.11, un-deprecated
# on 3.13); with filterwarnings=error every test importing `kafka` would break.
KAFKA_WARNING_FILTERS = (
    r"ignore:(read_text|open_text) is deprecated\. Use files\(\) instead:DeprecationWarning",
)

KAFKA_FIXTURES = frozenset({"kafka_bootstrap", "kafka_topic", "make_topic", "private_kafka_broker"})


def pytest_configure(config: pytest.Config) -> None:
    for line in KAFKA_WARNING_FILTERS:
        config.addinivalue_line("filterwarnings", line)
    # Importing the harness patches a kafka-python socket leak (see
    # kafka_harness.apply_kafka_python_workarounds) for every test, not only
    # the ones that use the fixtures below.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "(read_text|open_text) is deprecated", DeprecationWarning)
        import kafka_harness  # noqa: F401


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    offenders = [
        item.nodeid
        for item in items
        if KAFKA_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        and item.get_closest_marker("kafka") is None
    ]
    if offenders:
        raise pytest.UsageError(
            "tests using Kafka fixtures must be marked @pytest.mark.kafka:\n  "
            + "\n  ".join(offenders)
        )


def _require_kafka_marker(request: pytest.FixtureRequest) -> None:
    # For function-scoped fixtures pulled in via request.getfixturevalue(), which
    # the collection-time check cannot see.
    node = request.node
    if isinstance(node, pytest.Item) and node.get_closest_marker("kafka") is None:
        pytest.fail(f"{node.nodeid} uses a Kafka fixture but is not marked @pytest.mark.kafka")


def _start_or_fail(broker: KafkaBroker, error: type[Exception], what: str) -> None:
    try:
        broker.start()
    except error as e:
        failure = str(e)
    else:
        return
    pytest.fail(f"could not start {what}:\n{failure}", pytrace=False)


def _kafka_state_dir(tmp_path_factory: pytest.TempPathFactory, name: str) -> str:
    return str(tmp_path_factory.mktemp(name, numbered=True))


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap servers ("127.0.0.1:port") of the session's Kafka broker."""
    from kafka_harness import KafkaBroker, KafkaHarnessError, check_bootstrap

    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if external:
        try:
            check_bootstrap(external)
        except Exception as e:  # whatever went wrong: report it loudly
            pytest.fail(f"KAFKA_BOOTSTRAP_SERVERS={external!r} is unusable: {e!r}", pytrace=False)
        yield external
        return

    broker = KafkaBroker(state_dir=_kafka_state_dir(tmp_path_factory, "kafka"))
    _start_or_fail(broker, KafkaHarnessError, "the session Kafka broker")
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


def _topic_prefix(request: pytest.FixtureRequest) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name).strip("-.")
    return (name or "t")[:80]


@pytest.fixture
def make_topic(request: pytest.FixtureRequest, kafka_bootstrap: str) -> Callable[..., str]:
    """Factory: ``make_topic(partitions=1, configs=None, prefix=None) -> name``."""
    from kafka_harness import create_topic, unique_topic

    _require_kafka_marker(request)

    def _make(
        partitions: int = 1, configs: dict[str, str] | None = None, prefix: str | None = None
    ) -> str:
        name = unique_topic(prefix or _topic_prefix(request))
        return create_topic(kafka_bootstrap, name, partitions, configs=configs)

    return _make


@pytest.fixture
def kafka_topic(make_topic: Callable[..., str]) -> str:
    """A freshly created, empty 1-partition topic (unique name)."""
    return make_topic(1)


@pytest.fixture
def private_kafka_broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KafkaBroker]:
    """A dedicated broker (own port/data) for fault tests; stopped afterwards."""
    from kafka_harness import KafkaBroker, KafkaHarnessError

    _require_kafka_marker(request)
    broker = KafkaBroker(state_dir=_kafka_state_dir(tmp_path_factory, "kafka-private"))
    _start_or_fail(broker, KafkaHarnessError, "a private Kafka broker")
    try:
        yield broker
    finally:
        broker.stop()


# --------------------------------------------------------------------------- driftd processes


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the item (``item.rep_call``) for fixtures' teardown."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


LOG_TAIL_LINES = 60


@pytest.fixture
def driftd_proc(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Start `driftd run` processes (``start(cfg, *extra_args, port=None)``); all are killed at
    the end of the test. With ``--workers N`` the port is one whose next N-1 are free too.
    When the test failed, the tail of each process's log is printed (CI keeps only stdout)."""
    from driftd_testutil import Driftd, free_port

    procs: list[Driftd] = []

    def start(cfg: Path, *extra: str, port: int | None = None) -> Driftd:
        n = int(extra[extra.index("--workers") + 1]) if "--workers" in extra else 1
        d = Driftd(cfg, port or free_port(n), tmp_path / f"driftd-{len(procs)}.log", extra)
        procs.append(d)
        return d

    yield start
    for d in procs:
        d.kill()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        for d in procs:
            tail = d.log_text().splitlines()[-LOG_TAIL_LINES:]
            print(f"\n----- last {len(tail)} lines of {d.log.name} -----", *tail, sep="\n")


@pytest.fixture(autouse=True)
def _driftd_log_level() -> Iterator[None]:
    """Benchmarks run in process by smoke tests quiet the ``driftd`` logger; later tests that
    read log lines must not inherit that."""
    logger = logging.getLogger("driftd")
    level = logger.level
    yield
    logger.setLevel(level)
