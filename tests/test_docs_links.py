"""README and the documentation pages link only inside the repository: every relative link
resolves to a file (and a heading, for ``page.md#anchor``) of this repository, nothing climbs
out of it (the old ``../shared/docs/DESIGN.md``), and the only absolute URLs are the demo's own
services on localhost. Every page is in the site's nav, and the README stays a landing page."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = sorted([REPO / "README.md", *DOCS.rglob("*.md")])

_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|<(https?://[^>]+)>")
_IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")
_HREF = re.compile(r"""href=["']([^"']+)["']""")
_LOCAL_HOSTS = {"localhost", "127.0.0.1"}


def _without_code(text: str) -> str:
    text = re.sub(r"^(```|~~~).*?^\1", "", text, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", text)


def links(page: Path) -> list[str]:
    text = _without_code(page.read_text())
    found = [m.group(1) or m.group(2) for m in _LINK.finditer(text)]
    found += _IMAGE.findall(text) + _HREF.findall(text)
    return found


def anchors(page: Path) -> set[str]:
    """Heading ids as mkdocs (toc) and GitHub make them, plus explicit ``<a id>``s."""
    text = page.read_text()
    out = set(re.findall(r"""<a id=["']([^"']+)["']""", text))
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", _strip_fences(text), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.replace("`", "").strip().lower())
        out.add(re.sub(r"[ ]+", "-", slug))
        out.add(slug.replace(" ", "-"))
    return out


def _strip_fences(text: str) -> str:
    return re.sub(r"^(```|~~~).*?^\1", "", text, flags=re.M | re.S)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_links_stay_in_the_repository(page: Path) -> None:
    problems = []
    for target in links(page):
        parts = urlsplit(target)
        if parts.scheme or target.startswith("//"):
            if parts.scheme not in ("http", "https") or parts.hostname not in _LOCAL_HOSTS:
                problems.append(f"{target}: points outside the repository")
            continue
        if not parts.path:  # an anchor on the same page
            if parts.fragment and parts.fragment not in anchors(page):
                problems.append(f"{target}: no such heading on this page")
            continue
        resolved = (page.parent / unquote(parts.path)).resolve()
        if not resolved.is_relative_to(REPO):
            problems.append(f"{target}: climbs out of the repository")
            continue
        if not resolved.exists():
            problems.append(f"{target}: no such file")
            continue
        if parts.fragment and resolved.suffix == ".md":
            if parts.fragment not in anchors(resolved):
                problems.append(f"{target}: no heading #{parts.fragment} in {resolved.name}")
    assert problems == [], "\n".join(problems)


def test_checker_is_not_vacuous(tmp_path: Path) -> None:
    page = DOCS / "_probe.md"
    assert links(REPO / "README.md"), "README has no links at all?"
    text = "[a](../shared/docs/DESIGN.md) [b](https://example.com/x) `[c](nowhere.md)`"
    found = [m.group(1) or m.group(2) for m in _LINK.finditer(_without_code(text))]
    assert found == ["../shared/docs/DESIGN.md", "https://example.com/x"]
    resolved = (page.parent / "../../shared/docs/DESIGN.md").resolve()
    assert not resolved.is_relative_to(REPO)


def test_every_page_is_in_the_nav() -> None:
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())

    def files(node: object) -> list[str]:
        if isinstance(node, str):
            return [node]
        if isinstance(node, dict):
            return [f for v in node.values() for f in files(v)]
        if isinstance(node, list):
            return [f for v in node for f in files(v)]
        return []

    in_nav = set(files(config["nav"]))
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert pages == in_nav


def test_readme_is_a_landing_page() -> None:
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    for command in ("make demo", "make test"):
        assert command in text
    assert "../shared" not in text
    blocks = re.findall(r"^```yaml\n(.*?)^```", text, re.M | re.S)
    assert blocks and len(blocks[0].splitlines()) <= 30  # the example fits on a screen
