"""Vendor the JSON Schemas the Kubernetes manifests are validated against into
tests/ecosystem/schemas/ (CI reaches no schema store, so they live in the repository).

Run it in a throwaway virtualenv holding the two PyPI packages the schemas come from:

    python -m venv /tmp/schemas && /tmp/schemas/bin/pip install \\
        kubernetes-validate==1.37.0 cloudcoil-models-prometheus-operator==0.80.1.0
    /tmp/schemas/bin/python scripts/vendor_schemas.py

- Kubernetes (Deployment, Service, PersistentVolumeClaim): the "-strict" schemas of Kubernetes
  v1.33 shipped by ``kubernetes-validate``; each is made self-contained (the definitions it
  reaches are copied under its ``$defs``, so no ``$ref`` leaves the file).
- prometheus-operator (ServiceMonitor, PrometheusRule, v0.80): generated from the pydantic
  models of ``cloudcoil-models-prometheus-operator``, themselves generated from the operator's
  CRDs; Go's ``(?i)`` patterns spelt out as ECMA regex; made strict like the Kubernetes ones
  (``additionalProperties: false`` on every object with declared properties: the API server
  silently prunes unknown fields, so a typo would otherwise go unnoticed).

The Flagger MetricTemplate schema (``flagger/metrictemplate-flagger-v1beta1.json``) is not
produced here: no PyPI or npm package ships Flagger's CRDs, so it is written by hand from the
CRD's documented fields and kept beside these.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "ecosystem" / "schemas"
K8S_VERSION = "v1.33.0-local-strict"
K8S_KINDS = {
    "deployment-apps-v1": "Deployment",
    "service-v1": "Service",
    "persistentvolumeclaim-v1": "PersistentVolumeClaim",
}
_K8S_REF = re.compile(r"^(?:/api/_definitions\.json)?#/\$defs/(.+)$")


def _walk_refs(node: Any, seen: set[str], defs: dict[str, Any]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                m = _K8S_REF.match(value)
                if m is None:
                    raise ValueError(f"unexpected $ref {value}")
                name = m.group(1)
                if name not in seen:
                    seen.add(name)
                    _walk_refs(defs[name], seen, defs)
            else:
                _walk_refs(value, seen, defs)
    elif isinstance(node, list):
        for item in node:
            _walk_refs(item, seen, defs)


def _local_refs(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: (_K8S_REF.sub(r"#/$defs/\1", v) if k == "$ref" else _local_refs(v))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_local_refs(x) for x in node]
    return node


def kubernetes() -> None:
    import kubernetes_validate

    base = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / K8S_VERSION
    defs = json.loads((base / "_definitions.json").read_text())["$defs"]
    for stem in K8S_KINDS:
        schema = json.loads((base / f"{stem}.json").read_text())
        reached: set[str] = set()
        _walk_refs(schema, reached, defs)
        bundled = _local_refs(schema)
        bundled["$defs"] = {name: _local_refs(defs[name]) for name in sorted(reached)}
        _write(OUT / "kubernetes" / f"{stem}.json", bundled)


def _ecma_pattern(pattern: str) -> str:
    """Go's inline ``(?i)`` is not ECMA 262 regex (what JSON Schema's ``pattern`` is): spell
    the case-insensitivity out, letter by letter."""
    if "(?i)" not in pattern:
        return pattern
    body = pattern.replace("(?i)", "")
    return re.sub(r"[A-Za-z]", lambda m: f"[{m[0].upper()}{m[0].lower()}]", body)


def _strict(node: Any) -> Any:
    if isinstance(node, dict):
        out = {
            k: (_ecma_pattern(v) if k == "pattern" and isinstance(v, str) else _strict(v))
            for k, v in node.items()
        }
        if out.get("type") == "object" and "properties" in out:
            out.setdefault("additionalProperties", False)
        return out
    if isinstance(node, list):
        return [_strict(x) for x in node]
    return node


def prometheus_operator() -> None:
    from cloudcoil.models.prometheus_operator import v1

    for model, stem in (
        (v1.ServiceMonitor, "servicemonitor"),
        (v1.PrometheusRule, "prometheusrule"),
    ):
        schema = _strict(model.model_json_schema(by_alias=True))
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        # a manifest must say what it is (the models default them, the API server does not)
        schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind"})
        _write(OUT / "prometheus-operator" / f"{stem}-monitoring-v1.json", schema)


def _write(path: Path, schema: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    kubernetes()
    prometheus_operator()
