"""The OHIF viewer (the prebuilt ``dist/`` of the npm package @ohif/app) against the server.

A headless Debian chromium, driven by ``ohif_check.mjs`` through playwright-core, opens the
study list, a CT series in the basic viewer and a whole-slide pyramid in the microscopy viewer,
and takes a screenshot of each. The viewer is served from its own origin by a small static
server here, so every DICOMweb request is cross-origin and goes through the server's CORS.

This test fails, rather than skips, when chromium, node, playwright-core or the OHIF bundle are
missing: ``scripts/test.sh`` installs them (``npm ci``, then ``tests/clients/setup_browser.sh``:
apt ``chromium`` and ``fetch_ohif.sh``), and a silent skip would let CI pass without ever running
a viewer. The OHIF bundle is fetched here too when missing, so plain ``pytest`` works.

Screenshots and the request log are kept under pytest's temporary directory (the path is
printed); set OHIF_CHECK_OUT to keep them somewhere else.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import pydicom
import pydicom.data
import pytest
from PIL import Image
from pydicom.uid import generate_uid

from dicomweb.demo.wsi_generate import generate_pyramid
from tests.support.servers import ServerProcess, free_port

REPO = Path(__file__).resolve().parents[2]
CHECK_SCRIPT = Path(__file__).with_name("ohif_check.mjs")
FETCH_SCRIPT = Path(__file__).with_name("fetch_ohif.sh")
CHROMIUM = os.environ.get("OHIF_CHROMIUM", "/usr/bin/chromium")
# The whole browser run (three pages, a zoom, screenshots): ~35 s on 2 cores.
CHECK_TIMEOUT_S = 180
CT_SLICES = 5
CT_DESCRIPTION = "OHIF check CT"
SLIDE_DESCRIPTION = "Synthetic whole slide image"  # what dicomweb/demo/wsi_generate.py writes


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


def _ohif_dist() -> Path:
    """The unpacked OHIF bundle; fetched here too, so plain ``pytest`` works like test.sh."""
    result = subprocess.run(["bash", str(FETCH_SCRIPT)], cwd=REPO, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        pytest.fail(f"could not fetch the OHIF bundle: {result.stderr.strip()}")
    return REPO / result.stdout.strip().splitlines()[-1]


def _app_config(dicomweb_root: str) -> bytes:
    """OHIF's runtime configuration: one DICOMweb data source, our server, nothing else."""
    source = {
        "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
        "sourceName": "dicomweb",
        "configuration": {
            "friendlyName": "dicomweb-server under test",
            "name": "dicomweb-server",
            "wadoUriRoot": dicomweb_root,
            "qidoRoot": dicomweb_root,
            "wadoRoot": dicomweb_root,
            "qidoSupportsIncludeField": True,
            "imageRendering": "wadors",
            "thumbnailRendering": "wadors",
            "enableStudyLazyLoad": True,
            "supportsFuzzyMatching": False,
            "supportsWildcard": True,
            "omitQuotationForMultipartRequest": True,
            "bulkDataURI": {"enabled": True},
        },
    }
    config = {
        "routerBasename": "/",
        "extensions": [],
        "modes": [],
        "showStudyList": True,
        "maxNumberOfWebWorkers": 2,
        # The check reads the screen; banners about CPU rendering or cross-origin isolation
        # would only cover it.
        "showWarningMessageForCrossOrigin": False,
        "showCPUFallbackMessage": False,
        "showLoadingIndicator": True,
        "investigationalUseDialog": {"option": "never"},
        "defaultDataSourceName": "dicomweb",
        "dataSources": [source],
    }
    return f"window.config = {json.dumps(config, indent=2)};\n".encode()


class _AppHandler(SimpleHTTPRequestHandler):
    """Serves the OHIF bundle, our app-config.js, and index.html for the app's own routes
    (/viewer, /microscopy...), as a single-page app needs."""

    config: bytes = b""
    log: list[tuple[str, int]]

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = urlsplit(self.path).path
        if path == "/app-config.js":
            self._send_bytes(self.config, "text/javascript")
            return
        if path != "/" and not Path(self.translate_path(path)).is_file():
            self.path = "/index.html"
        super().do_GET()

    def _send_bytes(self, body: bytes, content_type: str) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self.log.append((self.requestline, int(code) if str(code).isdigit() else 0))

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
        pass  # keep pytest's output clean; requests are kept in ``log`` instead


