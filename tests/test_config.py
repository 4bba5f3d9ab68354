from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from driftd.cli import main
from driftd.config import apply_env, load_config, masked_dump
from driftd.errors import ConfigError

BASE = {
    "monitors": [
        {
            "name": "credit",
            "model": "credit-scoring",
            "reference": {"type": "profile", "path": "ref.json"},
            "features": {"income": {"kind": "numeric"}, "region": {"kind": "categorical"}},
            "actions": ["rollback"],
        }
    ],
    "actions": {
        "rollback": {
            "type": "webhook",
            "url": "http://127.0.0.1:1/rollback",
            "secret": {"value": "s3cret-value"},
        }
    },
}


def write(tmp_path: Path, data: object) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def test_defaults_and_shape(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, BASE), environ={})
    m = cfg.monitors[0]
    assert m.window.type == "sliding" and m.window.events == 5000 and m.window.step == 1000
    assert m.policy.min_events == 1000 and m.policy.consecutive == 2
    assert cfg.kafka.group_id == "driftd"
    assert cfg.schema_.model_version == "model_version"


def test_unknown_key_named(tmp_path: Path) -> None:
    bad = {**BASE, "monitors": [{**BASE["monitors"][0], "windw": {}}]}  # type: ignore[dict-item]
    with pytest.raises(ConfigError) as ei:
        load_config(write(tmp_path, bad), environ={})
    assert ei.value.key == "monitors.0.windw"
    assert "unknown key" in ei.value.problem


def test_bad_value_named(tmp_path: Path) -> None:
    mon = {**BASE["monitors"][0], "window": {"type": "sliding", "events": 100, "step": 500}}  # type: ignore[dict-item]
    with pytest.raises(ConfigError) as ei:
        load_config(write(tmp_path, {**BASE, "monitors": [mon]}), environ={})
    assert ei.value.key == "monitors.0.window"
    mon2 = {**BASE["monitors"][0], "policy": {"min_events": -1}}  # type: ignore[dict-item]
    with pytest.raises(ConfigError) as ei:
        load_config(write(tmp_path, {**BASE, "monitors": [mon2]}), environ={})
    assert ei.value.key == "monitors.0.policy.min_events"


def test_unknown_action_named(tmp_path: Path) -> None:
    mon = {**BASE["monitors"][0], "actions": ["nope"]}  # type: ignore[dict-item]
    with pytest.raises(ConfigError) as ei:
        load_config(write(tmp_path, {**BASE, "monitors": [mon]}), environ={})
    assert ei.value.key == "monitors.0.actions.0"


def test_env_overrides_file_and_cli_overrides_env(tmp_path: Path) -> None:
    env = {
        "DRIFTD_KAFKA__BOOTSTRAP_SERVERS": "k1:9092,k2:9092",
        "DRIFTD_MONITORS__0__POLICY__MIN_EVENTS": "500",
        "DRIFTD_WEBHOOK_SECRET": "not a config key, ignored",
        "DRIFTD_KAFKA__GROUP_ID": "from-env",
    }
    cfg = load_config(write(tmp_path, BASE), environ=env, overrides={"kafka.group_id": "from-cli"})
    assert cfg.kafka.bootstrap_servers == ["k1:9092", "k2:9092"]
    assert cfg.monitors[0].policy.min_events == 500
    assert cfg.kafka.group_id == "from-cli"


def test_env_bad_index_named() -> None:
    with pytest.raises(ConfigError) as ei:
        apply_env({"monitors": []}, {"DRIFTD_MONITORS__3__NAME": "x"})
    assert ei.value.key == "monitors.3"


def test_secrets_masked(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, BASE), environ={})
    text = str(masked_dump(cfg))
    assert "s3cret-value" not in text
    assert "**********" in text


def test_check_config_exit_2_names_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = {**BASE, "http": {"listen": "nope"}}
    rc = main(["check-config", "-c", str(write(tmp_path, bad))])
    err = capsys.readouterr().err
    assert rc == 2
    assert "http.listen" in err


def test_check_config_missing_profile_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["check-config", "-c", str(write(tmp_path, BASE))])
    assert rc == 2
    assert "monitors.0.reference.path" in capsys.readouterr().err


def test_missing_file_and_bad_yaml_exit_2(tmp_path: Path) -> None:
    assert main(["check-config", "-c", str(tmp_path / "absent.yaml")]) == 2
    p = tmp_path / "bad.yaml"
    p.write_text("monitors: [\n")
    assert main(["check-config", "-c", str(p)]) == 2


def test_usage_error_exit_2() -> None:
    assert main(["frobnicate"]) == 2


def test_label_topics_without_a_performance_monitor_name_the_key() -> None:
    from driftd.config import validate_config
    from driftd.errors import ConfigError

    mon = {
        "name": "a",
        "model": "m",
        "reference": {"type": "profile", "path": "p.json"},
        "features": {"x": {"kind": "numeric"}},
    }
    with pytest.raises(ConfigError) as exc:
        validate_config({"kafka": {"label_topics": ["labels"]}, "monitors": [mon]})
    assert exc.value.key == "kafka.label_topics"
