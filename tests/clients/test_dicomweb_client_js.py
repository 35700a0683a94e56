"""The npm dicomweb-client (the JavaScript client OHIF is built on), driven from node.

A real server process; node runs dicomweb_client_check.mjs, which stores a CT pair and a
JPEG multi-frame instance, searches with wildcards, reads metadata and bulk data, and
retrieves frames in the client's default (``type="application/octet-stream"``: PS3.18 says
uncompressed), in the stored syntax, with ``transfer-syntax=*``, and rendered. This test
judges what came back. Without node or the npm packages it FAILS (scripts/test.sh runs
``npm ci``), so CI never passes without running it.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit, VLPhotographicImageStorage, generate_uid

from tests.support.builders import make_dataset, to_bytes
from tests.support.servers import ServerProcess

REPO = Path(__file__).resolve().parents[2]
CHECK_SCRIPT = REPO / "tests" / "clients" / "dicomweb_client_check.mjs"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
SIZE = 32


def _jpeg_frames() -> list[bytes]:
    frames = []
    for shift in range(3):
        y, x = np.mgrid[0:SIZE, 0:SIZE]
        rgb = np.stack([(x * 8 + shift * 40) % 256, (y * 8) % 256, ((x + y) * 4) % 256], axis=-1).astype(np.uint8)
        out = BytesIO()
        Image.fromarray(rgb).save(out, format="JPEG", quality=95)
        frames.append(out.getvalue())
    return frames


def _jpeg_instance(study: str, frames: list[bytes]) -> Dataset:
    ds = make_dataset(study=study, patient_id="NODE-1", patient_name="NODE^CLIENT", modality="XC")
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = VLPhotographicImageStorage
    ds.SeriesInstanceUID = generate_uid()
    ds.Rows = ds.Columns = SIZE
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "YBR_FULL_422", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.NumberOfFrames = len(frames)
    ds.PixelData = encapsulate(frames)
    ds["PixelData"].VR, ds["PixelData"].is_undefined_length = "OB", True
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    return ds


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict, Dataset, list[bytes]]]:
    missing = [what for what, ok in (("node", shutil.which("node") is not None),
                                     ("node_modules/dicomweb-client (npm ci)",
                                      (REPO / "node_modules" / "dicomweb-client").is_dir()),
                                     ("node_modules/xhr2 (npm ci)", (REPO / "node_modules" / "xhr2").is_dir()))
               if not ok]
    if missing:
        pytest.fail("the dicomweb-client test needs " + ", ".join(missing) + "; run scripts/test.sh")
    root = tmp_path_factory.mktemp("dicomweb-client-js")
    first = make_dataset(patient_id="NODE-1", patient_name="NODE^CLIENT")
    second = make_dataset(study=first.StudyInstanceUID, series=first.SeriesInstanceUID, patient_id="NODE-1",
                          patient_name="NODE^CLIENT", instance_number=2)
    frames = _jpeg_frames()
    jpeg = _jpeg_instance(first.StudyInstanceUID, frames)
    files = []
    for number, ds in enumerate((first, second, jpeg)):
        path = root / f"{number}.dcm"
        path.write_bytes(to_bytes(ds))
        files.append(str(path))
    manifest = root / "manifest.json"
    manifest.write_text(json.dumps({
        "files": files, "study": jpeg.StudyInstanceUID, "series": jpeg.SeriesInstanceUID, "sop": jpeg.SOPInstanceUID,
        "storedSyntax": JPEGBaseline8Bit, "storedMediaType": "image/jpeg",
        "patientName": "NODE^CLI*", "patientId": "NODE-?",
    }))
    server = ServerProcess(root / "data")
    try:
        result = subprocess.run(["node", str(CHECK_SCRIPT), "--url", server.root, "--manifest", str(manifest)],
                                capture_output=True, text=True, timeout=120, cwd=REPO)
    finally:
        server.stop()
    assert result.returncode == 0, f"{result.stderr}\n{result.stdout}"
    yield json.loads(result.stdout), jpeg, frames


def _pixels(part: dict) -> bytes:
    return base64.b64decode(part["base64"])


def test_store_and_wildcard_searches(report: tuple[dict, Dataset, list[bytes]]) -> None:
    found, jpeg, _ = report
    assert found["studiesByName"] == [jpeg.StudyInstanceUID]
    assert found["studiesById"] == [jpeg.StudyInstanceUID]
    assert len(found["series"]) == 2 and jpeg.SeriesInstanceUID in found["series"]
    assert found["instances"] == [jpeg.SOPInstanceUID]


def test_metadata_and_its_bulk_data_uri(report: tuple[dict, Dataset, list[bytes]]) -> None:
    found, _, frames = report
    assert found["metadata"]["rows"] == SIZE and found["metadata"]["frames"] == len(frames)
    assert "/bulkdata/" in found["metadata"]["pixelDataURI"]
    assert sum(part["length"] for part in found["bulkData"]) == SIZE * SIZE * 3 * len(frames)


def test_default_frames_are_uncompressed(report: tuple[dict, Dataset, list[bytes]]) -> None:
    found, _, frames = report
    assert len(found["framesDefault"]) == 2
    for part, jpeg_frame in zip(found["framesDefault"], frames, strict=False):
        assert part["contentType"].startswith("application/octet-stream")
        assert part["transferSyntaxUID"] == EXPLICIT_LE
        assert part["length"] == SIZE * SIZE * 3
        decoded = np.asarray(Image.open(BytesIO(jpeg_frame)).convert("RGB"), dtype=np.int16)
        received = np.frombuffer(_pixels(part), dtype=np.uint8).reshape(SIZE, SIZE, 3).astype(np.int16)
        assert np.abs(decoded - received).mean() < 3  # decoders differ by rounding only


def test_frames_in_the_stored_syntax_are_the_stored_bytes(report: tuple[dict, Dataset, list[bytes]]) -> None:
    found, _, frames = report
    (stored,) = found["framesStored"]
    assert stored["contentType"].startswith("image/jpeg")
    assert stored["transferSyntaxUID"] == JPEGBaseline8Bit
    assert _pixels(stored) == _padded(frames[1])
    (any_syntax,) = found["framesAnySyntax"]
    assert any_syntax["transferSyntaxUID"] == JPEGBaseline8Bit
    assert _pixels(any_syntax) == _padded(frames[0])


def test_rendered_frame(report: tuple[dict, Dataset, list[bytes]]) -> None:
    found, _, _ = report
    data = _pixels(found["renderedFrame"])
    assert data[:8] == b"\x89PNG\r\n\x1a\n", (found["renderedFrame"]["length"], data[:40])
    image = Image.open(BytesIO(data))
    assert image.format == "PNG" and image.size == (SIZE, SIZE)


def _padded(frame: bytes) -> bytes:
    """A fragment as stored: DICOM pads odd lengths to even (PS3.5 A.4)."""
    return frame + b"\x00" * (len(frame) % 2)
