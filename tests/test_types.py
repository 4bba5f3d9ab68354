"""RawRecord's slot setters (the sources' hot path) build exactly what the constructor builds."""

from __future__ import annotations

from driftd.types import RawRecord, raw_record_setters


def test_slot_setters_build_the_same_record_as_the_constructor() -> None:
    setters = raw_record_setters()
    assert setters is not None  # RawRecord still has exactly the six slots the sources fill
    rec = object.__new__(RawRecord)
    for setter, value in zip(setters, (b"x", 8, 1700, 3, 7, "t"), strict=True):
        setter(rec, value)
    assert rec == RawRecord(b"x", 8, 1700, 3, 7, "t")
