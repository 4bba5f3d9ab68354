"""The webhook documentation (docs/webhooks.md) is true: its verification snippets — the
Python one run verbatim, the shell one with bash and openssl — accept a body really signed by
``driftd.actions.signing.sign`` and reject tampering; the CloudEvents and dry-run sections match
what driftd sends and counts."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from ecosystem_support import Live
from prometheus_client.parser import text_string_to_metric_families

from driftd.actions.payload import CLOUDEVENTS_CONTENT_TYPE, build_body
from driftd.actions.signing import sign

SECRET = b"whsec-docs-5b1d"


PAGE = Path("docs/webhooks.md")


def doc_section(repo: Path, heading: str) -> str:
    """Text under a heading of the webhooks page, up to the next heading (``#`` lines in code
    are not headings)."""
    lines = (repo / PAGE).read_text().splitlines(keepends=True)
    out: list[str] = []
    inside = in_code = False
    for line in lines:
        if line.startswith("```"):
            in_code = not in_code
        is_heading = not in_code and re.match(r"#{1,6} ", line) is not None
        if is_heading and inside:
            break
        if inside:
            out.append(line)
        if is_heading and line.split(" ", 1)[1].strip() == heading:
            inside = True
    assert inside, f"{PAGE} has no section {heading!r}"
    return "".join(out)


def fenced(section: str, lang: str) -> str:
    blocks = re.findall(rf"^```{lang}\n(.*?)^```", section, re.M | re.S)
    assert len(blocks) == 1, f"expected one ```{lang} block, found {len(blocks)}"
    return str(blocks[0])


@pytest.fixture(scope="module")
def real_body(live: Live) -> bytes:
    """The exact bytes driftd POSTs (native format) for the alert the live engine raised."""
    payload = live.payloads[0]
    assert payload["type"] == "drift.detected" and payload["model_version"] == "v2"
    body, content_type = build_body(payload, "driftd")
    assert content_type == "application/json"
    return body


@pytest.fixture(scope="module")
def python_verify(repo: Path) -> Callable[..., bool]:
    code = fenced(doc_section(repo, "Verify in Python"), "python")
    namespace: dict[str, Any] = {"__name__": "docs_snippet"}
    exec(compile(code, "docs/webhooks.md#verify-in-python", "exec"), namespace)  # noqa: S102
    fn = namespace["verify_driftd_signature"]
    assert callable(fn)
    return fn  # type: ignore[no-any-return]


def test_python_snippet_accepts_a_real_signature(
    python_verify: Callable[..., bool], real_body: bytes
) -> None:
    header = sign(SECRET, real_body, int(time.time()))
    assert python_verify(SECRET, real_body, header) is True


def test_python_snippet_rejects_tampering(
    python_verify: Callable[..., bool], real_body: bytes
) -> None:
    now = int(time.time())
    header = sign(SECRET, real_body, now)
    assert python_verify(SECRET, real_body.replace(b'"v2"', b'"v3"', 1), header) is False
    assert python_verify(b"another-secret", real_body, header) is False
    assert python_verify(SECRET, real_body, sign(SECRET, real_body, now - 3600)) is False
    assert python_verify(SECRET, real_body, sign(SECRET, real_body, now + 3600)) is False
    assert python_verify(SECRET, real_body, "") is False
    assert python_verify(SECRET, real_body, "t=abc," + header.split(",")[1]) is False
    # two timestamps: ambiguous, as driftd's own verifier says
    assert python_verify(SECRET, real_body, f"t={now},{header}") is False


def test_python_snippet_accepts_rotation_headers(
    python_verify: Callable[..., bool], real_body: bytes
) -> None:
    now = int(time.time())
    old = sign(b"old-secret", real_body, now)
    new_mac = sign(SECRET, real_body, now).split(",")[1]
    assert python_verify(SECRET, real_body, f"{old},{new_mac}") is True


def _run_shell(repo: Path, tmp: Path, body: bytes, header: str, secret: bytes) -> str:
    script = fenced(doc_section(repo, "Verify in a shell"), "bash")
    (tmp / "body.json").write_bytes(body)
    res = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp,
        env={"PATH": "/usr/bin:/bin", "SIG": header, "DRIFTD_WEBHOOK_SECRET": secret.decode()},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def test_shell_snippet(repo: Path, tmp_path: Path, real_body: bytes) -> None:
    header = sign(SECRET, real_body, int(time.time()))
    assert _run_shell(repo, tmp_path, real_body, header, SECRET) == "signature ok"
    tampered = real_body.replace(b'"v2"', b'"v3"', 1)
    assert _run_shell(repo, tmp_path, tampered, header, SECRET) == "signature INVALID"
    assert _run_shell(repo, tmp_path, real_body, header, b"wrong") == "signature INVALID"


def test_cloudevents_section_matches_what_driftd_sends(repo: Path, real_body: bytes) -> None:
    section = doc_section(repo, "CloudEvents")
    assert CLOUDEVENTS_CONTENT_TYPE in section
    documented = orjson.loads(fenced(section, "json"))
    alert = orjson.loads(real_body)
    body, content_type = build_body(alert, "cloudevents")
    event = orjson.loads(body)
    assert content_type == CLOUDEVENTS_CONTENT_TYPE
    # CloudEvents 1.0 required context attributes, non-empty strings
    for attr in ("specversion", "id", "source", "type"):
        assert isinstance(event[attr], str) and event[attr], attr
    assert event["specversion"] == "1.0"
    assert set(event) == set(documented)
    assert event["id"] == alert["id"] and event["subject"] == alert["model_version"]
    assert event["type"] == documented["type"] == "io.driftd.drift.detected"
    assert event["source"] == documented["source"] == "driftd/credit"
    assert event["data"] == alert


def test_dry_run_section_matches_the_metric(repo: Path, live: Live, scrape: str) -> None:
    section = doc_section(repo, "Dry run")
    assert 'outcome="dry_run"' in section
    samples = {
        (s.labels["action"], s.labels["outcome"]): s.value
        for f in text_string_to_metric_families(scrape)
        if f.name == "driftd_webhook_deliveries"
        for s in f.samples
    }
    # the live fixture's dry-run action handled the one alert: counted, not delivered
    assert samples[("rollback", "dry_run")] == 1
    assert samples[("rollback", "delivered")] == 0
    assert live.action.pending() == 0
