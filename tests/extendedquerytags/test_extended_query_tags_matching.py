"""Extended tags of several VRs and levels, matched like built-ins, on both stores: DA/TM
ranges, UID lists, fuzzy and wildcard person names, wildcards, numbers; study- and
series-level tags filtering each level; errors paged over HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from pydicom.dataset import Dataset
from starlette.testclient import TestClient

from tests.support.builders import make_dataset, multipart_body, to_bytes
from tests.support.import_area import wait_for_operation

pytestmark = pytest.mark.both_backends

STUDY_A, STUDY_B = "1.2.826.0.1.3680043.8.498.1405", "1.2.826.0.1.3680043.8.498.1406"
FRAME_A, FRAME_B = "1.2.826.0.1.3680043.8.498.1405.9", "1.2.826.0.1.3680043.8.498.1406.9"

TAGS = [
    {"path": "AcquisitionDate", "level": "instance"},  # DA
    {"path": "AcquisitionTime", "level": "instance"},  # TM
    {"path": "FrameOfReferenceUID", "level": "series"},  # UI
    {"path": "OperatorsName", "level": "series"},  # PN
    {"path": "Occupation", "level": "study"},  # SH
    {"path": "00091002", "vr": "US", "privateCreator": "ACME 1.0", "level": "instance"},
]


def _instance(study: str, number: int, date: str, time: str, frame: str, operator: str, occupation: str,
              private: int) -> Dataset:
    ds = make_dataset(study=study, series=f"{study}.{number}", instance_number=number)
    ds.AcquisitionDate, ds.AcquisitionTime, ds.FrameOfReferenceUID = date, time, frame
    ds.OperatorsName, ds.Occupation = operator, occupation
    ds.add_new(0x00090010, "LO", "ACME 1.0")
    ds.add_new(0x00091002, "US", private)
    return ds


def _store(client: TestClient, *datasets: Dataset) -> None:
    body, content_type = multipart_body([to_bytes(ds) for ds in datasets])
    response = client.post("/v1/studies", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text


def _add(client: TestClient, tags: list[dict[str, Any]]) -> None:
    response = client.post("/v1/extendedquerytags", json=tags)
    assert response.status_code == 202, response.text
    assert wait_for_operation(client.get, response.json()["href"])["status"] == "succeeded"


def _uids(client: TestClient, level: str, query: str) -> set[str]:
    response = client.get(f"/v1/{level}?{query}")
    assert response.status_code == 200, response.text
    tag = {"studies": "0020000D", "series": "0020000E", "instances": "00080018"}[level.split("/")[-1]]
    return {item[tag]["Value"][0] for item in response.json()}


def test_each_vr_and_level_matches_like_a_built_in(client: TestClient) -> None:
    one = _instance(STUDY_A, 1, "20240105", "101500", FRAME_A, "Smith^Anna", "ENGINEER", 512)
    two = _instance(STUDY_A, 2, "20240220", "235959", FRAME_A, "Jones^Bob", "ENGINEER", 7)
    _store(client, one, two)
    _add(client, TAGS)
    three = _instance(STUDY_B, 3, "20231231", "080000", FRAME_B, "Smithers^Carl", "TEACHER", 512)
    _store(client, three)  # stored once the tags are ready: indexed at once
    a, b, c = one.SOPInstanceUID, two.SOPInstanceUID, three.SOPInstanceUID

    assert _uids(client, "instances", "AcquisitionDate=20240101-20240131") == {a}
    assert _uids(client, "instances", "AcquisitionDate=-20240110") == {a, c}
    assert _uids(client, "instances", "AcquisitionTime=2300-") == {b}
    assert _uids(client, "instances", f"FrameOfReferenceUID={FRAME_B},{FRAME_A}") == {a, b, c}
    assert _uids(client, "instances", "OperatorsName=smi&fuzzymatching=true") == {a, c}
    assert _uids(client, "instances", "OperatorsName=Smith*") == {a, c}
    assert _uids(client, "instances", "00091002=512") == {a, c}
    assert _uids(client, "series", "OperatorsName=Jones^Bob") == {two.SeriesInstanceUID}
    assert _uids(client, "series", "Occupation=TEACH*") == {three.SeriesInstanceUID}
    assert _uids(client, "studies", "Occupation=ENGINEER") == {STUDY_A}
    below = client.get(f"/v1/studies?FrameOfReferenceUID={FRAME_B}")  # a series tag, as for built-ins
    assert below.status_code == 400 and "series level" in below.text
    assert _uids(client, f"studies/{STUDY_A}/series", "FrameOfReferenceUID=" + FRAME_A) == {
        one.SeriesInstanceUID, two.SeriesInstanceUID}

    studies = client.get(f"/v1/studies?StudyInstanceUID={STUDY_B}&includefield=Occupation").json()
    assert studies[0]["00102180"]["Value"] == ["TEACHER"]  # first indexed after the tag: carried


def test_errors_are_listed_in_pages(client: TestClient) -> None:
    bad = [_instance(STUDY_A, number, "2024XX01", "101500", FRAME_A, "A^B", "X", 1) for number in (1, 2, 3)]
    _store(client, *bad)
    _add(client, [TAGS[0]])
    tag = client.get("/v1/extendedquerytags/AcquisitionDate").json()
    assert tag["queryStatus"] == "disabled" and tag["errors"]["count"] == 3
    first = client.get(f"{tag['errors']['href']}?limit=2").json()
    rest = client.get(f"{tag['errors']['href']}?limit=2&offset=2").json()
    assert len(first) == 2 and len(rest) == 1
    assert {e["sopInstanceUid"] for e in first + rest} == {ds.SOPInstanceUID for ds in bad}
    assert all("not a valid date" in e["errorMessage"] for e in first + rest)
    enabled = client.patch("/v1/extendedquerytags/AcquisitionDate", json={"queryStatus": "enabled"})
    assert enabled.status_code == 200
    answered = client.get("/v1/instances?AcquisitionDate=20240101")
    assert answered.status_code == 200 and answered.json() == []  # the bad values match nothing valid
    assert answered.headers.get("erroneous-dicom-attributes") == "AcquisitionDate"
