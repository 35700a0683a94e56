"""A round trip with a real client (dicomweb-client) against the server on 127.0.0.1.

Stores pydicom's test corpus and pydicom-data's (multi-frame JPEG, RLE, JPEG-LS,
JPEG 2000), finds each instance by search, retrieves it byte-identical (asking for the
stored syntax, ``transfer-syntax=*``) and in the client's default (PS3.18: Explicit VR Little
Endian, lossy data as stored), and checks every frame of every multi-frame file equals the
frame pydicom extracts from the original.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import httpx
import pydicom
import pydicom.data
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom.encaps import generate_frames
from pydicom.uid import ExplicitVRLittleEndian

from dicomcore.uids import is_valid_uid
from dicomweb.api.wado.negotiate import LOSSY
from tests.support.builders import DICOM, make_dataset, multipart_body, parse_multipart
from tests.support.servers import ServerProcess

MULTIFRAME_MUST_STORE = {
    "emri_small.dcm", "emri_small_RLE.dcm", "emri_small_jpeg_ls_lossless.dcm",
    "emri_small_jpeg_2k_lossless.dcm", "examples_ybr_color.dcm", "color3d_jpeg_baseline.dcm",
    "SC_rgb_rle_2frame.dcm", "liver.dcm", "rtdose.dcm",
}


def corpus() -> list[Path]:
    import data_store  # the pydicom-data package

    roots = [Path(pydicom.data.__file__).parent / "test_files", Path(data_store.__file__).parent / "data"]
    return sorted(p for root in roots for p in root.rglob("*") if p.is_file() and p.stat().st_size > 132)


def _sendable(path: Path) -> tuple[bytes, pydicom.Dataset | None]:
    """The bytes to send and the dataset if our rules should accept it (readable, four valid
    UIDs, PatientID). Many corpus files have no PatientID, which STOW requires; those get
    one added (pixel data untouched), so the multi-frame codecs are still exercised."""
    raw = path.read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path)
            uids = [str(ds.get(k, "")) for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
                                                  "SOPClassUID")]
        except Exception:
            return raw, None
        if not all(is_valid_uid(u) for u in uids):
            return raw, None
        if not str(ds.get("PatientID", "")).strip():
            ds.PatientID = "PYDICOM-CORPUS"
            out = BytesIO()
            try:
                ds.save_as(out, enforce_file_format=True)
            except Exception:
                return raw, None
            raw = out.getvalue()
            ds = pydicom.dcmread(BytesIO(raw))
    return raw, ds


def _frame_count(ds: pydicom.Dataset) -> int:
    try:
        return int(ds.get("NumberOfFrames", 1) or 1)
    except ValueError:  # badVR.dcm's "1A": not a multi-frame test case
        return 1


def _frames(ds: pydicom.Dataset) -> list[bytes]:
    count = _frame_count(ds)
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        return list(generate_frames(ds.PixelData, number_of_frames=count))
    size = len(ds.PixelData) // count
    return [ds.PixelData[i * size:(i + 1) * size] for i in range(count)]


class Loaded:
    """What storing the corpus did: the server, the last stored copy of each instance, and
    per file whether it came back byte-identical and whether every frame matched pydicom."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.stored: dict[str, tuple[Path, pydicom.Dataset]] = {}
        self.identical: dict[str, bool] = {}
        self.frames_match: dict[str, bool] = {}


def _instance_url(root: str, ds: pydicom.Dataset) -> str:
    return f"{root}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"


