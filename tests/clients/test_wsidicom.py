"""wsidicom, a real whole-slide client, reads slides over DICOMweb exactly as from the files.

Small synthetic pyramids (dicomweb/demo/wsi_generate.py) are stored by STOW, opened with
``WsiDicom.open_web`` (which goes through dicomweb-client: QIDO for the instances, their
metadata, then batched frame requests like ``frames/1,2,...,48``) and compared with
``WsiDicom.open`` on the original files: whole levels and an off-grid region, at every level.

When the client receives the stored encoding (same decoder on both sides) the pixels must be
identical. When wsidicom's default transfer-syntax preference makes the server transcode
(it asks ``image/jpeg`` first), the pixels can only be close.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pytest
import requests
from pydicom.uid import JPEG2000, UID, ExplicitVRLittleEndian, JPEGBaseline8Bit
from wsidicom import WsiDicom, WsiDicomWebClient

from dicomweb.demo.wsi_generate import generate_pyramid
from tests.support.servers import ServerProcess

# Level 0 spans 8×6 tiles of 256, so a whole-level read asks for 48 frames in one request.
SLIDES = {
    "jpeg": {"width": 2048, "height": 1536},
    "native": {"width": 2048, "height": 1536},
    # JPEG 2000 encoding is the slow part of generation; a smaller slide covers the same paths.
    "jpeg2000": {"width": 1024, "height": 768},
}
# Mean absolute difference allowed when the server transcoded to baseline JPEG (quality 90): up to
# ~3.3 is seen on tissue when the source was already lossy JPEG 2000; a wrong colour transform is ~60.
TRANSCODED_MEAN_TOLERANCE = 8.0


@dataclass
class Slide:
    folder: Path
    study_uid: str
    series_uid: str
    transfer_syntax: UID


class RecordingSession(requests.Session):
    """A requests session that remembers every request wsidicom made and its status."""

    def __init__(self) -> None:
        super().__init__()
        self.exchanges: list[tuple[str, str, str, int]] = []  # method, URL, Accept, status
        self.hooks["response"].append(self._record)

    def _record(self, response: requests.Response, *args: object, **kwargs: object) -> None:
        request = response.request
        self.exchanges.append((str(request.method), str(response.url), str(request.headers.get("Accept", "")),
                               response.status_code))


class BytesFramesClient(WsiDicomWebClient):
    """Works around a client-side bug: dicomweb-client (0.61) yields each multipart part as a
    ``bytearray``; wsidicom's pydicom decoder (used for native frames) assigns it to
    ``PixelData``, and pydicom turns a bytearray into a list of ints, so decoding fails with
    "a bytes-like object is required, not 'list'". Encapsulated frames are re-wrapped by
    wsidicom and are not affected. This changes nothing on the wire."""

    def get_frames(self, *args: object, **kwargs: object) -> Iterator[bytes]:
        return (bytes(frame) for frame in super().get_frames(*args, **kwargs))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, dict[str, Slide]]]:
    root = tmp_path_factory.mktemp("wsidicom")
    server = ServerProcess(root / "server-data")
    try:
        slides: dict[str, Slide] = {}
        headers = {"Content-Type": "application/dicom", "Accept": "application/dicom+json"}
        with httpx.Client(timeout=120) as http:
            for codec, size in SLIDES.items():
                folder = root / codec
                paths = generate_pyramid(folder, tile=256, levels=3, codec=codec, workers=2, **size)
                for path in paths:
                    response = http.post(f"{server.root}/studies", content=path.read_bytes(), headers=headers)
                    assert response.status_code == 200, response.text
                header = pydicom.dcmread(paths[0], stop_before_pixels=True)
                slides[codec] = Slide(folder, header.StudyInstanceUID, header.SeriesInstanceUID,
                                      header.file_meta.TransferSyntaxUID)
        yield server, slides
    finally:
        server.stop()


def _open_web(server: ServerProcess, slide: Slide, transfer_syntax: UID | None,
              client_class: type[WsiDicomWebClient] = WsiDicomWebClient) -> tuple[WsiDicom, RecordingSession]:
    session = RecordingSession()
    client = client_class.create_client(server.root, auth=session)
    with warnings.catch_warnings():
        # Dataset.from_json warns that Pixel Data is a BulkDataURI it will not fetch: wsidicom
        # reads pixels by frame, so that is the expected shape of the metadata.
        warnings.filterwarnings("ignore", message="No bulk data URI handler")
        web = WsiDicom.open_web(client, slide.study_uid, slide.series_uid, requested_transfer_syntax=transfer_syntax)
    return web, session


def _compare_levels(web: WsiDicom, local: WsiDicom) -> list[tuple[int, str, float]]:
    """Per level and region: (level, region, mean absolute difference); asserts shapes match."""
    assert [level.size for level in web.levels] == [level.size for level in local.levels]
    results: list[tuple[int, str, float]] = []
    for web_level, local_level in zip(web.levels, local.levels, strict=True):
        width, height = web_level.size.to_tuple()
        # The whole level, and a region that starts and ends inside tiles (it is stitched from
        # parts of several frames, so a frame returned out of order or offset would show).
        regions = {"whole": ((0, 0), (width, height)),
                   "off-grid": ((width // 7 + 3, height // 5 + 1), (width // 2 + 1, height // 2 + 5))}
        for name, (origin, size) in regions.items():
            web_pixels = np.asarray(web.read_region(origin, web_level.level, size))
            local_pixels = np.asarray(local.read_region(origin, local_level.level, size))
            assert web_pixels.shape == local_pixels.shape == (size[1], size[0], 3)
            difference = np.abs(web_pixels.astype(np.int16) - local_pixels.astype(np.int16))
            results.append((web_level.level, name, float(difference.mean())))
    return results


def _assert_all_answered(session: RecordingSession) -> None:
    failed = [exchange for exchange in session.exchanges if exchange[3] != 200]
    assert not failed, f"requests wsidicom made that were not answered 200: {failed}"
    assert any("/frames/" in url and "," in url.rsplit("/frames/", 1)[1] for _, url, _, _ in session.exchanges), \
        "wsidicom did not ask for a frame list; the batched path was not exercised"


@pytest.mark.parametrize(("codec", "transfer_syntax", "client_class"), [
    # wsidicom's default preference (JPEG baseline first) already matches what is stored.
    ("jpeg", None, WsiDicomWebClient),
    ("jpeg", JPEGBaseline8Bit, WsiDicomWebClient),
    ("jpeg2000", JPEG2000, WsiDicomWebClient),
    ("native", ExplicitVRLittleEndian, BytesFramesClient),
])
def test_stored_encoding_reads_identically(stored: tuple[ServerProcess, dict[str, Slide]], codec: str,
                                           transfer_syntax: UID | None,
                                           client_class: type[WsiDicomWebClient]) -> None:
    server, slides = stored
    slide = slides[codec]
    web, session = _open_web(server, slide, transfer_syntax, client_class)
    with web, WsiDicom.open(slide.folder) as local:
        assert len(web.levels) == 3
        results = _compare_levels(web, local)
    assert all(mean == 0.0 for _, _, mean in results), results
    _assert_all_answered(session)
    # Every frame request asked for the stored encoding, so nothing was transcoded on the way.
    frame_accepts = {accept for _, url, accept, _ in session.exchanges if "/frames/" in url}
    assert frame_accepts and all(f"transfer-syntax={slide.transfer_syntax}" in accept for accept in frame_accepts), \
        frame_accepts


def test_transcoded_jpeg2000_is_close(stored: tuple[ServerProcess, dict[str, Slide]]) -> None:
    """wsidicom's default asks image/jpeg first; the server transcodes JPEG 2000 frames."""
    server, slides = stored
    slide = slides["jpeg2000"]
    web, session = _open_web(server, slide, None)
    with web, WsiDicom.open(slide.folder) as local:
        results = _compare_levels(web, local)
    assert all(mean < TRANSCODED_MEAN_TOLERANCE for _, _, mean in results), results
    _assert_all_answered(session)


def test_transcoded_native_rgb_is_close(stored: tuple[ServerProcess, dict[str, Slide]]) -> None:
    """wsidicom's default asks image/jpeg first; the server transcodes native RGB frames."""
    server, slides = stored
    slide = slides["native"]
    web, session = _open_web(server, slide, None)
    with web, WsiDicom.open(slide.folder) as local:
        results = _compare_levels(web, local)
    _assert_all_answered(session)
    assert all(mean < TRANSCODED_MEAN_TOLERANCE for _, _, mean in results), results
