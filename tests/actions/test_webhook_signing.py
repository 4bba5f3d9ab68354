"""Driftd-Signature: format, round trip, tampering, staleness, rotation, malformed input."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest

from driftd.actions.signing import sign, verify

SECRET = b"whsec-signing"
BODY = b'{"id":"a1","type":"drift.detected"}'
T = 1_764_158_590


def test_header_format_and_independent_hmac() -> None:
    header = sign(SECRET, BODY, T)
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", header)
    expected = hmac.new(SECRET, f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert header == f"t={T},v1={expected}"


def test_round_trip() -> None:
    assert verify(SECRET, BODY, sign(SECRET, BODY, T), now=T)
    assert verify(SECRET, BODY, sign(SECRET, BODY, T), now=T + 299)


def test_fresh_signature_verifies_with_real_clock() -> None:
    import time

    assert verify(SECRET, BODY, sign(SECRET, BODY, int(time.time())))


@pytest.mark.parametrize(
    "body",
    [BODY + b" ", BODY.replace(b"a1", b"a2"), b"", BODY[:-1]],
)
def test_tampered_body_rejected(body: bytes) -> None:
    assert not verify(SECRET, body, sign(SECRET, BODY, T), now=T)


def test_tampered_timestamp_or_mac_rejected() -> None:
    header = sign(SECRET, BODY, T)
    assert not verify(SECRET, BODY, header.replace(f"t={T}", f"t={T + 1}"), now=T)
    mac = header.split("v1=")[1]
    flipped = mac[:-1] + ("0" if mac[-1] != "0" else "1")
    assert not verify(SECRET, BODY, f"t={T},v1={flipped}", now=T)


def test_wrong_secret_rejected() -> None:
    assert not verify(b"other", BODY, sign(SECRET, BODY, T), now=T)


def test_stale_and_future_timestamps_rejected() -> None:
    header = sign(SECRET, BODY, T)
    assert not verify(SECRET, BODY, header, now=T + 301)
    assert not verify(SECRET, BODY, header, now=T - 301)
    assert verify(SECRET, BODY, header, tolerance_s=1000, now=T + 900)


def test_several_v1_entries_any_match() -> None:
    old = sign(b"old-secret", BODY, T).split(",")[1]
    new = sign(SECRET, BODY, T).split(",")[1]
    assert verify(SECRET, BODY, f"t={T},{old},{new}", now=T)
    assert verify(SECRET, BODY, f"t={T}, {new}, {old}", now=T)
    assert verify(b"old-secret", BODY, f"t={T},{old},{new}", now=T)
    assert not verify(b"third", BODY, f"t={T},{old},{new}", now=T)


def test_receiver_side_rotation_accepts_any_of_its_secrets() -> None:
    header = sign(b"old-secret", BODY, T)
    assert verify([SECRET, b"old-secret"], BODY, header, now=T)
    assert not verify([SECRET], BODY, header, now=T)


def test_unknown_schemes_ignored() -> None:
    header = sign(SECRET, BODY, T) + ",v2=whatever"
    assert verify(SECRET, BODY, header, now=T)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        f"t={T}",
        "v1=" + "0" * 64,
        f"t=abc,v1={'0' * 64}",
        f"t=+{T},v1={'0' * 64}",
        f"t={T},t={T},v1={'0' * 64}",
        f"t={T},v1=é",
        f"t={T},v1=\udcff",
        "t=,v1=",
        ",,,=,",
    ],
)
def test_malformed_headers_rejected_without_raising(header: str | None) -> None:
    assert verify(SECRET, BODY, header, now=T) is False


def test_duplicate_t_rejected_even_if_one_is_right() -> None:
    good = sign(SECRET, BODY, T)
    assert not verify(SECRET, BODY, f"t={T + 5},{good}", now=T)


def test_negative_timestamp_refused() -> None:
    with pytest.raises(ValueError):
        sign(SECRET, BODY, -1)
