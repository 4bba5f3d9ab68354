"""Layering of the Python API's modules (STYLE "Layout"): driftd.io sits beside config and
imports no stage; only driftd.api._engine reaches into the monitor and ingest stages; nothing
inside the package imports the public names of driftd/__init__.py; `import driftd` stays
light (the CLI imports it)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "driftd"
LOW = ("driftd.types", "driftd.errors", "driftd._version", "driftd.config", "driftd.io")


def imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            if node.module == "driftd":
                out.update(f"driftd.{a.name}" for a in node.names)
    return {m for m in out if m == "driftd" or m.startswith("driftd.")}


def test_io_imports_only_lower_layers() -> None:
    for path in (PKG / "io").glob("*.py"):
        bad = {m for m in imports(path) if not m.startswith(LOW)}
        assert not bad, (path.name, bad)


def test_only_the_adapter_reaches_into_the_engine() -> None:
    engine = ("driftd.monitor", "driftd.ingest", "driftd.runtime", "driftd.windows")
    for folder in ("api", "report"):
        for path in (PKG / folder).glob("*.py"):
            if path.name == "_engine.py":
                continue
            bad = {m for m in imports(path) if m.startswith(engine)}
            assert not bad, (path.name, bad)


def test_nothing_imports_the_public_api_module() -> None:
    """``from driftd import compare`` (or any name defined by driftd/__init__.py) inside the
    package would make every layer depend on the top; subpackages are fine."""
    public = {"compare", "Profile", "DriftReport", "FeatureResult", "report", "__version__"}
    for path in PKG.rglob("*.py"):
        if path == PKG / "__init__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "driftd" and node.level == 0:
                bad = {a.name for a in node.names} & public
                assert not bad, (str(path.relative_to(PKG)), bad)


def test_import_driftd_is_light() -> None:
    code = (
        "import sys, driftd; heavy = [m for m in ('numpy', 'pandas', 'polars', 'pyarrow',"
        " 'plotly', 'driftd.api', 'driftd.monitor') if m in sys.modules]; print(heavy);"
        " assert callable(driftd.report) and callable(driftd.compare)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
