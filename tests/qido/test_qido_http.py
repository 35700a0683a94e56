"""QIDO-RS over HTTP: the six resources, matching, returned attributes, paging, errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydicom.uid import generate_uid
from starlette.testclient import TestClient

from dicomweb.app import create_app
from dicomweb.settings import Settings
from tests.qido.qido_records import make_record

ROOT = "http://testserver/v1"
STUDY_DEFAULTS = {
    "00080020", "00080030", "00080050", "00080056", "00080061", "00080090", "00081190",
    "00100010", "00100020", "00100030", "00100040", "0020000D", "00200010", "00201206", "00201208",
}  # fmt: skip
SERIES_DEFAULTS = {"00080060", "0008103E", "00081190", "0020000E", "00200011", "00201209"}
INSTANCE_DEFAULTS = {
    "00080016",
    "00080018",
    "00080056",
    "00081190",
    "00200013",
    "00280010",
    "00280011",
    "00280100",
}


class Data:
    """UIDs of the indexed test studies: Doe (a CT series of two, an MR of one), Roe (CT)."""

    def __init__(self) -> None:
        self.doe, self.roe = generate_uid(), generate_uid()
        self.doe_ct, self.doe_mr, self.roe_ct = generate_uid(), generate_uid(), generate_uid()
        self.records = [
            make_record(study=self.doe, series=self.doe_ct, instance_number=1, patient_name="Doe^John"),
            make_record(study=self.doe, series=self.doe_ct, instance_number=2, patient_name="Doe^John"),
            make_record(study=self.doe, series=self.doe_mr, modality="MR", patient_name="Doe^John"),
            make_record(
                study=self.roe,
                series=self.roe_ct,
                patient_name="Roe^Jane",
                patient_id="PAT-2",
                study_date="20240215",
                accession="ACC-2",
                BodyPartExamined="CHEST",
            ),
        ]


@pytest.fixture
def data() -> Data:
    return Data()


pytestmark = pytest.mark.both_backends


@pytest.fixture
def client(settings: Settings, data: Data) -> Iterator[TestClient]:
    # Index records without files: the start-up reconciliation would remove them as damage.
    app = create_app(settings.with_(verify_at_startup=False))
    with TestClient(app, base_url="http://testserver") as test_client:
        for record in data.records:  # in the app's own event loop, where its clients live
            assert test_client.portal.call(app.state.services.index.add_instance, record)
        yield test_client


def search(client: TestClient, url: str, **headers: str) -> list[dict[str, Any]]:
    response = client.get(url, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/dicom+json"
    return response.json()


def uids(client: TestClient, url: str, tag: str = "0020000D") -> list[str]:
    return [result[tag]["Value"][0] for result in search(client, url)]


def first(result: dict[str, Any], tag: str) -> Any:
    return result[tag]["Value"][0]


def error(client: TestClient, url: str, status: int = 400, **headers: str) -> str:
    response = client.get(url, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["status"] == status
    return response.json()["message"]


# -- the six resources ----------------------------------------------------------------------


def test_all_studies(client: TestClient, data: Data) -> None:
    results = search(client, "/v1/studies")
    assert [first(r, "0020000D") for r in results] == [data.doe, data.roe]
    assert first(results[0], "00081190") == f"{ROOT}/studies/{data.doe}"


def test_all_series_carry_study_attributes(client: TestClient, data: Data) -> None:
    results = search(client, "/v1/series")
    assert [first(r, "0020000E") for r in results] == [data.doe_ct, data.doe_mr, data.roe_ct]
    assert set(results[0]) >= STUDY_DEFAULTS | SERIES_DEFAULTS
    assert first(results[1], "00081190") == f"{ROOT}/studies/{data.doe}/series/{data.doe_mr}"


def test_series_of_a_study(client: TestClient, data: Data) -> None:
    results = search(client, f"/v1/studies/{data.doe}/series")
    assert [first(r, "0020000E") for r in results] == [data.doe_ct, data.doe_mr]
    assert set(results[0]) == SERIES_DEFAULTS | {"0020000D"}


def test_all_instances_carry_study_and_series_attributes(client: TestClient, data: Data) -> None:
    results = search(client, "/v1/instances")
    assert len(results) == 4
    assert set(results[0]) >= STUDY_DEFAULTS | SERIES_DEFAULTS | INSTANCE_DEFAULTS
    record = data.records[0]
    expected = f"{ROOT}/studies/{data.doe}/series/{data.doe_ct}/instances/{record.sop_uid}"
    assert first(results[0], "00081190") == expected


def test_instances_of_a_study_carry_series_attributes(client: TestClient, data: Data) -> None:
    results = search(client, f"/v1/studies/{data.doe}/instances")
    assert [first(r, "0020000E") for r in results] == [data.doe_ct, data.doe_ct, data.doe_mr]
    assert set(results[0]) == SERIES_DEFAULTS | INSTANCE_DEFAULTS | {"0020000D"}


def test_instances_of_a_series(client: TestClient, data: Data) -> None:
    results = search(client, f"/v1/studies/{data.doe}/series/{data.doe_ct}/instances")
    assert [first(r, "00200013") for r in results] == [1, 2]
    assert set(results[0]) == INSTANCE_DEFAULTS | {"0020000D", "0020000E"}
    assert not search(client, f"/v1/studies/{data.roe}/series/{data.doe_ct}/instances")


# -- computed attributes --------------------------------------------------------------------


def test_computed_study_and_series_attributes(client: TestClient, data: Data) -> None:
    doe = search(client, f"/v1/studies?StudyInstanceUID={data.doe}")[0]
    assert doe["00080061"]["Value"] == ["CT", "MR"]
    assert (first(doe, "00201206"), first(doe, "00201208"), first(doe, "00080056")) == (2, 3, "ONLINE")
    series = search(client, f"/v1/studies/{data.doe}/series")
    assert [first(s, "00201209") for s in series] == [2, 1]


# -- matching -------------------------------------------------------------------------------


def test_keyword_and_tag_keys(client: TestClient, data: Data) -> None:
    assert uids(client, "/v1/studies?PatientID=PAT-2") == [data.roe]
    assert uids(client, "/v1/studies?00100020=PAT-2") == [data.roe]


def test_percent_encoded_values(client: TestClient, data: Data) -> None:
    assert uids(client, "/v1/studies?PatientName=DOE%5EJ%2A") == [data.doe]
    assert uids(client, "/v1/studies?PatientName=doe%5Ejohn") == [data.doe]


def test_double_encoded_values(client: TestClient, data: Data) -> None:
    assert uids(client, "/v1/studies?PatientName=DOE%255EJ%252A") == [data.doe]


def test_wildcard_uid_list_range_and_fuzzy(client: TestClient, data: Data) -> None:
    assert uids(client, "/v1/studies?AccessionNumber=ACC-?") == [data.doe, data.roe]
    assert uids(client, f"/v1/studies?StudyInstanceUID={data.roe},{data.doe}") == [data.doe, data.roe]
    assert uids(client, f"/v1/studies?StudyInstanceUID={data.roe}&StudyInstanceUID=1.2.3") == [data.roe]
    assert uids(client, "/v1/studies?StudyDate=20240201-20240301") == [data.roe]
    assert uids(client, "/v1/studies?StudyDate=-20240102") == [data.doe]
    assert uids(client, "/v1/studies?PatientName=ja&fuzzymatching=true") == [data.roe]
    assert uids(client, "/v1/studies?ModalitiesInStudy=MR") == [data.doe]


def test_numbers_compare_as_numbers_with_ranges(client: TestClient, data: Data) -> None:
    base = f"/v1/studies/{data.doe}/series/{data.doe_ct}/instances"
    one, two = data.records[0].sop_uid, data.records[1].sop_uid
    assert uids(client, f"{base}?InstanceNumber=2-9", "00080018") == [two]
    assert uids(client, f"{base}?InstanceNumber=-+1", "00080018") == [one]
    assert uids(client, f"{base}?InstanceNumber=1.0", "00080018") == [one]
    assert uids(client, f"{base}?InstanceNumber=0-", "00080018") == [one, two]
    assert uids(client, f"{base}?InstanceNumber=-1", "00080018") == []


def test_higher_level_keys_on_lower_resources(client: TestClient, data: Data) -> None:
    assert uids(client, "/v1/series?PatientID=PAT-1&Modality=CT", "0020000E") == [data.doe_ct]
    found = search(client, "/v1/instances?PatientName=roe*&BodyPartExamined=CHEST")
    assert [first(r, "00080018") for r in found] == [data.records[3].sop_uid]


def test_matched_attributes_are_returned(client: TestClient, data: Data) -> None:
    result = search(client, f"/v1/studies/{data.roe}/series?BodyPartExamined=CHEST")[0]
    assert first(result, "00180015") == "CHEST"


def test_empty_result_is_200_with_an_empty_array(client: TestClient) -> None:
    response = client.get("/v1/studies?PatientID=nobody")
    assert (response.status_code, response.json()) == (200, [])


# -- includefield, limit, offset ------------------------------------------------------------


def test_includefield(client: TestClient, data: Data) -> None:
    result = search(client, "/v1/studies?includefield=SOPClassesInStudy&includefield=00101010,SOPInstanceUID")[0]
    assert "00080062" in result and "00080018" not in result  # lower levels are never returned
    series = search(client, f"/v1/studies/{data.roe}/series?includefield=PatientID")[0]
    assert first(series, "00100020") == "PAT-2"


def test_includefield_all(client: TestClient, data: Data) -> None:
    plain = search(client, f"/v1/studies/{data.roe}/series")[0]
    everything = search(client, f"/v1/studies/{data.roe}/series?includefield=all")[0]
    assert "00180015" not in plain and first(everything, "00180015") == "CHEST"


def test_limit_and_offset_with_a_warning_when_more_remain(client: TestClient, data: Data) -> None:
    response = client.get("/v1/instances?limit=3")
    assert len(response.json()) == 3
    assert response.headers["warning"].startswith("299 ") and "offset=3" in response.headers["warning"]
    last = client.get("/v1/instances?limit=3&offset=3")
    assert [first(r, "00080018") for r in last.json()] == [data.records[3].sop_uid]
    assert "warning" not in last.headers


# -- media types ----------------------------------------------------------------------------


@pytest.mark.parametrize("accept", ["application/dicom+json", "*/*", "application/*", "text/html, */*;q=0.1"])
def test_acceptable_media_types(client: TestClient, accept: str) -> None:
    assert len(search(client, "/v1/studies", accept=accept)) == 2


def test_plain_json_when_asked_for_alone(client: TestClient) -> None:
    response = client.get("/v1/studies", headers={"accept": "application/json"})
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"


def test_accept_query_parameter(client: TestClient) -> None:
    assert error(client, "/v1/studies?accept=application/xml", 406)
    assert len(search(client, "/v1/studies?accept=application/dicom%2Bjson", accept="text/html")) == 2


@pytest.mark.parametrize("accept", ['multipart/related; type="application/dicom+xml"', "application/xml"])
def test_unacceptable_media_types(client: TestClient, accept: str) -> None:
    assert "application/dicom+json" in error(client, "/v1/studies", 406, accept=accept)


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("/v1/studies?Foo=1", "unknown attribute 'Foo' in 'Foo=1'"),
        ("/v1/studies?StudyDate=20241301", "StudyDate=20241301"),
        ("/v1/studies?StudyDate=2024-01-02", "StudyDate"),
        ("/v1/studies?StudyInstanceUID=1.2.abc", "invalid UID '1.2.abc'"),
        ("/v1/studies?SOPInstanceUID=1.2.3", "attribute 'SOPInstanceUID' (instance level) cannot be matched"),
        ("/v1/series?InstanceNumber=1", "InstanceNumber"),
        ("/v1/studies?limit=ten", "limit"),
        ("/v1/studies?offset=-1", "offset"),
        ("/v1/studies?fuzzymatching=maybe", "fuzzymatching"),
        ("/v1/studies?includefield=Nope", "unknown attribute 'Nope'"),
        ("/v1/studies?NumberOfStudyRelatedSeries=2", "return-only"),
        ("/v1/studies/1.2.abc/series", "invalid Study Instance UID '1.2.abc'"),
        ("/v1/studies/1.2.3/series/x.y/instances", "invalid Series Instance UID 'x.y'"),
        ("/v1/studies/1.2.3/instances?StudyTime=99", "StudyTime=99"),
    ],
)
def test_bad_requests_name_the_parameter(client: TestClient, url: str, fragment: str) -> None:
    assert fragment in error(client, url)
