"""docs/img/report.png: the HTML report of a demo-like run, screenshotted in headless Chromium.

The run is `make demo`'s story without Kafka: the demo config (config/demo.yaml), a reference
profile from 20,000 events of v1, then 15,000 events of v1 and 15,000 of v2 (the bad update:
scores shifted, and — so that a feature drifts too — incomes 15 % higher) through
`driftd replay`; `driftd report` draws the replay output with the profile and the replay input.

    python scripts/report_screenshot.py --out docs/img/report.png [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from chromium import Chromium  # noqa: E402  (tests/chromium.py)

from driftd.cli import main as driftd  # noqa: E402
from driftd.demo.credit import generate  # noqa: E402


def write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def run(work: Path) -> Path:
    os.environ.setdefault("DRIFTD_WEBHOOK_SECRET", "demo")  # replay sends no webhook
    cfg = yaml.safe_load((ROOT / "config/demo.yaml").read_text())
    cfg["monitors"][0]["reference"]["path"] = str(work / "credit-profile.json")
    cfg["state"]["dir"] = str(work / "state")
    config = work / "demo.yaml"
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    ref = write(work / "reference.jsonl", list(generate(20_000, version="v1", seed=1)))
    profile = work / "credit-profile.json"
    args = ["profile", "build", "-c", str(config), "--monitor", "credit", "--input", str(ref)]
    assert driftd([*args, "--out", str(profile)]) == 0
    v1 = list(generate(15_000, version="v1", seed=2))
    v2 = generate(15_000, version="v2", seed=3, score_shift=1.0, income_shift=0.15)
    events = write(work / "events.jsonl", v1 + list(v2))
    replay = work / "replay.jsonl"
    assert driftd(["replay", "-c", str(config), str(events), "--out", str(replay)]) == 0
    page = work / "report.html"
    args = ["report", "--replay", str(replay), "-c", str(config), "--events", str(events)]
    assert driftd([*args, "--out", str(page), "--title", "driftd report — demo run"]) == 0
    return page


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=str(ROOT / "docs/img/report.png"))
    ap.add_argument("--height", type=int, default=2300, help="pixels from the top of the page")
    ap.add_argument("--keep", help="work in this directory and keep it (the report included)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(a.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        page = run(work)
        with Chromium() as browser:
            browser.open(page)
            browser.wait_for("document.body && document.body.dataset.plotsDrawn")
            browser.screenshot(Path(a.out), max_height=a.height)
            errors = browser.console_errors()
        if errors:
            raise SystemExit(f"console errors: {errors}")
    print(f"{a.out} <- {page}")


if __name__ == "__main__":
    main()
