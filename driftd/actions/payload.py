"""Request bodies for drift alerts: the native driftd JSON or CloudEvents 1.0 structured mode.

The alert dict produced by the policy already *is* the native payload (``id``, ``type``,
``time``, ``monitor``, ``model``, ``model_version``, ``rollback_to``, ``severity``,
``drift_share``, ``features``, ``window``); it is serialised as given.

CloudEvents mapping (structured content mode, JSON event format):

- ``specversion`` ``"1.0"``
- ``id`` the alert id, so the CloudEvents id and the ``Idempotency-Key`` header agree
- ``source`` ``"driftd/<monitor>"`` (a URI-reference; the monitor name is percent-encoded)
- ``type`` ``"io.driftd." + alert type``, e.g. ``io.driftd.drift.detected``: the spec asks for
  a reverse-DNS prefix so types from different producers cannot collide, and keeping the
  native type as the suffix lets a receiver route both formats with one suffix match
- ``time`` the alert time (RFC 3339), omitted when the alert has none
- ``subject`` the model version the alert is about, omitted when unknown
- ``datacontenttype`` ``"application/json"`` and ``data`` the native payload, unchanged
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal
from urllib.parse import quote

import orjson

from driftd.reference.profile import segment_label

__all__ = [
    "CLOUDEVENTS_CONTENT_TYPE",
    "CLOUDEVENTS_TYPE_PREFIX",
    "NATIVE_CONTENT_TYPE",
    "PayloadFormat",
    "build_body",
    "log_fields",
    "to_cloudevent",
]

PayloadFormat = Literal["driftd", "cloudevents"]

NATIVE_CONTENT_TYPE: Final = "application/json"
CLOUDEVENTS_CONTENT_TYPE: Final = "application/cloudevents+json; charset=UTF-8"
CLOUDEVENTS_TYPE_PREFIX: Final = "io.driftd."
CLOUDEVENTS_SOURCE_PREFIX: Final = "driftd"


def _required_str(alert: Mapping[str, Any], key: str) -> str:
    value = alert.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"alert field {key!r} must be a non-empty string, got {value!r}")
    return value


def to_cloudevent(alert: Mapping[str, Any]) -> dict[str, Any]:
    """Wrap a native alert in a CloudEvents 1.0 envelope (see module docstring)."""
    monitor = alert.get("monitor")
    source = CLOUDEVENTS_SOURCE_PREFIX
    if isinstance(monitor, str) and monitor:
        source = f"{CLOUDEVENTS_SOURCE_PREFIX}/{quote(monitor, safe='')}"
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": _required_str(alert, "id"),
        "source": source,
        "type": CLOUDEVENTS_TYPE_PREFIX + _required_str(alert, "type"),
    }
    time = alert.get("time")
    if isinstance(time, str) and time:
        event["time"] = time
    version = alert.get("model_version")
    if version is not None and version != "":
        event["subject"] = str(version)
    event["datacontenttype"] = NATIVE_CONTENT_TYPE
    event["data"] = dict(alert)
    return event


def build_body(alert: Mapping[str, Any], format: PayloadFormat = "driftd") -> tuple[bytes, str]:
    """Return ``(body bytes, Content-Type)`` for ``alert`` in the requested format.

    Raises ``ValueError`` when the alert lacks a string ``id``/``type`` or holds values
    orjson cannot serialise (a policy bug, caught at submit time rather than on every retry).
    """
    _required_str(alert, "id")
    _required_str(alert, "type")
    try:
        if format == "driftd":
            return orjson.dumps(dict(alert)), NATIVE_CONTENT_TYPE
        if format == "cloudevents":
            return orjson.dumps(to_cloudevent(alert)), CLOUDEVENTS_CONTENT_TYPE
    except orjson.JSONEncodeError as exc:
        raise ValueError(f"alert {alert.get('id')!r} is not JSON-serialisable: {exc}") from exc
    raise ValueError(f"unknown webhook format {format!r}")


def log_fields(
    action: str, alert_id: object, alert: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``extra=`` of a log line about one alert: with ``--log-format json`` the line carries
    ``action``, ``alert_id`` and, when the alert is at hand, ``monitor``, ``model_version``
    and ``segment`` (the label the metrics use) as fields to filter on."""
    out: dict[str, Any] = {"action": action, "alert_id": alert_id}
    if alert is not None:
        out["monitor"] = alert.get("monitor")
        out["model_version"] = alert.get("model_version")
        seg = alert.get("segment")
        if isinstance(seg, Mapping) and seg:
            out["segment"] = segment_label(list(seg), tuple(str(v) for v in seg.values()))
    return out
