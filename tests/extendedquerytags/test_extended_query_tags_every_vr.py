"""Extended query tags of every supported VR (and a private tag, and paths into sequences)
matched over HTTP with each matching kind that applies, at study, series and instance level.

Two studies (``a`` and ``b``), one series and one instance each, hold a different value of
every tag; each case says which of them a query must find, and the query is sent to every
resource at or below the tag's level (a study-level tag filters series and instances
through their study).
"""

from __future__ import annotations

from typing import Any

import pytest
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from starlette.testclient import TestClient

from tests.support.builders import make_dataset, multipart_body, to_bytes
from tests.support.import_area import wait_for_operation

pytestmark = pytest.mark.both_backends

UID_A, UID_B = "1.2.826.0.1.3680043.8.498.14001", "1.2.826.0.1.3680043.8.498.14002"
CREATOR = "ACME 1.0"

# (definition, value of a, value of b, [(query value, the instances it finds)])
CASES: list[tuple[dict[str, Any], Any, Any, list[tuple[str, str]]]] = [
    # study level
    ({"path": "StationAETitle", "level": "study"}, "AE_ONE", "AE_TWO",
     [("AE_ONE", "a"), ("AE_T*", "b"), ("AE_ONE\\AE_TWO", "ab"), ("ae_one", "")]),
    ({"path": "00080022", "level": "study"}, "20240105", "20240220",  # AcquisitionDate, DA
     [("20240105", "a"), ("20240201-", "b"), ("20240101-20240301", "ab"), ("-20240110", "a")]),
    ({"path": "PatientWeight", "level": "study"}, "70", "82.5",  # DS
     [("70.0", "a"), ("82.50", "b"), ("60-75", "a"), ("75-", "b"), ("-+100", "ab"), ("-100", ""), ("7E1", "a")]),
    ({"path": "OperatorsName", "level": "study"}, "SMITH^ANNA", "JONES^BOB",  # PN
     [("smith^anna", "a"), ("JON*", "b"), ("ann&fuzzymatching=true", "a"), ("bo&fuzzymatching=true", "b")]),
    ({"path": "NumberOfStudyRecordsInInstance", "level": "study"}, 7, 300000,  # UL
     [("7", "a"), ("10-", "b"), ("0-400000", "ab"), ("300000.0", "b")]),
    ({"path": "00091002", "vr": "AS", "privateCreator": CREATOR, "level": "study"}, "045Y", "012M",
     [("045Y", "a"), ("012M\\045Y", "ab")]),
    ({"path": "ProcedureCodeSequence.CodeValue", "level": "study"}, ["P1", "P2"], ["P3"],  # SH in a sequence
     [("P2", "a"), ("P1", "a"), ("P3", "b"), ("P*", "ab")]),
    # series level
    ({"path": "PatientPosition", "level": "series"}, "HFS", "FFS",  # CS
     [("HFS", "a"), ("?FS", "ab"), ("hfs", ""), ("HFS,FFS", "ab")]),
    ({"path": "FrameAcquisitionDateTime", "level": "series"}, "20240105101500", "20240220230000.5",  # DT
     [("20240105101500", "a"), ("202402", "b"), ("20240101-20240201", "a"), ("20240201-", "b")]),
    ({"path": "ContrastBolusInjectionDelay", "level": "series"}, 2.5, -1.0,  # FD
     [("2.50", "a"), ("-1", "b"), ("-2-0", "b"), ("0-", "a"), ("-3--0.5", "b")]),
    ({"path": "DeviceSerialNumber", "level": "series"}, "SN-A", "SN-B",  # LO
     [("SN-A", "a"), ("SN-*", "ab"), ("SN-C", "")]),
    ({"path": "TagAngleSecondAxis", "level": "series"}, -5, 12,  # SS
     [("-5", "a"), ("--1", "a"), ("0-20", "b"), ("12", "b")]),
    ({"path": "00080032", "level": "series"}, "101500", "2300",  # AcquisitionTime, TM
     [("101500", "a"), ("10", "a"), ("1200-", "b"), ("-1100", "a")]),
    ({"path": "00400275.00321060", "level": "series"}, ["CT HEAD", "CT NECK"], ["MR KNEE"],  # LO in a sequence
     [("CT NECK", "a"), ("MR*", "b")]),
    # instance level
    ({"path": "ExaminedBodyThickness", "level": "instance"}, 0.1, 250.0,  # FL
     [("0.1", "a"), ("100-300", "b"), ("0-1", "a")]),
    ({"path": "EchoNumbers", "level": "instance"}, "1", "12",  # IS
     [("01", "a"), ("2-20", "b"), ("1\\12", "ab")]),
    ({"path": "FilterType", "level": "instance"}, "FLAT", "WEDGE",  # SH
     [("FLAT", "a"), ("W*", "b")]),
    ({"path": "ReferencePixelX0", "level": "instance"}, -300, 40,  # SL
     [("-300", "a"), ("-1000--100", "a"), ("0-", "b")]),
    ({"path": "FrameOfReferenceUID", "level": "instance"}, UID_A, UID_B,  # UI
     [(UID_A, "a"), (f"{UID_A},{UID_B}", "ab"), (f"{UID_A}\\{UID_B}", "ab")]),
    ({"path": "ExposuresOnPlate", "level": "instance"}, 3, 900,  # US
     [("3", "a"), ("4-", "b"), ("3.0", "a")]),
]

