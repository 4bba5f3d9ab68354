"""`driftd check-config` runs every check `driftd run` makes short of connecting, reports every
problem at once, and names the same key as `run` (issue 16)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from driftd_testutil import build_credit_profile, credit_config

from driftd.cli import main


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_credit_profile(tmp_path_factory.mktemp("check-profile"))


def base(tmp: Path, profile: Path) -> dict[str, Any]:
    cfg = credit_config(tmp, profile=profile, webhook_url="https://deployer.example/rollback")
    return yaml.safe_load(cfg.read_text())  # type: ignore[no-any-return]


def write(tmp: Path, doc: dict[str, Any]) -> Path:
    p = tmp / "broken.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p


def keys(err: str) -> list[str]:
    return re.findall(r"driftd: config error: ([^:\s]+):", err)


def _mon(d: dict[str, Any]) -> dict[str, Any]:
    return d["monitors"][0]  # type: ignore[no-any-return]


BROKEN: dict[str, tuple[Callable[[dict[str, Any], Path], None], str]] = {
    "webhook url without a host": (
        lambda d, t: d["actions"]["rollback"].update(url="https://"),
        "actions.rollback.url",
    ),
    "bad port": (lambda d, t: d["http"].update(listen="127.0.0.1:99999"), "http.listen"),
    "unset secret variable": (
        lambda d, t: d["actions"]["rollback"].update(secret={"env": "DRIFTD_NO_SUCH_VAR"}),
        "actions.rollback.secret.env",
    ),
    "missing profile": (
        lambda d, t: _mon(d)["reference"].update(path=str(t / "nope.json")),
        "monitors.0.reference.path",
    ),
    "feature not in the profile": (
        lambda d, t: _mon(d)["features"].update(shoe_size={"kind": "numeric"}),
        "monitors.0.reference.path",
    ),
    "unknown test": (
        lambda d, t: _mon(d)["features"]["income"].update(test="kolmogorov"),
        "monitors.0.features.income.test",
    ),
    "detector signal of no feature": (
        lambda d, t: _mon(d).update(detectors=[{"type": "adwin", "signal": "feature:nope"}]),
        "monitors.0.detectors.0.signal",
    ),
    "tls ca file missing": (
        lambda d, t: d["actions"]["rollback"].update(tls={"ca_file": str(t / "no-ca.pem")}),
        "actions.rollback.tls.ca_file",
    ),
    "state dir not writable": (
        lambda d, t: d["state"].update(dir=str(t / "a-file" / "state")),
        "state.dir",
    ),
    "api token variable unset": (
        lambda d, t: d["http"].update(token={"env": "DRIFTD_NO_SUCH_TOKEN"}),
        "http.token.env",
    ),
    "header secret unset": (
        lambda d, t: d["actions"]["rollback"].update(
            headers={"Authorization": {"env": "DRIFTD_NO_SUCH_HEADER"}}
        ),
        "actions.rollback.headers.Authorization.env",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_config_is_refused_by_check_config_and_run_naming_the_same_key(
    case: str, tmp_path: Path, profile: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("DRIFTD_TEST_SECRET", "s")
    (tmp_path / "a-file").write_text("x")
    doc = base(tmp_path, profile)
    mutate, key = BROKEN[case]
    mutate(doc, tmp_path)
    cfg = write(tmp_path, doc)
    assert main(["check-config", "-c", str(cfg)]) == 2
    checked = keys(capsys.readouterr().err)
    assert checked == [key], checked
    assert main(["run", "-c", str(cfg)]) == 2  # refused before connecting to anything
    assert keys(capsys.readouterr().err) == [key]


def test_three_mistakes_are_listed_together(
    tmp_path: Path, profile: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("DRIFTD_TEST_SECRET", "s")
    doc = base(tmp_path, profile)
    doc["http"]["listen"] = "nowhere"  # schema
    _mon(doc)["policy"]["consecutive"] = 0  # schema
    doc["actions"]["rollback"]["secret"] = {"env": "DRIFTD_NO_SUCH_VAR"}  # only when resolved
    cfg = write(tmp_path, doc)
    assert main(["check-config", "-c", str(cfg)]) == 2
    # schema problems first (all of them), then — once the schema holds — the run-time checks
    assert sorted(keys(capsys.readouterr().err)) == ["http.listen", "monitors.0.policy.consecutive"]
    doc["http"]["listen"] = "127.0.0.1:0"
    _mon(doc)["features"]["income"]["threshold"] = 0.001
    _mon(doc)["reference"]["path"] = str(tmp_path / "missing.json")
    doc["http"]["token"] = {"env": "DRIFTD_NO_SUCH_TOKEN"}
    _mon(doc)["policy"]["consecutive"] = 1
    cfg = write(tmp_path, doc)
    assert main(["check-config", "-c", str(cfg)]) == 2
    assert sorted(keys(capsys.readouterr().err)) == [
        "actions.rollback.secret.env",
        "http.token.env",
        "monitors.0.reference.path",
    ]


def test_urls_are_masked_in_the_effective_config(
    tmp_path: Path, profile: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("DRIFTD_TEST_SECRET", "s")
    doc = base(tmp_path, profile)
    doc["actions"]["rollback"]["url"] = "https://deployer.example/rb?token=abc123"
    assert main(["check-config", "-c", str(write(tmp_path, doc))]) == 0
    out = capsys.readouterr().out
    assert "abc123" not in out and "https://deployer.example/rb?***" in out
