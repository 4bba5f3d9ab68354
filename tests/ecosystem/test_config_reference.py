"""docs/config-reference.md is generated from the pydantic models (through
``driftd.config.json_schema()``, what ``driftd config-schema`` prints) and committed; it must be
up to date and complete."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from driftd.config import json_schema

SCRIPT = Path("scripts/gen_config_reference.py")
DOC = Path("docs/config-reference.md")


def test_committed_reference_is_up_to_date(repo: Path) -> None:
    res = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, (
        f"{DOC} is stale; regenerate it with `python {SCRIPT}`\n{res.stderr}"
    )


def test_reference_covers_every_model_and_key(repo: Path, tmp_path: Path) -> None:
    schema = json_schema()
    doc = (repo / DOC).read_text()
    sections = dict(re.findall(r"^## (\w+)\n(.*?)(?=^## |\Z)", doc, re.M | re.S))
    for name, model in schema["$defs"].items():
        assert name in sections, f"no section for {name}"
        for key in model.get("properties", {}):
            assert f"| `{key}`" in sections[name], f"{name}.{key} is not documented"
    for key in schema["properties"]:
        assert f"| `{key}`" in doc.split("\n## ", 2)[1], f"top-level {key} is not documented"
    # --check really compares: a stale file is reported
    stale = tmp_path / "config-reference.md"
    stale.write_text(doc.replace("`group_id`", "`groupid`"))
    res = subprocess.run(
        [sys.executable, str(SCRIPT), "--check", "--out", str(stale)],
        cwd=repo,
        capture_output=True,
        timeout=120,
    )
    assert res.returncode == 1
