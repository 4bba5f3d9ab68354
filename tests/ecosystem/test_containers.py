"""Containers without a Docker engine: docker-compose.yml is valid against the Compose
Specification schema and hangs together (files, images, ports, service wiring, driftd's
effective config); the Dockerfile has the promised shape, its healthcheck command works against
a live driftd, and its numba warm-up fills NUMBA_CACHE_DIR.

The schema is the Compose Specification's ``compose-spec.json`` as vendored (with its
Apache-2.0 licence) by the ``check-jsonschema`` package, a test dependency.
"""

from __future__ import annotations

import base64
import fnmatch
import importlib.resources
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from ecosystem_support import Live

from driftd.cli import build_parser
from driftd.config import ProfileReference, load_config

COMPOSE = Path("docker-compose.yml")


# -- helpers ----------------------------------------------------------------------------------


def compose_schema() -> dict[str, Any]:
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads(vendor.joinpath("compose-spec.json").read_text(encoding="utf-8"))
    assert schema.get("title") == "Compose Specification"
    assert vendor.joinpath("licenses", "LICENSE.compose-spec").is_file()
    return dict(schema)


def schema_errors(doc: Any) -> list[str]:
    schema = compose_schema()
    validator_cls = jsonschema.validators.validator_for(schema)
    validator_cls.check_schema(schema)
    validator = validator_cls(schema)
    return [
        f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message}"
        for e in validator.iter_errors(doc)
    ]


def interpolate(value: str, environ: dict[str, str]) -> str:
    """Compose's ``${VAR}`` / ``${VAR:-default}`` / ``${VAR-default}`` interpolation."""

    def sub(m: re.Match[str]) -> str:
        name, op, default = m["name"], m["op"], m["default"] or ""
        if op == ":-":
            return environ.get(name) or default
        if op == "-":
            return environ.get(name, default)
        return environ.get(name, "")

    return re.sub(r"\$\{(?P<name>\w+)(?:(?P<op>:?-)(?P<default>[^}]*))?\}", sub, value)


def service_env(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: interpolate(str(v), {}) for k, v in env.items()}


