"""ez-wsi-dicomweb (Google's whole-slide library) opens and reads our slides the ordinary way.

A small synthetic JPEG pyramid (dicomweb/demo/wsi_generate.py) is stored by STOW in a real server
process; ``ezwsi_check.py`` then runs in ez-wsi's own virtual environment (.venv-ezwsi, made
by tests/clients/setup_ezwsi.sh: its dependencies conflict with wsidicom's), opens a
``DicomSlide`` from the series path (QIDO asking for ez-wsi's 37 attributes, then frames)
and reads every tile of every level as a patch. Each patch must equal the source tile.

Without .venv-ezwsi the test FAILS (it does not skip), so CI shows the gap.
"""

from __future__ import annotations

import subprocess
from io import BytesIO
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.encaps import generate_frames

from dicomweb.demo.wsi_generate import generate_pyramid
from tests.support.servers import ServerProcess

REPO = Path(__file__).resolve().parents[2]
EZWSI_PYTHON = REPO / ".venv-ezwsi" / "bin" / "python"
CHECK_SCRIPT = REPO / "tests" / "clients" / "ezwsi_check.py"
TILE = 256


def _source_tiles(path: Path) -> dict[tuple[int, int], np.ndarray]:
    """Each tile of one level file, decoded, cut to the image (edge tiles are padded)."""
    ds = pydicom.dcmread(path)
    width, height = int(ds.TotalPixelMatrixColumns), int(ds.TotalPixelMatrixRows)
    per_row = -(-width // TILE)
    tiles = {}
    for number, frame in enumerate(generate_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames))):
        x, y = (number % per_row) * TILE, (number // per_row) * TILE
        tiles[(x, y)] = np.asarray(Image.open(BytesIO(frame)).convert("RGB"))[: height - y, : width - x]
    return tiles


def test_ezwsi_reads_every_tile_of_every_level(tmp_path: Path) -> None:
    if not EZWSI_PYTHON.exists():
        pytest.fail("the ez-wsi test needs .venv-ezwsi: run tests/clients/setup_ezwsi.sh (scripts/test.sh does)")
    paths = generate_pyramid(tmp_path / "slide", width=1024, height=768, tile=TILE, levels=3, codec="jpeg",
                             workers=1)
    header = pydicom.dcmread(paths[0], stop_before_pixels=True)
    server = ServerProcess(tmp_path / "data")
    try:
        with httpx.Client(timeout=60) as http:
            for path in paths:
                response = http.post(f"{server.root}/studies", content=path.read_bytes(),
                                     headers={"Content-Type": "application/dicom"})
                assert response.status_code == 200, response.text
        series = f"{server.root}/studies/{header.StudyInstanceUID}/series/{header.SeriesInstanceUID}"
        result = subprocess.run([str(EZWSI_PYTHON), str(CHECK_SCRIPT), series, str(tmp_path / "patches.npz")],
                                capture_output=True, text=True, timeout=300)
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr[-4000:]
    patches = np.load(tmp_path / "patches.npz")
    for level, path in enumerate(paths, start=1):  # ez-wsi numbers levels from 1
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert list(patches[f"size_{level}"]) == [ds.TotalPixelMatrixColumns, ds.TotalPixelMatrixRows, TILE, TILE]
        for (x, y), tile in _source_tiles(path).items():
            patch = patches[f"patch_{level}_{x}_{y}"]
            assert patch.shape == tile.shape, (level, x, y)
            assert np.array_equal(patch, tile), (level, x, y)
