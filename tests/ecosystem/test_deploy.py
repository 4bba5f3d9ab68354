"""Kubernetes and operator manifests (deploy/kubernetes/), the Flagger MetricTemplate and the
Alertmanager config: valid against the Kubernetes, prometheus-operator and Flagger schemas
(``check-jsonschema`` with the schemas vendored in tests/ecosystem/schemas, see
scripts/vendor_schemas.py), the PrometheusRule generated from the rules file and up to date,
and consistent with the image, the CLI and the alert rules."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from ecosystem_support import run_promtool

from driftd.cli import build_parser
from driftd.config import Config

K8S = Path("deploy/kubernetes")
SCHEMAS = Path(__file__).parent / "schemas"
GEN = Path("scripts/gen_kubernetes.py")
RULES = Path("config/prometheus/driftd-rules.yml")
TEMPLATE = Path("config/flagger/metric-template.yaml")
CANARY = Path("config/flagger/canary.yaml")
ALERTMANAGER = Path("config/alertmanager/alertmanager.yml")

MANIFESTS = {
    K8S / "deployment.yaml": "kubernetes/deployment-apps-v1.json",
    K8S / "service.yaml": "kubernetes/service-v1.json",
    K8S / "pvc.yaml": "kubernetes/persistentvolumeclaim-v1.json",
    K8S / "servicemonitor.yaml": "prometheus-operator/servicemonitor-monitoring-v1.json",
    K8S / "prometheusrule.yaml": "prometheus-operator/prometheusrule-monitoring-v1.json",
    TEMPLATE: "flagger/metrictemplate-flagger-v1beta1.json",
}


def check_jsonschema(schema: str, *files: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("check-jsonschema")
    return subprocess.run(
        [str(exe), "--schemafile", str(SCHEMAS / schema), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def load(repo: Path, path: Path) -> dict[str, Any]:
    doc = yaml.safe_load((repo / path).read_text())
    assert isinstance(doc, dict)
    return doc


def test_every_manifest_is_covered(repo: Path) -> None:
    assert set((repo / K8S).glob("*.yaml")) == {repo / p for p in MANIFESTS if p.parent == K8S}


@pytest.mark.parametrize("path", list(MANIFESTS), ids=lambda p: p.name)
def test_manifest_validates_against_its_schema(repo: Path, path: Path) -> None:
    res = check_jsonschema(MANIFESTS[path], repo / path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "ok -- validation done" in res.stdout


@pytest.mark.parametrize(
    ("path", "break_it"),
    [
        (K8S / "deployment.yaml", lambda d: d["spec"].update(replicas="one")),
        (K8S / "deployment.yaml", lambda d: d["spec"]["template"]["spec"].update(contaners=[])),
        (K8S / "service.yaml", lambda d: d["spec"]["ports"][0].update(port="http")),
        (K8S / "servicemonitor.yaml", lambda d: d["spec"]["endpoints"][0].update(intervall="1m")),
        (
            K8S / "prometheusrule.yaml",
            lambda d: d["spec"]["groups"][0]["rules"][1].update({"for": "5 min"}),
        ),
        (TEMPLATE, lambda d: d["spec"]["provider"].update(type="web")),
    ],
    ids=["replicas", "typo", "port", "sm-typo", "rule-for", "no-web-provider"],
)
def test_schemas_are_not_vacuous(repo: Path, tmp_path: Path, path: Path, break_it: Any) -> None:
    doc = load(repo, path)
    break_it(doc)
    bad = tmp_path / path.name
    bad.write_text(yaml.safe_dump(doc))
    assert check_jsonschema(MANIFESTS[path], bad).returncode == 1


def test_prometheusrule_is_generated_from_the_rules_file(repo: Path) -> None:
    res = subprocess.run(
        [sys.executable, str(GEN), "--check"], cwd=repo, capture_output=True, text=True
    )
    assert res.returncode == 0, f"run `python {GEN}`\n{res.stderr}"
    manifest = load(repo, K8S / "prometheusrule.yaml")
    assert manifest["spec"]["groups"] == load(repo, RULES)["groups"]


def test_docs_url_moves_every_runbook_url(repo: Path, tmp_path: Path) -> None:
    out, rules = tmp_path / "rule.yaml", tmp_path / "rules.yml"
    subprocess.run(
        [sys.executable, str(GEN), "--docs-url", "https://docs.corp.test/driftd",
         "--out", str(out), "--rules-out", str(rules)],
        cwd=repo, check=True,
    )  # fmt: skip
    for groups in (yaml.safe_load(out.read_text())["spec"]["groups"],
                   yaml.safe_load(rules.read_text())["groups"]):  # fmt: skip
        urls = [r["annotations"]["runbook_url"] for g in groups for r in g["rules"]]
        assert urls and all(u.startswith("https://docs.corp.test/driftd/runbook/#") for u in urls)
    res = run_promtool("check", "rules", str(rules))
    assert res.returncode == 0, res.stdout + res.stderr


def test_prometheusrule_groups_pass_promtool(repo: Path, tmp_path: Path) -> None:
    groups = load(repo, K8S / "prometheusrule.yaml")["spec"]["groups"]
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": groups}))
    res = run_promtool("check", "rules", "--lint=all", "--lint-fatal", str(rules))
    assert res.returncode == 0, res.stdout + res.stderr


def test_deployment_matches_image_cli_and_service(repo: Path) -> None:
    deployment = load(repo, K8S / "deployment.yaml")
    service = load(repo, K8S / "service.yaml")
    monitor = load(repo, K8S / "servicemonitor.yaml")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    # the image's numeric USER is the pod's user: runAsNonRoot can be verified
    user = re.findall(r"^USER\s+(\S+)", (repo / "Dockerfile").read_text(), re.M)[-1]
    uid, _, gid = user.partition(":")
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert str(pod["securityContext"]["runAsUser"]) == uid and uid.isdigit() and int(uid) > 0
    assert str(pod["securityContext"]["runAsGroup"]) == gid
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    # ENTRYPOINT is `driftd`: the args are a command line driftd's parser accepts
    args = build_parser().parse_args(container["args"])
    assert args.command == "run" and args.config.startswith("/etc/driftd/")
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/etc/driftd"] == "config" and mounts["/var/lib/driftd"] == "state"
    # DRIFTD_* overrides name real config keys (their first segment is a top-level key)
    top = set(Config.model_fields) | {"schema"}
    for env in container["env"]:
        if env["name"].startswith("DRIFTD_") and "__" in env["name"]:
            assert env["name"][7:].split("__")[0].lower() in top, env["name"]
    probes = {k: container[k]["httpGet"]["path"] for k in ("livenessProbe", "readinessProbe")}
    assert probes == {"livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    # Service → pod port → ServiceMonitor endpoint, all by the name `http`
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == container["ports"][0]["name"]
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    # DriftdDown selects job="driftd": a ServiceMonitor's job is the Service's name
    assert service["metadata"]["name"] == "driftd" and "jobLabel" not in monitor["spec"]
    assert 'up{job="driftd"}' in (repo / RULES).read_text()


def test_flagger_template_query_and_canary(repo: Path) -> None:
    template = load(repo, TEMPLATE)
    canary = load(repo, CANARY)
    (metric,) = [m for m in canary["spec"]["analysis"]["metrics"] if "templateRef" in m]
    assert metric["templateRef"]["name"] == template["metadata"]["name"]
    assert metric["thresholdRange"] == {"max": 0}
    query = template["spec"]["query"]
    used = set(re.findall(r"\{\{\s*variables\.(\w+)\s*\}\}", query))
    assert used == set(metric["templateVariables"]) == {"monitor", "model_version"}
    rendered = re.sub(
        r"\{\{\s*variables\.(\w+)\s*\}\}", lambda m: str(metric["templateVariables"][m[1]]), query
    )
    ast = promql_parser.parse(rendered)
    assert "driftd_monitor_drifted" in rendered and ast is not None


def test_alertmanager_inhibits_secondary_alerts_while_driftd_is_down(repo: Path) -> None:
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.fail(
            "amtool not found: install Debian's prometheus-alertmanager package; .ci/run does",
            pytrace=False,
        )
    res = subprocess.run(
        [amtool, "check-config", str(repo / ALERTMANAGER)], capture_output=True, text=True
    )
    assert res.returncode == 0 and "1 inhibit rules" in res.stdout, res.stdout + res.stderr
    (rule,) = load(repo, ALERTMANAGER)["inhibit_rules"]
    assert rule["source_matchers"] == ['alertname="DriftdDown"']
    (target,) = rule["target_matchers"]
    pattern = re.fullmatch(r'alertname=~"(.+)"', target)
    assert pattern is not None
    alerts = {r["alert"] for g in load(repo, RULES)["groups"] for r in g["rules"] if "alert" in r}
    muted = {a for a in alerts if re.fullmatch(pattern[1], a)}
    assert muted == alerts - {"DriftdDown", "DriftdModelDrifted"}