@pytest.fixture(scope="module")
def app_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def dicomweb(tmp_path_factory: pytest.TempPathFactory, app_port: int) -> Iterator[ServerProcess]:
    # Exactly the viewer's origin, not "*": that is how a deployment would configure it.
    server = ServerProcess(tmp_path_factory.mktemp("ohif") / "server-data",
                           env={"DICOMWEB_CORS_ORIGINS": f"http://127.0.0.1:{app_port}"})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def studies(dicomweb: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Studies:
    """A few CT slices (pydicom's CT_small.dcm restacked as a series) and a 3-level slide."""
    folder = tmp_path_factory.mktemp("ohif-data")
    payloads: list[bytes] = []
    ct_study, ct_series = generate_uid(), generate_uid()
    source = Path(pydicom.data.get_testdata_file("CT_small.dcm"))
    for index in range(CT_SLICES):
        ds = pydicom.dcmread(source)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = ct_study, ct_series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.PatientID, ds.PatientName = "OHIF-CT-1", "Check^CT"
        ds.StudyDescription, ds.SeriesDescription = CT_DESCRIPTION, "five slices"
        ds.InstanceNumber = index + 1
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y, z + index * float(ds.SliceThickness)]
        ds.SliceLocation = z + index * float(ds.SliceThickness)
        path = folder / f"ct-{index}.dcm"
        ds.save_as(path, enforce_file_format=True)
        payloads.append(path.read_bytes())
    # 4096×3072 in three levels: the viewer fits the 1024×768 level on screen first, and the
    # zoom step needs the 192 tiles of the base level.
    slide_paths = generate_pyramid(folder / "slide", width=4096, height=3072, tile=256, levels=3, codec="jpeg",
                                   workers=2, patient_id="OHIF-SM-1")
    payloads += [path.read_bytes() for path in slide_paths]
    headers = [pydicom.dcmread(path, stop_before_pixels=True) for path in slide_paths]
    with httpx.Client(timeout=120) as http:
        for payload in payloads:
            response = http.post(f"{dicomweb.root}/studies", content=payload,
                                 headers={"Content-Type": "application/dicom", "Accept": "application/dicom+json"})
            assert response.status_code == 200, response.text
    return Studies(ct_study, ct_series, headers[0].StudyInstanceUID, headers[0].SeriesInstanceUID,
                   [str(header.SOPInstanceUID) for header in headers])


@pytest.fixture(scope="module")
def viewer(app_port: int, dicomweb: ServerProcess) -> Iterator[tuple[str, list[tuple[str, int]]]]:
    """The OHIF app on http://127.0.0.1:{app_port}/ and the static server's request log."""
    missing = _missing_prerequisites()
    if missing:
        pytest.fail("the OHIF browser test needs " + ", ".join(missing) + "; run scripts/test.sh")
    dist = _ohif_dist()
    log: list[tuple[str, int]] = []
    handler = type("AppHandler", (_AppHandler,), {"config": _app_config(dicomweb.root), "log": log})
    httpd = ThreadingHTTPServer(("127.0.0.1", app_port), functools.partial(handler, directory=str(dist)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{app_port}", log
    httpd.shutdown()
    httpd.server_close()


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
    print(f"DICOMweb requests from the viewer: {_summary(requests)}")
    # A request the page itself cancelled (net::ERR_ABORTED: a tile no longer in view) got no
    # answer to judge; every other one must have been answered 200.
    failed = [(r["method"], r["url"], r["accept"], r["status"], r.get("failure")) for r in requests
              if r["status"] != 200 and r.get("failure") != "net::ERR_ABORTED"]
    assert not failed, f"DICOMweb requests not answered 200: {failed}"
    answered = [r for r in requests if r["status"] == 200]
    ct_frames = [r for r in answered if studies.ct_series in r["url"] and "/frames/" in r["url"]]
    assert ct_frames, "the basic viewer asked for no CT frames"
    tiles = [r for r in answered if studies.slide_series in r["url"] and "/frames/" in r["url"]]
    base_tiles = [r for r in tiles if f"/instances/{studies.slide_levels[0]}/" in r["url"]]
    assert len(tiles) >= 4, f"the microscopy viewer asked for {len(tiles)} tiles"
    assert base_tiles, "zooming in did not fetch tiles of the full-resolution level"

    assert steps["study-list"]["screenshot"]  # ohif_check.mjs waited for both studies' rows
    assert _grey_fraction(out / "ct.png") > 0.2, "no CT image in the viewer screenshot"
    # Whole slide in view: ~0.15 of the screen is tissue; with tiles missing it drops below 0.1.
    assert _tissue_fraction(out / "slide.png") > 0.12, "no tissue in the microscopy screenshot"
    assert _tissue_fraction(out / "slide-zoomed.png") > 0.3, "no tissue in the zoomed microscopy screenshot"
    return report


def test_ohif_lists_studies_and_shows_ct_and_slide(viewer: tuple[str, list[tuple[str, int]]], dicomweb: ServerProcess,
                                                   studies: Studies, tmp_path: Path) -> None:
    app_url, static_log = viewer
    out = Path(os.environ.get("OHIF_CHECK_OUT") or tmp_path / "ohif")
    out.mkdir(parents=True, exist_ok=True)
    command = ["node", str(CHECK_SCRIPT), "--app", app_url, "--dicomweb", dicomweb.root,
               "--ct-study", studies.ct_study, "--slide-study", studies.slide_study,
               "--expect", CT_DESCRIPTION, "--expect", SLIDE_DESCRIPTION,
               "--chromium", CHROMIUM, "--out", str(out)]
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
    assert not [line for line, status in static_log if status >= 400 and "favicon" not in line], static_log
