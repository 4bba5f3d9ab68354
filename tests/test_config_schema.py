"""The config's JSON Schema (``driftd.config.json_schema()``, printed by ``driftd
config-schema``): every property described, choices as enums taken from the registries, a
``$schema``/``$id``, and the example configs shipped in ``config/`` valid against it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from driftd.config import SCHEMA_DIALECT, SCHEMA_ID, json_schema, validate_config
from driftd.detectors import detector_names
from driftd.errors import ConfigError
from driftd.stats import test_names
from driftd.types import DETECTOR_NAMES, DRIFT_TEST_NAMES

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(
    p
    for p in (REPO / "config").glob("*.yaml")
    if isinstance(yaml.safe_load(p.read_text()), dict)
    and "monitors" in yaml.safe_load(p.read_text())
)


def _properties(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for key, prop in schema.get("properties", {}).items():
        yield key, prop
    for name, model in schema.get("$defs", {}).items():
        for key, prop in model.get("properties", {}).items():
            yield f"{name}.{key}", prop


def _enum(prop: dict[str, Any]) -> set[str]:
    for sub in [prop, *prop.get("anyOf", [])]:
        if "enum" in sub:
            return set(sub["enum"])
    raise AssertionError(f"no enum in {prop}")


def test_dialect_and_id() -> None:
    schema = json_schema()
    assert schema["$schema"] == SCHEMA_DIALECT == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == SCHEMA_ID
    Draft202012Validator.check_schema(schema)


def test_every_property_has_a_description() -> None:
    props = list(_properties(json_schema()))
    assert len(props) > 134  # every key, the webhook's new ones included
    missing = [key for key, prop in props if not prop.get("description", "").strip()]
    assert missing == []


def test_choices_are_enums_matching_the_registries() -> None:
    defs = json_schema()["$defs"]
    tests = _enum(defs["FeatureConfig"]["properties"]["test"])
    assert tests == DRIFT_TEST_NAMES == set(test_names())
    detectors = _enum(defs["DetectorConfig"]["properties"]["type"])
    assert detectors == DETECTOR_NAMES == set(detector_names())
    assert _enum(defs["FeatureConfig"]["properties"]["kind"]) == {"numeric", "categorical"}
    assert _enum(defs["WebhookActionConfig"]["properties"]["format"]) == {"driftd", "cloudevents"}


def test_unknown_test_name_is_refused_with_its_key() -> None:
    data = {
        "monitors": [
            {
                "name": "m",
                "model": "x",
                "reference": {"type": "warmup"},
                "features": {"a": {"kind": "numeric", "test": "kolmogorov"}},
            }
        ]
    }
    with pytest.raises(ConfigError) as info:
        validate_config(data)
    assert info.value.key == "monitors.0.features.a.test"
    assert "'ks'" in info.value.problem  # the message lists the accepted names


def test_a_registry_refuses_a_name_config_does_not_know() -> None:
    from driftd.stats.base import DriftTest, register

    class Novel(DriftTest):
        name = "novel"
        kinds = frozenset({"numeric"})

    with pytest.raises(ValueError, match="DriftTestName"):
        register(Novel)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_configs_validate_against_the_schema(path: Path) -> None:
    validator = Draft202012Validator(json_schema())
    errors = sorted(validator.iter_errors(yaml.safe_load(path.read_text())), key=str)
    assert errors == [], "\n".join(e.message for e in errors)


def test_schema_rejects_what_config_rejects() -> None:
    validator = Draft202012Validator(json_schema())
    good = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    assert validator.is_valid(good)
    bad = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    bad["monitors"][0]["prediction"]["test"] = "kolmogorov"
    assert not validator.is_valid(bad)


def test_loading_config_stays_light() -> None:
    code = (
        "import sys, driftd.config\n"
        "heavy = sorted(m for m in ('numpy', 'numba', 'river', 'httpx', 'driftd.stats') "
        "if m in sys.modules)\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == ""