LEVELS = ("study", "series", "instance")
RESOURCES = {"study": "studies", "series": "series", "instance": "instances"}
UID_TAG = {"study": "0020000D", "series": "0020000E", "instance": "00080018"}


def _keyword_path(path: str) -> list[str]:
    return path.split(".")


def _set(ds: Dataset, definition: dict[str, Any], value: Any) -> None:
    elements = []
    for element in _keyword_path(definition["path"]):
        number = tag_for_keyword(element)
        elements.append(number if number is not None else int(element, 16))
    if len(elements) == 2:  # a sequence: one item per value
        items = []
        for one in value:
            item = Dataset()
            item.add_new(elements[1], dictionary_VR(elements[1]), one)
            items.append(item)
        ds.add_new(elements[0], "SQ", items)
        return
    (tag,) = elements
    if tag >> 16 == 0x0009:
        ds.add_new(0x00090010, "LO", CREATOR)
    ds.add_new(tag, definition.get("vr") or dictionary_VR(tag), value)


def _instance(which: str) -> Dataset:
    ds = make_dataset(study=generate_uid(), accession=f"ACC-{which}")
    for definition, value_a, value_b, _ in CASES:
        _set(ds, definition, value_a if which == "a" else value_b)
    return ds


def _store(client: TestClient, *datasets: Dataset) -> None:
    body, content_type = multipart_body([to_bytes(ds) for ds in datasets])
    response = client.post("/v1/studies", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text


def _add(client: TestClient, tags: list[dict[str, Any]]) -> dict[str, Any]:
    response = client.post("/v1/extendedquerytags", json=tags)
    assert response.status_code == 202, response.text
    return wait_for_operation(client.get, response.json()["href"])


def _found(client: TestClient, resource_level: str, key: str, value: str) -> set[str]:
    response = client.get(f"/v1/{RESOURCES[resource_level]}", params=_params(key, value))
    assert response.status_code == 200, (key, value, response.text)
    return {item[UID_TAG[resource_level]]["Value"][0] for item in response.json()}


def _params(key: str, value: str) -> list[tuple[str, str]]:
    value, _, fuzzy = value.partition("&fuzzymatching=")
    return [(key, value), *([("fuzzymatching", fuzzy)] if fuzzy else [])]


@pytest.fixture
def stored(client: TestClient) -> dict[str, Dataset]:
    """``a`` stored before the tags are added (found through the reindex), ``b`` after."""
    a = _instance("a")
    _store(client, a)
    operation = _add(client, [definition for definition, *_ in CASES])
    assert operation["status"] == "succeeded", operation
    b = _instance("b")
    _store(client, b)
    return {"a": a, "b": b}


def test_every_vr_and_matching_kind_at_every_level(client: TestClient, stored: dict[str, Dataset]) -> None:
    tags = client.get("/v1/extendedquerytags").json()
    assert len(tags) == len(CASES)
    assert all(tag["status"] == "ready" and tag["queryStatus"] == "enabled" for tag in tags), tags
    failures = []
    for definition, _, _, queries in CASES:
        below = LEVELS[LEVELS.index(definition["level"]):]
        for value, expected in queries:
            for resource in below:
                uid = {"study": "StudyInstanceUID", "series": "SeriesInstanceUID", "instance": "SOPInstanceUID"}
                wanted = {getattr(stored[which], uid[resource]) for which in expected}
                got = _found(client, resource, definition["path"], value)
                if got != wanted:
                    failures.append((definition["path"], value, resource, sorted(expected), len(got)))
    assert not failures, failures


def test_sequence_paths_in_hex_and_keyword_form(client: TestClient, stored: dict[str, Dataset]) -> None:
    a = stored["a"]
    for key in ("00081032.00080100", "ProcedureCodeSequence.CodeValue", "00081032.CodeValue"):
        assert _found(client, "instance", key, "P2") == {a.SOPInstanceUID}
    tag = client.get("/v1/extendedquerytags/ProcedureCodeSequence.CodeValue")
    assert tag.status_code == 200 and tag.json()["path"] == "00081032.00080100" and tag.json()["vr"] == "SH"
    assert client.get("/v1/extendedquerytags/00081032.00080100").json() == tag.json()
    # includefield names the path: the study result carries the sequence
    study = client.get("/v1/studies", params={"StudyInstanceUID": a.StudyInstanceUID,
                                               "includefield": "ProcedureCodeSequence.CodeValue"}).json()
    codes = [item["00080100"]["Value"][0] for item in study[0]["00081032"]["Value"]]
    assert codes == ["P1", "P2"]
    patched = client.patch("/v1/extendedquerytags/ProcedureCodeSequence.CodeValue", json={"queryStatus": "disabled"})
    assert patched.status_code == 200 and patched.json()["queryStatus"] == "disabled"
    refused = client.get("/v1/studies?ProcedureCodeSequence.CodeValue=P2")
    assert refused.status_code == 400 and "query is disabled" in refused.text
    assert client.delete("/v1/extendedquerytags/00081032.00080100").status_code == 204
    assert client.get("/v1/studies?ProcedureCodeSequence.CodeValue=P2").status_code == 400
    assert client.get("/v1/extendedquerytags/ProcedureCodeSequence.CodeValue").status_code == 404


def test_results_carry_values_of_entities_indexed_before_the_tag(
        client: TestClient, stored: dict[str, Dataset]) -> None:
    a = stored["a"]  # stored before the tags existed: its study and series JSON were written then
    study = client.get(f"/v1/studies?PatientWeight=70&StudyInstanceUID={a.StudyInstanceUID}").json()
    assert study[0]["00101030"]["Value"] == [70]
    series = client.get("/v1/series?DeviceSerialNumber=SN-A&includefield=PatientPosition").json()
    assert series[0]["00181000"]["Value"] == ["SN-A"] and series[0]["00185100"]["Value"] == ["HFS"]
    instance = client.get("/v1/instances?FilterType=FLAT&includefield=EchoNumbers").json()
    assert instance[0]["00180086"]["Value"] == [1]


@pytest.mark.parametrize(("path", "named"), [
    ("ReferencedStudySequence", "SQ"),  # a sequence as the leaf
    ("ProcedureCodeSequence.ReferencedStudySequence", "SQ"),
    ("PatientID.PatientName", "not a sequence"),  # a value as an intermediate element
    ("00081032.00081032.00081032.00080100", "at most 3 elements"),
    ("ProcedureCodeSequence.NoSuchKeyword", "NoSuchKeyword"),
    ("ProcedureCodeSequence.00091001", "privateCreator"),
    ("RequestAttributesSequence.RequestedProcedureID", "already searchable"),
    ("ProcedureCodeSequence.", "neither 8 hex digits"),
])
def test_bad_sequence_paths_are_400(client: TestClient, path: str, named: str) -> None:
    response = client.post("/v1/extendedquerytags", json=[{"path": path, "level": "study"}])
    assert response.status_code == 400 and named in response.text, response.text


def test_bad_number_queries_are_400(client: TestClient, stored: dict[str, Dataset]) -> None:
    for query in ("PatientWeight=abc", "PatientWeight=1-x", "EchoNumbers=1.5", "PatientWeight=nan",
                  "PatientWeight=1_000"):
        response = client.get(f"/v1/instances?{query}")
        assert response.status_code == 400 and query.split("=")[0] in response.text, (query, response.text)
