"""docs/tutorial.md is a notebook in Markdown: its ```python cells run, in order, in one
namespace, in a fresh directory; a ```yaml cell with a title="FILE" is written to FILE there
first (so the config the page shows is the config its code loads)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[2] / "docs" / "tutorial.md"
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```\s*$", re.S | re.M)


def cells(text: str) -> list[tuple[str, str, str]]:
    return [(m.group(1), m.group(2).strip(), m.group(3)) for m in FENCE.finditer(text)]


def test_tutorial_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    found = cells(PAGE.read_text())
    assert sum(1 for lang, _, _ in found if lang == "python") >= 8
    namespace: dict[str, object] = {"__name__": "__tutorial__"}
    for i, (lang, info, body) in enumerate(found):
        if lang == "yaml":
            title = re.search(r'title="([^"]+)"', info)
            if title:
                (tmp_path / title.group(1)).write_text(body)
        elif lang == "python":
            code = compile(body, f"{PAGE.name} cell {i}", "exec")
            exec(code, namespace)  # noqa: S102 - the page's own code
    # what the page promises it leaves behind
    for name in ("report.html", "reference.parquet", "credit-profile.json", "driftd.yaml"):
        assert (tmp_path / name).is_file(), name
    assert (PAGE.parent / "img" / "report.png").is_file()
