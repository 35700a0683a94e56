"""STOW-RS at the HTTP level: statuses, response datasets, failure reasons, limits."""

from __future__ import annotations

import pytest
from pydicom.uid import generate_uid
from starlette.testclient import TestClient

from tests.support.builders import DICOM, make_dataset, multipart_body, to_bytes

pytestmark = pytest.mark.both_backends

SOP_SEQ, FAILED_SEQ, RETRIEVE_URL, FAILURE_REASON = "00081199", "00081198", "00081190", "00081197"


def _failures(body: dict) -> list[int]:
    return [item[FAILURE_REASON]["Value"][0] for item in body.get(FAILED_SEQ, {}).get("Value", [])]


def test_multipart_store_answers_200_with_referenced_sops(client: TestClient) -> None:
    datasets = [make_dataset(instance_number=i) for i in range(3)]
    body, content_type = multipart_body([to_bytes(ds) for ds in datasets])
    response = client.post("/v1/studies", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/dicom+json")
    items = response.json()[SOP_SEQ]["Value"]
    assert [item["00081155"]["Value"][0] for item in items] == [ds.SOPInstanceUID for ds in datasets]
    first = datasets[0]
    assert items[0]["00081190"]["Value"][0] == (
        f"http://testserver/v1/studies/{first.StudyInstanceUID}/series/{first.SeriesInstanceUID}"
        f"/instances/{first.SOPInstanceUID}")
    assert items[0]["00081150"]["Value"][0] == first.SOPClassUID


def test_single_part_application_dicom(client: TestClient) -> None:
    ds = make_dataset()
    response = client.post("/v1/studies", content=to_bytes(ds), headers={"Content-Type": DICOM})
    assert response.status_code == 200, response.text
    assert client.get(f"/v1/studies/{ds.StudyInstanceUID}/metadata").status_code == 200


def test_part_without_content_type_inherits_root_type(client: TestClient) -> None:
    body, content_type = multipart_body([to_bytes(make_dataset())], part_type=None)
    response = client.post("/v1/studies", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text


def test_stored_bytes_are_identical(client: TestClient) -> None:
    ds = make_dataset()
    raw = to_bytes(ds)
    client.post("/v1/studies", content=raw, headers={"Content-Type": DICOM})
    url = f"/v1/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    response = client.get(url, headers={"Accept": DICOM})
    assert response.status_code == 200
    assert response.content == raw


def test_duplicate_is_refused_with_45070_and_not_overwritten(client: TestClient) -> None:
    ds = make_dataset()
    original = to_bytes(ds)
    assert client.post("/v1/studies", content=original, headers={"Content-Type": DICOM}).status_code == 200
    ds.PatientName = "CHANGED^NAME"
    response = client.post("/v1/studies", content=to_bytes(ds), headers={"Content-Type": DICOM})
    assert response.status_code == 409
    assert _failures(response.json()) == [45070]
    item = response.json()[FAILED_SEQ]["Value"][0]
    assert item["00081155"]["Value"][0] == ds.SOPInstanceUID
    url = f"/v1/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    assert client.get(url, headers={"Accept": DICOM}).content == original


def test_corrupt_part_fails_alone_with_202(client: TestClient) -> None:
    good = make_dataset()
    truncated = to_bytes(make_dataset(rows=64, columns=64))[:-500]
    body, content_type = multipart_body([b"this is not DICOM at all" * 10, to_bytes(good), truncated])
    response = client.post("/v1/studies", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 202, response.text
    result = response.json()
    assert _failures(result) == [43264, 43264]
    assert len(result[SOP_SEQ]["Value"]) == 1
    assert client.get(f"/v1/studies/{good.StudyInstanceUID}/metadata").status_code == 200


def test_all_failed_is_409(client: TestClient) -> None:
    body, content_type = multipart_body([b"garbage" * 100])
    response = client.post("/v1/studies", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 409
    assert _failures(response.json()) == [43264]


def test_missing_and_invalid_uids_fail_validation(client: TestClient) -> None:
    no_patient = make_dataset()
    del no_patient.PatientID
    bad_uid = make_dataset()
    bad_uid.SeriesInstanceUID = "1.2.03.abc"
    body, content_type = multipart_body([to_bytes(no_patient), to_bytes(bad_uid)])
    response = client.post("/v1/studies", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 409
    items = response.json()[FAILED_SEQ]["Value"]
    assert [item[FAILURE_REASON]["Value"][0] for item in items] == [43264, 43264]
    assert "PatientID" in items[0]["00000902"]["Value"][0]
    assert "SeriesInstanceUID" in items[1]["00000902"]["Value"][0]
    assert items[1]["00081155"]["Value"][0] == bad_uid.SOPInstanceUID


def test_study_in_path_must_match(client: TestClient) -> None:
    study = generate_uid()
    matching, other = make_dataset(study=study), make_dataset()
    body, content_type = multipart_body([to_bytes(matching), to_bytes(other)])
    response = client.post(f"/v1/studies/{study}", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 202
    result = response.json()
    assert result[RETRIEVE_URL]["Value"][0] == f"http://testserver/v1/studies/{study}"
    assert _failures(result) == [43265]


def test_wrong_content_type_is_415(client: TestClient) -> None:
    response = client.post("/v1/studies", content=b"{}", headers={"Content-Type": "application/json"})
    assert response.status_code == 415
    assert "application/json" in response.json()["message"]
    body, _ = multipart_body([to_bytes(make_dataset())])
    response = client.post("/v1/studies", content=body,
                           headers={"Content-Type": 'multipart/related; type="application/dicom+xml"; boundary=x'})
    assert response.status_code == 415


def test_unacceptable_accept_is_406(client: TestClient) -> None:
    response = client.post("/v1/studies", content=to_bytes(make_dataset()),
                           headers={"Content-Type": DICOM, "Accept": "application/dicom+xml"})
    assert response.status_code == 406


def test_malformed_multipart_is_400(client: TestClient) -> None:
    body, content_type = multipart_body([to_bytes(make_dataset())])
    response = client.post("/v1/studies", content=body[:-40], headers={"Content-Type": content_type})
    assert response.status_code == 400
    assert "boundary" in response.json()["message"]
    response = client.post("/v1/studies", content=body, headers={"Content-Type": "multipart/related"})
    assert response.status_code == 400


def test_empty_requests_are_400(client: TestClient) -> None:
    assert client.post("/v1/studies", content=b"", headers={"Content-Type": DICOM}).status_code == 400
    body = b"--b--\r\n"
    response = client.post("/v1/studies", content=body,
                           headers={"Content-Type": 'multipart/related; type="application/dicom"; boundary=b'})
    assert response.status_code == 400


def test_over_size_limit_is_413(tmp_path) -> None:
    from dicomweb.app import create_app
    from dicomweb.settings import Settings

    app = create_app(Settings(data_dir=tmp_path, max_request_bytes=1000, allowed_hosts=("testserver",)))
    with TestClient(app) as small:
        response = small.post("/v1/studies", content=to_bytes(make_dataset(rows=64, columns=64)),
                              headers={"Content-Type": DICOM})
        assert response.status_code == 413
        assert "1000" in response.json()["message"]


def test_invalid_study_uid_in_path_is_400(client: TestClient) -> None:
    response = client.post("/v1/studies/not-a-uid", content=to_bytes(make_dataset()),
                           headers={"Content-Type": DICOM})
    assert response.status_code == 400


def test_oversized_headers_are_431(client: TestClient) -> None:
    response = client.get("/v1/studies", headers={"X-Padding": "a" * 100_000})
    assert response.status_code == 431
    assert "headers too large" in response.json()["message"]
    many = {f"X-H{i}": "1" for i in range(300)}
    assert client.get("/v1/studies", headers=many).status_code == 431


def test_unlocatable_frames_are_stored_with_a_warning(client: TestClient) -> None:
    """Fragments that are not frames, no offset table, no frame markers: stored, retrievable
    whole, and the sender is told why frames will be slow."""
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    ds = make_dataset(rows=8, columns=8, frames=2)
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    fragments = [b"\x00\x01" * 10, b"\x02\x03" * 10, b"\x04\x05" * 10]  # 3 fragments, 2 frames, no markers
    ds.PixelData = encapsulate(fragments, has_bot=False)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    raw = to_bytes(ds)
    response = client.post("/v1/studies", content=raw, headers={"Content-Type": DICOM})
    assert response.status_code == 202, response.text
    assert "frames cannot be located" in response.headers["warning"]
    (item,) = response.json()[SOP_SEQ]["Value"]
    assert "frames cannot be located" in item["00000902"]["Value"][0]
    url = f"/v1/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    assert client.get(url, headers={"Accept": DICOM}).content == raw


def test_multipart_parts_are_stored_in_order_and_a_repeat_within_the_request_is_45070(client: TestClient) -> None:
    # Parts are received ahead of the store (routes.PARTS_AHEAD) but stored one after another:
    # the second copy of an instance in the same request is refused like any re-send, and the
    # response lists the parts in the order they were sent. The large part (> the 1 MiB spool
    # batch) crosses several received chunks and spool writes.
    first, large, last = make_dataset(), make_dataset(rows=800, columns=800), make_dataset()
    repeat = make_dataset(study=first.StudyInstanceUID, series=first.SeriesInstanceUID, sop=first.SOPInstanceUID,
                          patient_name="OTHER^NAME")
    raw = [to_bytes(ds) for ds in (first, repeat, large, last)]
    body, content_type = multipart_body(raw)
    response = client.post("/v1/studies", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 202, response.text
    stored = [item["00081155"]["Value"][0] for item in response.json()[SOP_SEQ]["Value"]]
    assert stored == [first.SOPInstanceUID, large.SOPInstanceUID, last.SOPInstanceUID]
    assert _failures(response.json()) == [45070]
    for ds, sent in ((first, raw[0]), (large, raw[2])):
        url = f"/v1/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
        assert client.get(url, headers={"Accept": DICOM}).content == sent
