"""OHIF with a bearer token against the server with authentication on.

The token comes from the test OpenID provider (tests/support/oidc.py) and is handed to OHIF
the way its basic viewer accepts one, ``/viewer?StudyInstanceUIDs=...&token=<JWT>``; OHIF
then sends ``Authorization: Bearer`` with every DICOMweb request. The viewer is the server's
own (``/viewer/``, same origin). Without the token the same page gets 401s. Like
tests/clients/test_ohif.py, it fails rather than skips when
chromium, node or the OHIF bundle are missing (scripts/test.sh installs them).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pydicom.data
import pytest
from PIL import Image
from pydicom.uid import generate_uid

from tests.support.oidc import AUDIENCE, OidcProvider
from tests.support.servers import ServerProcess
from tests.support.viewer import install_viewer

REPO = Path(__file__).resolve().parents[2]
CHECK_SCRIPT = Path(__file__).with_name("ohif_token_check.mjs")
CHROMIUM = os.environ.get("OHIF_CHROMIUM", "/usr/bin/chromium")


def _viewer() -> Path:
    missing = [name for name, ok in [(CHROMIUM, Path(CHROMIUM).exists()), ("node", shutil.which("node")),
                                     ("playwright-core", (REPO / "node_modules" / "playwright-core").exists())]
               if not ok]
    if missing:
        pytest.fail(f"the OHIF token test needs {', '.join(missing)}; run scripts/test.sh")
    return install_viewer()


@pytest.fixture
def dicomweb(tmp_path: Path, oidc_provider: OidcProvider) -> Iterator[ServerProcess]:
    """The server with authentication on, serving its own viewer (same origin: no CORS)."""
    server = ServerProcess(tmp_path / "server-data", env={
        "DICOMWEB_AUTH_AUTHORITY": oidc_provider.issuer, "DICOMWEB_AUTH_AUDIENCE": AUDIENCE,
        "DICOMWEB_VIEWER_DIR": str(_viewer())})
    yield server
    server.stop()


@pytest.fixture
def app_url(dicomweb: ServerProcess) -> str:
    """Where the viewer's own routes start (its basic viewer is ``{app_url}/viewer``)."""
    return dicomweb.root.removesuffix("/v1") + "/viewer"


def _store_ct(root: str, token: str, folder: Path, slices: int = 3) -> str:
    study, series = generate_uid(), generate_uid()
    source = Path(pydicom.data.get_testdata_file("CT_small.dcm"))
    with httpx.Client(timeout=60, headers={"Authorization": f"Bearer {token}"}) as http:
        for index in range(slices):
            ds = pydicom.dcmread(source)
            ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            ds.InstanceNumber = index + 1
            x, y, z = (float(v) for v in ds.ImagePositionPatient)
            ds.ImagePositionPatient = [x, y, z + index * float(ds.SliceThickness)]
            path = folder / f"ct-{index}.dcm"
            ds.save_as(path, enforce_file_format=True)
            response = http.post(f"{root}/studies", content=path.read_bytes(),
                                 headers={"Content-Type": "application/dicom"})
            assert response.status_code == 200, response.text
    return study


def test_ohif_shows_a_ct_with_a_bearer_token_and_nothing_without(
        app_url: str, dicomweb: ServerProcess, oidc_provider: OidcProvider, tmp_path: Path) -> None:
    study = _store_ct(dicomweb.root, oidc_provider.token("writer"), tmp_path)
    out = tmp_path / "ohif-token"
    command = ["node", str(CHECK_SCRIPT), "--app", app_url, "--dicomweb", dicomweb.root, "--ct-study", study,
               "--token", oidc_provider.token("reader"), "--chromium", CHROMIUM, "--out", str(out)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=180)
    report = json.loads((out / "report.json").read_text())
    assert report["error"] is None and result.returncode == 0, report["error"] or result.stderr[-3000:]

    without = report["steps"]["without-token"]
    assert without and all(r["status"] == 401 and not r["bearer"] for r in without), without
    with_token = report["steps"]["with-token"]
    assert any("/frames/" in r["url"] for r in with_token)
    refused = [r for r in with_token if r["status"] != 200 or not r["bearer"]]
    assert refused == [], refused
    image = np.asarray(Image.open(out / "ct.png").convert("RGB")).astype(np.int16)
    grey = (image.max(axis=2) - image.min(axis=2) < 12) & (image.mean(axis=2) > 60)
    assert grey.mean() > 0.1, "no CT image in the viewer screenshot"
