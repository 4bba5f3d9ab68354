"""Native driftd and CloudEvents 1.0 structured-mode bodies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from driftd.actions.payload import (
    CLOUDEVENTS_CONTENT_TYPE,
    NATIVE_CONTENT_TYPE,
    build_body,
)

MakeAlert = Callable[..., dict[str, Any]]


def test_native_body_is_the_alert_as_given(make_alert: MakeAlert) -> None:
    alert = make_alert()
    body, content_type = build_body(alert, "driftd")
    assert content_type == NATIVE_CONTENT_TYPE == "application/json"
    assert body == orjson.dumps(alert)
    assert orjson.loads(body) == alert


def test_native_is_the_default(make_alert: MakeAlert) -> None:
    assert build_body(make_alert()) == build_body(make_alert(), "driftd")


def test_cloudevents_structured_mode(make_alert: MakeAlert) -> None:
    alert = make_alert()
    body, content_type = build_body(alert, "cloudevents")
    assert content_type == CLOUDEVENTS_CONTENT_TYPE
    assert content_type.startswith("application/cloudevents+json")
    event = orjson.loads(body)
    # required context attributes
    assert event["specversion"] == "1.0"
    assert event["id"] == alert["id"]
    assert event["source"] == "driftd/credit"
    assert event["type"] == "io.driftd.drift.detected"
    # optional attributes driftd fills in
    assert event["time"] == alert["time"]
    assert event["subject"] == "v7"
    assert event["datacontenttype"] == "application/json"
    assert event["data"] == alert


def test_cloudevents_resolved_type(make_alert: MakeAlert) -> None:
    body, _ = build_body(make_alert(type="drift.resolved", rollback_to=None), "cloudevents")
    assert orjson.loads(body)["type"] == "io.driftd.drift.resolved"


def test_cloudevents_source_is_a_uri_reference(make_alert: MakeAlert) -> None:
    body, _ = build_body(make_alert(monitor="credit eu/v2"), "cloudevents")
    assert orjson.loads(body)["source"] == "driftd/credit%20eu%2Fv2"


def test_cloudevents_optional_attributes_omitted_when_unknown(make_alert: MakeAlert) -> None:
    alert = make_alert(model_version=None)
    del alert["time"], alert["monitor"]
    event = orjson.loads(build_body(alert, "cloudevents")[0])
    assert "subject" not in event and "time" not in event
    assert event["source"] == "driftd"


@pytest.mark.parametrize("fmt", ["driftd", "cloudevents"])
@pytest.mark.parametrize("missing", ["id", "type"])
def test_alert_without_id_or_type_rejected(make_alert: MakeAlert, fmt: Any, missing: str) -> None:
    alert = make_alert()
    del alert[missing]
    with pytest.raises(ValueError, match=missing):
        build_body(alert, fmt)


def test_unserialisable_alert_rejected(make_alert: MakeAlert) -> None:
    with pytest.raises(ValueError, match="serialis"):
        build_body(make_alert(extra=object()), "driftd")


def test_unknown_format_rejected(make_alert: MakeAlert) -> None:
    with pytest.raises(ValueError, match="format"):
        build_body(make_alert(), "xml")  # type: ignore[arg-type]