def _check_round_trip(loaded: Loaded, http: httpx.Client, client: DICOMwebClient, path: Path, raw: bytes,
                      ds: pydicom.Dataset) -> None:
    response = http.get(_instance_url(loaded.server.root, ds),
                        headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'})
    (_, payload), = parse_multipart(response.content, response.headers["content-type"])
    loaded.identical[path.name] = payload == raw
    if "PixelData" in ds and _frame_count(ds) > 1:
        expected = _frames(ds)
        got = client.retrieve_instance_frames(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID,
                                              list(range(1, len(expected) + 1)))
        loaded.frames_match[path.name] = got == expected


@pytest.fixture(scope="module")
def loaded(tmp_path_factory) -> Iterator[Loaded]:
    """Store every corpus file; the corpus holds several encodings of one instance (same
    UIDs), so an earlier copy is deleted before the next encoding is stored and checked."""
    result = Loaded(ServerProcess(tmp_path_factory.mktemp("real-client")))
    root = result.server.root
    client = DICOMwebClient(url=root)
    try:
        with httpx.Client(timeout=60) as http:
            for path in corpus():
                raw, ds = _sendable(path)
                if ds is not None and ds.SOPInstanceUID in result.stored:
                    assert http.delete(_instance_url(root, ds)).status_code == 204
                    del result.stored[ds.SOPInstanceUID]
                response = http.post(f"{root}/studies", content=raw, headers={"Content-Type": DICOM})
                if ds is None:
                    assert response.status_code in (200, 409), (path.name, response.text)
                    continue
                # 202 here is "stored with a warning": frames that cannot be located by offset
                # (big endian, deflated) and are served by reading the whole file.
                if response.status_code == 200 or (response.status_code == 202 and "00081199" in response.json()):
                    result.stored[ds.SOPInstanceUID] = (path, ds)
                    _check_round_trip(result, http, client, path, raw, ds)
                else:
                    assert path.name not in MULTIFRAME_MUST_STORE, (path.name, response.text)
        yield result
    finally:
        result.server.stop()


def test_most_of_the_corpus_is_stored(loaded: Loaded) -> None:
    assert len(loaded.identical) >= 100, f"only {len(loaded.identical)} stored"
    assert set(loaded.identical) >= MULTIFRAME_MUST_STORE, MULTIFRAME_MUST_STORE - set(loaded.identical)


def test_instances_come_back_byte_identical(loaded: Loaded) -> None:
    assert [name for name, same in loaded.identical.items() if not same] == []


def test_every_frame_matches_pydicom(loaded: Loaded) -> None:
    assert set(loaded.frames_match) >= MULTIFRAME_MUST_STORE
    assert [name for name, same in loaded.frames_match.items() if not same] == []


def test_dicomweb_client_finds_every_instance(loaded: Loaded) -> None:
    server, stored = loaded.server, loaded.stored
    client = DICOMwebClient(url=server.root)
    for sop, (path, ds) in stored.items():
        found = client.search_for_instances(
            study_instance_uid=ds.StudyInstanceUID, search_filters={"SOPInstanceUID": sop})
        assert [pydicom.Dataset.from_json(f).SOPInstanceUID for f in found] == [sop], path.name
    patients = {str(ds.PatientID) for _, ds in stored.values()}
    for patient in sorted(patients)[:20]:
        studies = client.search_for_studies(search_filters={"PatientID": patient})
        expected = {ds.StudyInstanceUID for _, ds in stored.values() if str(ds.PatientID) == patient}
        assert {pydicom.Dataset.from_json(s).StudyInstanceUID for s in studies} == expected


def test_dicomweb_client_retrieves_datasets(loaded: Loaded) -> None:
    server, stored = loaded.server, loaded.stored
    client = DICOMwebClient(url=server.root)
    for sop, (path, ds) in list(stored.items())[:40]:
        # dicomweb-client asks for transfer-syntax=*, so it gets the stored bytes.
        retrieved = client.retrieve_instance(ds.StudyInstanceUID, ds.SeriesInstanceUID, sop)
        assert retrieved.SOPInstanceUID == sop
        if "PixelData" in ds:
            assert retrieved.PixelData == ds.PixelData, path.name
        # Without a transfer-syntax, PS3.18's default: Explicit VR Little Endian, lossy data as stored.
        stored_syntax = ds.file_meta.TransferSyntaxUID
        response = httpx.get(_instance_url(server.root, ds), timeout=60,
                             headers={"Accept": 'multipart/related; type="application/dicom"'})
        if response.status_code == 406:  # compressed data this server cannot decode
            assert stored_syntax.is_compressed, path.name
            continue
        (_, payload), = parse_multipart(response.content, response.headers["content-type"])
        default = pydicom.dcmread(BytesIO(payload))
        assert default.file_meta.TransferSyntaxUID in (ExplicitVRLittleEndian, *LOSSY & {stored_syntax}), path.name
        metadata = client.retrieve_instance_metadata(ds.StudyInstanceUID, ds.SeriesInstanceUID, sop)
        assert metadata["00080018"]["Value"] == [sop]


def test_dicomweb_client_stores(loaded: Loaded) -> None:
    server = loaded.server
    client = DICOMwebClient(url=server.root)
    datasets = [make_dataset(patient_id="CLIENT-STOW", instance_number=i) for i in range(3)]
    result = client.store_instances(datasets)
    assert len(result.ReferencedSOPSequence) == 3
    found = client.search_for_instances(search_filters={"PatientID": "CLIENT-STOW"})
    assert len(found) == 3


def test_multipart_body_helper_round_trips() -> None:
    body, content_type = multipart_body([b"one", b"two"])
    assert [payload for _, payload in parse_multipart(body, content_type)] == [b"one", b"two"]
