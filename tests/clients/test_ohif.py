"""The built-in viewer: the server's start page and the OHIF viewer it serves at /viewer/, in a
real browser, over the demo set (``dicomweb demo``).

A headless Debian chromium, driven by ``ohif_check.mjs`` through playwright-core, opens the
start page (its study list shows the demo studies), opens the CT from there in OHIF's basic
viewer, then OHIF's own study list, and the whole-slide image in the microscopy viewer (zooming
in fetches tiles of the full-resolution level); it takes a screenshot of each, judged here. The
viewer is the server's own (same origin: no CORS), installed by ``scripts/fetch_viewer.sh``.

This test fails, rather than skips, when chromium, node, playwright-core or the viewer are
missing: ``scripts/test.sh`` installs them (``npm ci``, ``tests/clients/setup_browser.sh``), and
a silent skip would let CI pass without ever running a viewer. The viewer is fetched here too
when missing, so plain ``pytest`` works.

Screenshots and the request log are kept under pytest's temporary directory (the path is
printed, and they stay there when the test fails); set OHIF_CHECK_OUT to keep them elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
from PIL import Image

from dicomweb.demo.samples import CT, MR, SLIDE
from tests.support.servers import ServerProcess
from tests.support.viewer import install_viewer

REPO = Path(__file__).resolve().parents[2]
CHECK_SCRIPT = Path(__file__).with_name("ohif_check.mjs")
CHROMIUM = os.environ.get("OHIF_CHROMIUM", "/usr/bin/chromium")
# The whole browser run (five pages, a zoom, screenshots): ~40 s on 2 cores.
CHECK_TIMEOUT_S = 180


@dataclass
class Studies:
    ct_study: str
    ct_series: str
    slide_study: str
    slide_series: str
    slide_levels: list[str]  # SOP Instance UIDs, level 0 (full resolution) first


def _missing_prerequisites() -> list[str]:
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    if shutil.which("node") is None:
        missing.append("node")
    if not (REPO / "node_modules" / "playwright-core" / "package.json").exists():
        missing.append("node_modules/playwright-core (npm ci)")
    return missing


@pytest.fixture(scope="module")
def dicomweb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    missing = _missing_prerequisites()
    if missing:
        pytest.fail("the viewer browser test needs " + ", ".join(missing) + "; run scripts/test.sh")
    viewer = install_viewer()
    data = tmp_path_factory.mktemp("viewer") / "server-data"
    # The README's second command, as a user runs it.
    demo = subprocess.run([sys.executable, "-m", "dicomweb", "demo", "--data", str(data)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    server = ServerProcess(data, env={"DICOMWEB_VIEWER_DIR": str(viewer)})
    yield server
    server.stop()


def _series_of(http: httpx.Client, root: str, study: str) -> str:
    (series,) = http.get(f"{root}/studies/{study}/series").json()
    return series["0020000E"]["Value"][0]


@pytest.fixture(scope="module")
def studies(dicomweb: ServerProcess) -> Studies:
    """Where the demo put its CT and its slide (the slide's series UIDs are drawn at random)."""
    with httpx.Client(timeout=30) as http:
        slide_series = _series_of(http, dicomweb.root, SLIDE.study_uid)
        levels = http.get(f"{dicomweb.root}/studies/{SLIDE.study_uid}/instances").json()
        ct_series = _series_of(http, dicomweb.root, CT.study_uid)
    # The full-resolution level has the most tiles (frames).
    by_width = sorted(levels, key=lambda level: -int(level["00280008"]["Value"][0]))
    return Studies(CT.study_uid, ct_series, SLIDE.study_uid, slide_series,
                   [level["00080018"]["Value"][0] for level in by_width])


def _fraction(mask: np.ndarray) -> float:
    return float(mask.sum()) / mask.size if mask.size else 0.0


def _tissue_fraction(screenshot: Path) -> float:
    """Share of H&E-coloured pixels: pink (eosin) and purple (haematoxylin) have red and blue
    well above green; OHIF's own dark blue-grey UI has almost none."""
    image = np.asarray(Image.open(screenshot).convert("RGB")).astype(np.int16)
    red, green, blue = image[..., 0], image[..., 1], image[..., 2]
    return _fraction((red - green > 30) & (blue - green > 10) & (red > 100))


def _grey_fraction(screenshot: Path) -> float:
    """Share of mid-to-bright grey pixels: a CT slice; the UI is black, dark blue or blue."""
    image = np.asarray(Image.open(screenshot).convert("RGB")).astype(np.int16)
    return _fraction((image.max(axis=2) - image.min(axis=2) < 12) & (image.mean(axis=2) > 60))


def _summary(requests: list[dict]) -> str:
    """Requests by kind and status, e.g. ``frames 200×51, metadata 200×3``."""
    counts: dict[tuple[str, object], int] = {}
    for r in requests:
        path = urlsplit(r["url"]).path
        last = path.rsplit("/", 1)[-1]
        kind = "frames" if "/frames/" in path else last if last in {"metadata", "series", "studies"} else "other"
        key = (kind, r["status"] if r["status"] else r.get("failure"))
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{kind} {status}×{n}" for (kind, status), n in sorted(counts.items(), key=str))


def check_run(out: Path, studies: Studies) -> dict:
    """Judge what ohif_check.mjs left in ``out``; returns the report. Shared with manual runs."""
    report = json.loads((out / "report.json").read_text())
    steps = {step["name"]: step for step in report["steps"]}
    assert report["error"] is None and all(step["ok"] for step in steps.values()), report["error"]

    requests = report["requests"]
    print(f"DICOMweb requests from the browser: {_summary(requests)}")
    # A request the page itself cancelled (net::ERR_ABORTED: a tile no longer in view) got no
    # answer to judge; every other one must have been answered 2xx.
    failed = [(r["method"], r["url"], r["accept"], r["status"], r.get("failure")) for r in requests
              if not 200 <= (r["status"] or 0) < 300 and r.get("failure") != "net::ERR_ABORTED"]
    assert not failed, f"DICOMweb requests not answered 2xx: {failed}"
    answered = [r for r in requests if r["status"] == 200]
    assert any(urlsplit(r["url"]).path.endswith("/v1/studies") for r in answered), "the start page listed no studies"
    ct_frames = [r for r in answered if studies.ct_series in r["url"] and "/frames/" in r["url"]]
    assert ct_frames, "the basic viewer asked for no CT frames"
    tiles = [r for r in answered if studies.slide_series in r["url"] and "/frames/" in r["url"]]
    base_tiles = [r for r in tiles if f"/instances/{studies.slide_levels[0]}/" in r["url"]]
    assert len(tiles) >= 4, f"the microscopy viewer asked for {len(tiles)} tiles"
    assert base_tiles, "zooming in did not fetch tiles of the full-resolution level"

    # ohif_check.mjs waited for every demo study's row, on the start page and in OHIF's list.
    assert steps["landing-page"]["screenshot"] and steps["study-list"]["screenshot"]
    assert _grey_fraction(out / "ct.png") > 0.2, "no CT image in the viewer screenshot"
    # Whole slide in view: ~0.15 of the screen is tissue; with tiles missing it drops below 0.1.
    assert _tissue_fraction(out / "slide.png") > 0.1, "no tissue in the microscopy screenshot"
    assert _tissue_fraction(out / "slide-zoomed.png") > 0.3, "no tissue in the zoomed microscopy screenshot"
    return report


def test_start_page_and_viewer_show_the_demo_ct_and_slide(dicomweb: ServerProcess, studies: Studies,
                                                          tmp_path: Path) -> None:
    origin = dicomweb.root.removesuffix("/v1")
    out = Path(os.environ.get("OHIF_CHECK_OUT") or tmp_path / "ohif")
    out.mkdir(parents=True, exist_ok=True)
    command = ["node", str(CHECK_SCRIPT), "--app", f"{origin}/viewer", "--landing", f"{origin}/",
               "--dicomweb", dicomweb.root, "--ct-study", studies.ct_study, "--slide-study", studies.slide_study,
               "--chromium", CHROMIUM, "--out", str(out)]
    for study in (CT, MR, SLIDE):
        command += ["--expect", study.description]
    started = time.monotonic()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=CHECK_TIMEOUT_S)
    print(f"ohif_check.mjs: {time.monotonic() - started:.1f} s; screenshots and report.json in {out}")
    # A crashed server shows up in the browser only as refused connections; say so plainly.
    assert dicomweb.process.poll() is None, (
        f"the DICOMweb server died during the run (exit {dicomweb.process.poll()}); the last requests it was sent "
        f"are at the end of {out / 'report.json'}")
    assert (out / "report.json").exists(), f"ohif_check.mjs wrote no report:\n{result.stdout}\n{result.stderr}"
    check_run(out, studies)
    assert result.returncode == 0, result.stderr[-4000:]