def host_mounts(svc: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of bind mounts given as relative host paths."""
    out = []
    for v in svc.get("volumes", []):
        if isinstance(v, str):
            source, target = v.split(":")[:2]
        else:
            source, target = v.get("source", ""), v["target"]
        if source.startswith((".", "/")):
            out.append((source, target))
    return out


def container_path_to_repo(svc: dict[str, Any], container_path: str, repo: Path) -> Path | None:
    """The repo file a container path comes from, through the service's bind mounts."""
    for source, target in host_mounts(svc):
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            return (repo / source / os.path.relpath(container_path, target)).resolve()
    return None


def arg_after(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


@pytest.fixture(scope="module")
def compose(repo: Path) -> dict[str, Any]:
    doc = yaml.safe_load((repo / COMPOSE).read_text())
    assert isinstance(doc, dict)
    return doc


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


# -- compose: schema --------------------------------------------------------------------------


def test_compose_file_is_valid_against_the_compose_spec(compose: dict[str, Any]) -> None:
    assert schema_errors(compose) == []


def test_schema_validation_is_not_vacuous(compose: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(compose))
    broken["services"]["driftd"]["ports"] = [{"published": "9108", "target": "not-a-port"}]
    broken["services"]["kafka"]["restart_policy"] = "always"  # no such key
    broken["services"]["grafana"]["depends_on"] = {"prometheus": {"condition": "healthy"}}
    errors = schema_errors(broken)
    assert len(errors) >= 3, errors


# -- compose: the story hangs together ----------------------------------------------------------


def test_every_service_has_an_image_or_a_build(
    services: dict[str, dict[str, Any]], repo: Path
) -> None:
    expected = {
        "kafka", "kafka-init", "profile-builder", "driftd", "sink", "producer",
        "prometheus", "alertmanager", "grafana",
    }  # fmt: skip
    assert set(services) == expected
    for name, svc in services.items():
        assert "image" in svc or "build" in svc, name
        image = svc.get("image", "")
        if "build" in svc:
            build = svc["build"]
            context = repo / (build if isinstance(build, str) else build.get("context", "."))
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile")
            assert (context / (dockerfile or "Dockerfile")).is_file(), name
        else:
            # third-party images are pinned, never :latest
            assert re.fullmatch(r"[\w./-]+:[\w.-]+", image) and not image.endswith(":latest")
    assert services["kafka"]["image"] == "apache/kafka:4.1.1"
    assert services["kafka-init"]["image"] == "apache/kafka:4.1.1"
    for name in ("profile-builder", "driftd", "sink", "producer"):
        assert services[name]["image"] == "driftd:local" and "build" in services[name], name


def test_every_bind_mounted_file_exists(services: dict[str, dict[str, Any]], repo: Path) -> None:
    mounts = [(n, s, t) for n, svc in services.items() for s, t in host_mounts(svc)]
    assert mounts
    for name, source, _ in mounts:
        assert (repo / source).exists(), f"{name}: {source} does not exist"


def test_named_volumes_are_declared(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    declared = set(compose.get("volumes") or {})
    for name, svc in services.items():
        for v in svc.get("volumes", []):
            source = v.split(":")[0] if isinstance(v, str) else v.get("source", "")
            if source and not source.startswith((".", "/")):
                assert source in declared, f"{name}: volume {source} is not declared"


def test_host_ports_do_not_clash(services: dict[str, dict[str, Any]]) -> None:
    published: dict[str, str] = {}
    for name, svc in services.items():
        for p in svc.get("ports", []):
            host = str(p).rsplit(":", 1)[0] if isinstance(p, str) else str(p["published"])
            assert host not in published, f"{name} and {published.get(host)} both publish {host}"
            published[host] = name
    assert published == {
        "9094": "kafka", "9108": "driftd", "9090": "prometheus",
        "9093": "alertmanager", "3000": "grafana",
    }  # fmt: skip


def test_dependencies_and_one_shots(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        deps = svc.get("depends_on", {})
        for dep, cond in deps.items() if isinstance(deps, dict) else ((d, {}) for d in deps):
            assert dep in services, f"{name} depends on unknown {dep}"
            if cond.get("condition") == "service_completed_successfully":
                assert services[dep].get("restart") == "no", f"{dep} must be a one-shot"
            if cond.get("condition") == "service_healthy":
                hc = services[dep].get("healthcheck", {})
                assert not hc.get("disable"), f"{dep} has no healthcheck to wait for"
        mode = svc.get("network_mode", "")
        if mode.startswith("service:"):
            assert mode.split(":", 1)[1] in services
    assert services["driftd"]["depends_on"]["profile-builder"]["condition"] == (
        "service_completed_successfully"
    )


def test_kafka_is_a_single_kraft_node(services: dict[str, dict[str, Any]]) -> None:
    env = service_env(services["kafka"])
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node = env["KAFKA_NODE_ID"]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{node}@kafka:9093"
    listeners = dict(x.split("://") for x in env["KAFKA_LISTENERS"].split(","))
    advertised = dict(x.split("://") for x in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    protocols = dict(x.split(":") for x in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(listeners) == set(protocols)
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in listeners
    assert advertised["PLAINTEXT"] == "kafka:9092"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    # Kafka's cluster id format: 16 bytes, base64url without padding
    cid = env["CLUSTER_ID"]
    assert len(cid) == 22 and len(base64.urlsafe_b64decode(cid + "==")) == 16


def test_driftd_effective_config(services: dict[str, dict[str, Any]], repo: Path) -> None:
    driftd = services["driftd"]
    argv = driftd["command"]
    config = container_path_to_repo(driftd, arg_after(argv, "-c"), repo)
    assert config is not None and config.is_file()
    env = service_env(driftd)
    # what driftd itself will see: the mounted file plus the DRIFTD_* overrides, validated
    cfg = load_config(config, environ=env)
    assert cfg.kafka.bootstrap_servers == ["kafka:9092"]
    assert cfg.http.host_port == ("0.0.0.0", 9108)
    # the profile driftd reads is the one the profile builder writes, on the shared volume
    builder = services["profile-builder"]
    build_cmd = shlex.split(builder["command"][0])
    reference = cfg.monitors[0].reference
    assert isinstance(reference, ProfileReference)
    assert str(reference.path) == arg_after(build_cmd, "--out")
    assert arg_after(build_cmd, "--monitor") == cfg.monitors[0].name
    shared = {v for v in driftd["volumes"] if isinstance(v, str) and not v.startswith(".")}
    assert shared and shared <= set(builder["volumes"])
    assert str(cfg.state.dir).startswith("/var/lib/driftd/")
    # the webhook goes to the sink, which shares driftd's network namespace
    url = urlsplit(cfg.actions["rollback"].url)
    sink = services["sink"]
    assert sink["network_mode"] == "service:driftd"
    assert (url.hostname, str(url.port)) == ("127.0.0.1", arg_after(sink["command"], "--port"))
    secret_env = arg_after(sink["command"], "--secret-env")
    assert service_env(sink)[secret_env] == env[secret_env]
    assert cfg.actions["rollback"].secret is not None
    assert cfg.actions["rollback"].secret.env == secret_env
    # the producer writes where driftd reads, and the topic exists
    producer = services["producer"]["command"]
    assert arg_after(producer, "--bootstrap") == "kafka:9092"
    assert [arg_after(producer, "--topic")] == cfg.kafka.topics
    assert arg_after(services["kafka-init"]["command"], "--topic") == cfg.kafka.topics[0]


def test_driftd_command_lines_parse(services: dict[str, dict[str, Any]]) -> None:
    # what the image's ENTRYPOINT ["driftd"] receives, through driftd's own argument parser
    args = build_parser().parse_args(services["driftd"]["command"])
    assert args.command == "run" and args.log_format == "json"
    shell = services["profile-builder"]["command"][0]
    build = shlex.split(shell.split("&&")[1])
    assert build[0] == "driftd"
    args = build_parser().parse_args(build[1:])
    assert (args.command, args.profile_command) == ("profile", "build")
    demo_data = shlex.split(shell.split("&&")[0])
    assert demo_data[:3] == ["python", "-m", "driftd.demo.credit"]
    # the demo programs' flags exist (their argparse definitions name them)
    uses = [
        ("driftd.demo.sink", services["sink"]["command"]),
        ("driftd.demo.producer", services["producer"]["command"]),
        ("driftd.demo.credit", demo_data[3:]),
    ]
    for module, argv in uses:
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin is not None
        source = Path(spec.origin).read_text()
        for flag in (a for a in argv if a.startswith("--")):
            assert f'"{flag}"' in source, f"{module} has no option {flag}"
    assert services["sink"]["entrypoint"] == ["python", "-m", "driftd.demo.sink"]
    assert services["producer"]["entrypoint"] == ["python", "-m", "driftd.demo.producer"]


def test_prometheus_alertmanager_grafana_wiring(
    services: dict[str, dict[str, Any]], repo: Path
) -> None:
    prom = services["prometheus"]
    prom_config = container_path_to_repo(prom, arg_after_eq(prom["command"], "--config.file"), repo)
    assert prom_config == (repo / "config/prometheus/prometheus.yml").resolve()
    pcfg = yaml.safe_load(prom_config.read_text())
    for rule_file in pcfg["rule_files"]:
        assert (prom_config.parent / rule_file).is_file()
    targets = {j["job_name"]: j["static_configs"][0]["targets"] for j in pcfg["scrape_configs"]}
    assert targets["driftd"] == ["driftd:9108"]
    am = pcfg["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert am == ["alertmanager:9093"]

    alertmanager = services["alertmanager"]
    am_config = container_path_to_repo(
        alertmanager, arg_after_eq(alertmanager["command"], "--config.file"), repo
    )
    assert am_config is not None and am_config.is_file()
    amcfg = yaml.safe_load(am_config.read_text())
    receivers = {r["name"] for r in amcfg["receivers"]}
    assert amcfg["route"]["receiver"] in receivers
    assert all(r["receiver"] in receivers for r in amcfg["route"].get("routes", []))

    grafana = services["grafana"]
    ds_dir = container_path_to_repo(grafana, "/etc/grafana/provisioning/datasources", repo)
    db_dir = container_path_to_repo(grafana, "/etc/grafana/provisioning/dashboards", repo)
    assert ds_dir is not None and db_dir is not None
    datasources = [d for f in sorted(ds_dir.glob("*.yml"))
                   for d in yaml.safe_load(f.read_text())["datasources"]]  # fmt: skip
    prom_ds = next(d for d in datasources if d["type"] == "prometheus")
    assert urlsplit(prom_ds["url"]).hostname == "prometheus"
    providers = [p for f in sorted(db_dir.glob("*.yml"))
                 for p in yaml.safe_load(f.read_text())["providers"]]  # fmt: skip
    dash_dir = providers[0]["options"]["path"]
    dashboards = [
        container_path_to_repo(grafana, t, repo)
        for _, t in host_mounts(grafana)
        if t.startswith(dash_dir.rstrip("/") + "/") and t.endswith(".json")
    ]
    assert dashboards == [(repo / "config/grafana/driftd-dashboard.json").resolve()]
    dash = json.loads((repo / "config/grafana/driftd-dashboard.json").read_text())
    ds_var = next(v for v in dash["templating"]["list"] if v["type"] == "datasource")
    assert ds_var["current"]["value"] == prom_ds["uid"]
    home = service_env(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert container_path_to_repo(grafana, home, repo) == dashboards[0]


def arg_after_eq(argv: list[str], flag: str) -> str:
    return next(a.split("=", 1)[1] for a in argv if a.startswith(flag + "="))


# -- Dockerfile -------------------------------------------------------------------------------


def dockerfile_instructions(repo: Path) -> list[tuple[str, str]]:
    text = (repo / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)  # line continuations
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        op, _, rest = line.partition(" ")
        out.append((op.upper(), rest.strip()))
    return out


def test_dockerfile_shape(repo: Path) -> None:
    ins = dockerfile_instructions(repo)
    args = {k: v for op, rest in ins if op == "ARG" for k, _, v in [rest.partition("=")]}
    froms = [re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], rest) for op, rest in ins if op == "FROM"]
    assert froms == ["python:3.11-slim AS builder", "python:3.11-slim AS runtime"]
    runtime = ins[max(i for i, (op, _) in enumerate(ins) if op == "FROM") :]
    ops = [op for op, _ in runtime]
    # the runtime stage takes the virtualenv from the builder, nothing else
    copies = [rest for op, rest in runtime if op == "COPY"]
    assert copies == ["--from=builder /opt/driftd /opt/driftd"]
    users = [rest for op, rest in runtime if op == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    env = " ".join(rest for op, rest in runtime if op == "ENV")
    assert "NUMBA_CACHE_DIR=" in env
    warm = [i for i, (op, rest) in enumerate(runtime) if op == "RUN" and "warm_up()" in rest]
    assert len(warm) == 1
    # warmed after NUMBA_CACHE_DIR is set and as the runtime user, so the cache is usable
    assert ops.index("ENV") < warm[0] and ops.index("USER") < warm[0]
    assert dict(runtime)["ENTRYPOINT"] == '["driftd"]'
    assert "/healthz" in dict(runtime)["HEALTHCHECK"]


def _ignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    for pat in patterns:
        negate = pat.startswith("!")
        pat = pat.lstrip("!").strip("/")
        parts = Path(path).parts
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, pat) or fnmatch.fnmatch(p, "*/" + pat.removeprefix("**/"))
               for p in prefixes):  # fmt: skip
            ignored = not negate
    return ignored


def test_build_context_keeps_what_the_dockerfile_copies(repo: Path) -> None:
    patterns = [
        line.strip()
        for line in (repo / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = [
        s
        for op, rest in dockerfile_instructions(repo)
        if op == "COPY" and not rest.startswith("--from")
        for s in rest.split()[:-1]
    ]
    assert sources
    for s in sources:
        assert (repo / s).exists(), s
        assert not _ignored(s, patterns), f"{s} is copied but excluded by .dockerignore"
    # the package's sources (and the readme pyproject.toml names) reach the builder
    for py in (repo / "driftd").rglob("*.py"):
        assert not _ignored(str(py.relative_to(repo)), patterns), py
    assert _ignored(".venv/bin/python", patterns) and _ignored("tests/conftest.py", patterns)
    assert _ignored("driftd/kernels/__pycache__/x.nbi", patterns)


def _healthcheck_argv(repo: Path) -> list[str]:
    rest = dict(dockerfile_instructions(repo))["HEALTHCHECK"]
    argv = json.loads(rest[rest.index("CMD") + 3 :].strip())
    assert argv[0] == "python"
    return [sys.executable, *argv[1:]]


def test_healthcheck_command_against_live_driftd(repo: Path, live: Live) -> None:
    argv = _healthcheck_argv(repo)
    ok = subprocess.run(
        argv, env={**os.environ, "DRIFTD_HEALTHCHECK_URL": live.base + "/healthz"}, timeout=30,
        capture_output=True,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    # nothing listening: unhealthy
    bad = subprocess.run(
        argv, env={**os.environ, "DRIFTD_HEALTHCHECK_URL": "http://127.0.0.1:9/healthz"},
        timeout=30, capture_output=True,
    )  # fmt: skip
    assert bad.returncode != 0


@pytest.mark.slow
def test_warm_up_fills_numba_cache_dir(repo: Path, tmp_path: Path) -> None:
    run = next(rest for op, rest in dockerfile_instructions(repo) if "warm_up()" in rest)
    argv = shlex.split(run)
    assert argv[:2] == ["python", "-c"]
    cache = tmp_path / "numba"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    env.pop("NUMBA_DISABLE_JIT", None)
    res = subprocess.run(
        [sys.executable, *argv[1:]], env=env, cwd=tmp_path, timeout=300, capture_output=True
    )
    assert res.returncode == 0, res.stderr.decode()
    index = list(cache.rglob("*.nbi"))
    modules = {p.name.split(".")[0] for p in index}
    assert {"binning", "twosample", "divergence", "special", "ring"} <= modules, sorted(modules)
    assert list(cache.rglob("*.nbc"))
