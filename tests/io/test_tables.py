"""Event files in JSONL, CSV and Parquet: the same events give the same profile and the same
event lines; column-to-event mapping and CSV cell typing."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from driftd_testutil import CREDIT_FEATURES, credit_config, write_lines

from driftd.cli import main
from driftd.config import SchemaConfig
from driftd.demo.credit import generate
from driftd.errors import ConfigError
from driftd.io import column_path, detect_format, event_lines
from driftd.io.tables import csv_cell
from driftd.sources.file import FileSource

FEATURES = {
    **CREDIT_FEATURES,
    "num_accounts": {"kind": "numeric", "test": "ks", "threshold": 0.001},
    "has_mortgage": {"kind": "categorical", "test": "chi2", "threshold": 0.001},
}
# Flat columns: some features by bare name, some by their schema path.
FLAT = {
    "income": "income",
    "age": "features.age",
    "debt_ratio": "debt_ratio",
    "num_accounts": "features.num_accounts",
    "region": "region",
    "employment": "features.employment",
    "has_mortgage": "has_mortgage",
}
TOP = ("event_id", "model", "model_version", "ts", "prediction", "label")


def events(n: int = 3000) -> list[dict[str, Any]]:
    out = [orjson.loads(x) for x in generate(n, version="v1", seed=11)]
    # missing values of every kind: null numeric, null category
    out[3]["features"]["income"] = None
    out[5]["features"]["region"] = None
    out[7]["prediction"] = None
    return out


def flat_rows(evs: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    header = [*TOP, *FLAT.values()]
    rows = [[e.get(k) for k in TOP] + [e["features"].get(f) for f in FLAT] for e in evs]
    return header, rows


def write_csv(path: Path, evs: list[dict[str, Any]]) -> Path:
    header, rows = flat_rows(evs)

    def cell(v: Any) -> str:
        if v is None:
            return ""
        if isinstance(v, bool):
            return "true" if v else "false"
        return repr(v) if isinstance(v, float) else str(v)

    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for r in rows:
            w.writerow([cell(v) for v in r])
    return path


def write_parquet_flat(path: Path, evs: list[dict[str, Any]]) -> Path:
    header, rows = flat_rows(evs)
    cols = {h: [r[i] for r in rows] for i, h in enumerate(header)}
    cols["label"] = pa.array(cols["label"], type=pa.float64())  # all null
    pq.write_table(pa.table(cols), path)
    return path


def write_parquet_nested(path: Path, evs: list[dict[str, Any]]) -> Path:
    # one struct column `features`, as pyarrow infers it from the JSON objects
    rows = [{k: v for k, v in e.items() if k != "label"} for e in evs]
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def build(tmp: Path, inputs: list[Path], fmt: str | None = None) -> dict[str, Any]:
    cfg = credit_config(tmp, profile=tmp / "unused.json", features=FEATURES)
    out = tmp / f"profile-{inputs[0].name}.json"
    args = ["profile", "build", "-c", str(cfg), "--monitor", "credit", "--out", str(out)]
    args += ["--input", *map(str, inputs)]
    if fmt:
        args += ["--format", fmt]
    assert main(args) == 0
    doc = orjson.loads(out.read_bytes())
    doc.pop("created")
    return doc  # type: ignore[no-any-return]


def test_same_events_give_identical_profiles_from_jsonl_csv_parquet(tmp_path: Path) -> None:
    evs = events()
    jl = write_lines(tmp_path / "ref.jsonl", [orjson.dumps(e) for e in evs])
    want = build(tmp_path, [jl])
    assert want["events"] == len(evs) and want["rejected"] == 0
    assert want["features"]["income"]["missing"] == 1
    assert want["features"]["has_mortgage"]["categories"] == ["false", "true"] or want["features"][
        "has_mortgage"
    ]["categories"] == ["true", "false"]
    for path in (
        write_csv(tmp_path / "ref.csv", evs),
        write_parquet_flat(tmp_path / "ref.parquet", evs),
        write_parquet_nested(tmp_path / "nested.parquet", evs),
    ):
        got = build(tmp_path, [path])
        assert got == want, path.name  # the id is a digest of the content: equal ids too
    # an explicit --format for a file whose name says nothing
    odd = tmp_path / "ref.data"
    odd.write_bytes((tmp_path / "ref.csv").read_bytes())
    assert build(tmp_path, [odd], fmt="csv") == want
    # several inputs of different formats are read in turn
    half = len(evs) // 2
    a = write_csv(tmp_path / "a.csv", evs[:half])
    b = write_parquet_flat(tmp_path / "b.parquet", evs[half:])
    assert build(tmp_path, [a, b])["features"] == want["features"]


def test_event_lines_equal_the_jsonl_events(tmp_path: Path) -> None:
    evs = events(200)
    want = [{k: v for k, v in e.items() if v is not None} for e in evs]
    for w in want:
        w["features"] = {k: v for k, v in w["features"].items() if v is not None}
        w["features"] = {f: w["features"][f] for f in FLAT if f in w["features"]}
    files = (write_csv(tmp_path / "e.csv", evs), write_parquet_flat(tmp_path / "e.parquet", evs))
    for path in files:
        got = [orjson.loads(x) for x in event_lines(path)]
        assert got == want, path.name


def test_file_source_of_format_counts_rows(tmp_path: Path) -> None:
    evs = events(25)
    path = write_parquet_flat(tmp_path / "s.parquet", evs)
    src = FileSource.of_format([str(path)])
    src.open()
    got = []
    while not src.exhausted:
        got += src.poll(10)
    assert [r.position for r in got] == list(range(1, 26))
    assert orjson.loads(got[0].value or b"")["event_id"] == evs[0]["event_id"]
    plain = FileSource([str(write_lines(tmp_path / "s.jsonl", [b"{}", b"", b"{}"]))])
    plain.open()
    assert [r.value for r in plain.poll(10)] == [b"{}", b"", b"{}"]  # unchanged behaviour


@pytest.mark.parametrize(
    ("cell", "value"),
    [
        ("", None),
        ("41", 41),
        ("-0.5", -0.5),
        ("1e3", 1000.0),
        ("007", "007"),
        ("+1", "+1"),
        ("nan", "nan"),
        ("True", True),
        ("false", False),
        ("EU", "EU"),
        ("2026-11-26T12:00:00Z", "2026-11-26T12:00:00Z"),
        (str(2**70), float(2**70)),
    ],
)
def test_csv_cells(cell: str, value: Any) -> None:
    assert csv_cell(cell) == value and type(csv_cell(cell)) is type(value)


def test_column_mapping() -> None:
    s = SchemaConfig()
    assert column_path("income", s) == ("features", "income")
    assert column_path("features.label", s) == ("features", "label")
    assert column_path("label", s) == ("label",)
    assert column_path("ts", s) == ("ts",)
    assert column_path("features", s) == ("features",)
    nested = SchemaConfig(model_version="meta.version", features="x")
    assert column_path("meta.version", nested) == ("meta", "version")
    assert column_path("x.a.b", nested) == ("x", "a", "b")
    assert column_path("a.b", nested) == ("x", "a.b")


def test_format_detection() -> None:
    assert detect_format("a.JSONL") == "jsonl"
    assert detect_format("-") == "jsonl"
    assert detect_format("a.csv") == "csv"
    assert detect_format("x/a.pq") == "parquet"
    assert detect_format("a.txt", "csv") == "csv"
    with pytest.raises(ConfigError, match="--format"):
        detect_format("a.txt")
    with pytest.raises(ConfigError, match="unknown format"):
        detect_format("a.csv", "xlsx")


def test_profile_build_unknown_extension_is_a_usage_error(tmp_path: Path) -> None:
    cfg = credit_config(tmp_path, profile=tmp_path / "unused.json", features=FEATURES)
    odd = tmp_path / "ref.data"
    odd.write_text("x\n")
    args = ["profile", "build", "-c", str(cfg), "--monitor", "credit", "--input", str(odd)]
    assert main([*args, "--out", str(tmp_path / "p.json")]) == 2
