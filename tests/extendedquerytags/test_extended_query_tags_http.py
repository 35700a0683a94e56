"""Extended query tags over HTTP on both stores: add, reindex, search, disable, delete."""

from __future__ import annotations

import time
from typing import Any

import pytest
from pydicom.dataset import Dataset
from starlette.testclient import TestClient

from dicomweb.app import create_app
from dicomweb.settings import Settings
from tests.support.builders import make_dataset, multipart_body, to_bytes
from tests.support.import_area import wait_for_operation

pytestmark = pytest.mark.both_backends

STUDY = "1.2.826.0.1.3680043.8.498.1401"

TAGS = [
    {"path": "PatientWeight", "level": "Study"},  # DS, return-only by default
    {"path": "00181000", "level": "series"},  # DeviceSerialNumber, LO
    {"path": "SliceThickness", "vr": "DS", "level": "instance"},
    {"path": "00091001", "vr": "LO", "privateCreator": "ACME 1.0", "level": "instance"},
]


def _store(client: TestClient, *datasets: Dataset) -> None:
    body, content_type = multipart_body([to_bytes(ds) for ds in datasets])
    response = client.post("/v1/studies", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text


def _instance(number: int, weight: str, serial: str, thickness: str) -> Dataset:
    ds = make_dataset(study=STUDY, instance_number=number)
    ds.PatientWeight, ds.DeviceSerialNumber, ds.SliceThickness = weight, serial, thickness
    ds.add_new(0x00090010, "LO", "ACME 1.0")
    ds.add_new(0x00091001, "LO", f"PRIV-{number}")
    return ds


def _add(client: TestClient, tags: list[dict[str, Any]]) -> dict[str, Any]:
    response = client.post("/v1/extendedquerytags", json=tags)
    assert response.status_code == 202, response.text
    assert response.headers["Location"] == response.json()["href"]
    return wait_for_operation(client.get, response.json()["href"])


def _sops(client: TestClient, query: str) -> set[str]:
    response = client.get(f"/v1/instances?{query}")
    assert response.status_code == 200, response.text
    return {item["00080018"]["Value"][0] for item in response.json()}


def test_tags_are_reindexed_and_searched_like_built_ins(client: TestClient) -> None:
    before = _instance(1, "70", "SN-A", "1.5")
    _store(client, before)
    assert client.get("/v1/instances?SliceThickness=1.5").status_code == 400  # not searchable yet
    operation = _add(client, TAGS)
    assert operation["status"] == "succeeded", operation
    after = make_dataset(study=STUDY, instance_number=2)  # a new series: series values come from its first instance
    after.SliceThickness, after.DeviceSerialNumber = "3", "SN-B"
    _store(client, after)

    listed = client.get("/v1/extendedquerytags").json()
    assert [tag["path"] for tag in listed] == ["00091001", "00101030", "00180050", "00181000"]
    assert all(tag["status"] == "ready" and tag["queryStatus"] == "enabled" for tag in listed), listed
    assert listed[0] == {"path": "00091001", "vr": "LO", "privateCreator": "ACME 1.0", "level": "instance",
                         "status": "ready", "queryStatus": "enabled"}

    one, two = before.SOPInstanceUID, after.SOPInstanceUID
    assert _sops(client, "SliceThickness=1.50") == {one}  # numbers compared as numbers
    assert _sops(client, "SliceThickness=3") == {two}
    assert _sops(client, "00091001=PRIV-1") == {one}
    assert _sops(client, "00091001=PRIV*") == {one}  # wildcard on LO
    assert _sops(client, "DeviceSerialNumber=SN-B") == {two}
    assert _sops(client, "DeviceSerialNumber=SN-?") == {one, two}
    assert _sops(client, "PatientWeight=70") == {one, two}  # study-level tag filters instances
    studies = client.get("/v1/studies?PatientWeight=71")
    assert studies.status_code == 200 and studies.json() == []
    found = client.get(f"/v1/instances?SOPInstanceUID={one}&includefield=SliceThickness").json()
    assert found[0]["00180050"]["Value"] == [1.5]


def test_disable_enable_and_delete(client: TestClient) -> None:
    ds = _instance(1, "70", "SN-A", "1.5")
    _store(client, ds)
    _add(client, [TAGS[2]])
    disabled = client.patch("/v1/extendedquerytags/SliceThickness", json={"queryStatus": "Disabled"})
    assert disabled.status_code == 200 and disabled.json()["queryStatus"] == "disabled"
    refused = client.get("/v1/instances?SliceThickness=1.5")
    assert refused.status_code == 400 and "query is disabled on attribute SliceThickness" in refused.text
    client.patch("/v1/extendedquerytags/00180050", json={"queryStatus": "enabled"})
    assert _sops(client, "SliceThickness=1.5") == {ds.SOPInstanceUID}
    assert client.delete("/v1/extendedquerytags/SliceThickness").status_code == 204
    assert client.get("/v1/extendedquerytags/SliceThickness").status_code == 404
    assert client.get("/v1/instances?SliceThickness=1.5").status_code == 400
    _add(client, [TAGS[2]])  # added again: the values come back from the reindex only
    assert _sops(client, "SliceThickness=1.5") == {ds.SOPInstanceUID}


@pytest.mark.parametrize(("body", "named"), [
    ([{"path": "NoSuchKeyword", "level": "study"}], "NoSuchKeyword"),
    ([{"path": "PatientID", "level": "study"}], "already searchable"),
    ([{"path": "ReferencedStudySequence", "level": "study"}], "SQ"),
    ([{"path": "PatientComments", "level": "study"}], "VR LT is not supported"),
    ([{"path": "00091001", "vr": "LO", "level": "instance"}], "privateCreator"),
    ([{"path": "PatientWeight", "level": "study"}, {"path": "00101030", "level": "study"}], "more than once"),
    ([{"path": "PatientWeight", "level": "patient"}], "level"),
    ([{"path": "PatientWeight", "vr": "LO", "level": "study"}], "does not match"),
    ({"path": "PatientWeight"}, "array"),
    ([{"path": f"0009{i:04X}", "vr": "LO", "privateCreator": "X", "level": "study"} for i in range(0x1000, 0x1081)],
     "at most 128"),
])
def test_bad_definitions_are_400_naming_the_entry(client: TestClient, body: Any, named: str) -> None:
    response = client.post("/v1/extendedquerytags", json=body)
    assert response.status_code == 400 and named in response.text, response.text
    assert client.get("/v1/extendedquerytags").json() == []


def test_conflicts_and_not_found(client: TestClient) -> None:
    _add(client, [TAGS[0]])
    again = client.post("/v1/extendedquerytags", json=[TAGS[0]])
    assert again.status_code == 409 and "already exists" in again.text
    assert client.get("/v1/extendedquerytags/StudyComments").status_code == 404
    assert client.get("/v1/extendedquerytags/NotAKeyword").status_code == 400
    assert client.get("/v1/extendedquerytags?limit=0").status_code == 400
    assert client.get("/v1/extendedquerytags?limit=1&offset=1").json() == []
    bad_patch = client.patch("/v1/extendedquerytags/PatientWeight", json={"queryStatus": "maybe"})
    assert bad_patch.status_code == 400 and "queryStatus" in bad_patch.text


def test_invalid_values_are_errors_that_disable_the_tag(client: TestClient) -> None:
    good, bad = _instance(1, "70", "SN-A", "1.5"), _instance(2, "70", "SN-A", "2")
    bad.add_new(0x00091001, "LO", "X" * 70)  # longer than LO allows
    _store(client, good, bad)
    _add(client, [TAGS[3]])
    tag = client.get("/v1/extendedquerytags/00091001").json()
    assert tag["status"] == "ready" and tag["queryStatus"] == "disabled"
    assert tag["errors"]["count"] == 1
    errors = client.get(tag["errors"]["href"]).json()
    assert [error["sopInstanceUid"] for error in errors] == [bad.SOPInstanceUID]
    assert "longer than 64" in errors[0]["errorMessage"] and "XXXX" not in errors[0]["errorMessage"]
    assert client.get("/v1/instances?00091001=PRIV-1").status_code == 400
    client.patch("/v1/extendedquerytags/00091001", json={"queryStatus": "enabled"})
    answer = client.get("/v1/instances?00091001=PRIV-1")
    assert answer.status_code == 200 and answer.headers["erroneous-dicom-attributes"] == "00091001"
    assert {item["00080018"]["Value"][0] for item in answer.json()} == {good.SOPInstanceUID}
    assert client.delete("/v1/extendedquerytags/00091001").status_code == 204
    assert client.get("/v1/extendedquerytags/00091001/errors").status_code == 404


def test_128_tags_are_accepted_and_the_129th_refused(client: TestClient) -> None:
    tags = [{"path": f"0009{element:04X}", "vr": "LO", "privateCreator": "ACME 1.0", "level": "instance"}
            for element in range(0x1000, 0x1080)]
    assert _add(client, tags)["status"] == "succeeded"
    assert len(client.get("/v1/extendedquerytags?limit=200").json()) == 128
    ds = _instance(1, "70", "SN-A", "1.5")  # stored with 128 extended tags indexed
    _store(client, ds)
    assert _sops(client, "00091001=PRIV-1") == {ds.SOPInstanceUID}
    refused = client.post("/v1/extendedquerytags", json=[{"path": "PatientWeight", "level": "study"}])
    assert refused.status_code == 400 and "at most 128" in refused.text and "128 exist" in refused.text


def test_reindex_waits_the_settle_time_before_its_first_page(settings: Settings) -> None:
    """Below Strong consistency a racing STOW's document may reach the walk's replica late;
    the deployment makes the reindex wait before walking (docs/extended-query-tags.md)."""
    with TestClient(create_app(settings.with_(reindex_settle_seconds=2.0)), base_url="http://testserver") as client:
        _store(client, _instance(1, "70", "SN-A", "1.5"))
        started = time.monotonic()
        response = client.post("/v1/extendedquerytags", json=[{"path": "SliceThickness", "level": "instance"}])
        assert response.status_code == 202, response.text
        assert client.get(response.json()["href"]).json()["status"] in ("notStarted", "running")
        operation = wait_for_operation(client.get, response.json()["href"])
        assert operation["status"] == "succeeded", operation
        assert time.monotonic() - started >= 2.0
        assert len(_sops(client, "SliceThickness=1.5")) == 1
