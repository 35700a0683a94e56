"""GET /changefeed and /changefeed/latest at the HTTP level."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from starlette.testclient import TestClient

from tests.support.builders import make_dataset, multipart_body, to_bytes


def _store(client: TestClient, *datasets) -> None:
    body, content_type = multipart_body([to_bytes(ds) for ds in datasets])
    assert client.post("/v1/studies", content=body, headers={"Content-Type": content_type}).status_code == 200


def test_entries_for_create_and_delete(client: TestClient) -> None:
    a, b = make_dataset(), make_dataset()
    _store(client, a, b)
    assert client.delete(f"/v1/studies/{a.StudyInstanceUID}").status_code == 204
    feed = client.get("/v1/changefeed").json()
    assert [(e["sequence"], e["action"], e["state"], e["sopInstanceUid"]) for e in feed] == [
        (1, "create", "deleted", a.SOPInstanceUID),
        (2, "create", "current", b.SOPInstanceUID),
        (3, "delete", "deleted", a.SOPInstanceUID),
    ]
    first = feed[1]
    assert first["studyInstanceUid"] == b.StudyInstanceUID
    assert first["seriesInstanceUid"] == b.SeriesInstanceUID
    assert first["sopClassUid"] == b.SOPClassUID
    assert first["metadata"]["00100020"]["Value"] == ["PAT-1"]
    assert feed[0]["metadata"] is None  # deleted: no metadata any more
    assert datetime.fromisoformat(first["timestamp"]).tzinfo is not None


def test_paging_by_sequence(client: TestClient) -> None:
    _store(client, *[make_dataset() for _ in range(5)])
    page = client.get("/v1/changefeed", params={"offset": 2, "limit": 2, "includeMetadata": "false"}).json()
    assert [e["sequence"] for e in page] == [3, 4]
    assert "metadata" not in page[0]
    assert client.get("/v1/changefeed", params={"offset": 5}).json() == []


def test_latest(client: TestClient) -> None:
    assert client.get("/v1/changefeed/latest").json() == {"sequence": 0}
    _store(client, make_dataset(), make_dataset())
    latest = client.get("/v1/changefeed/latest", params={"includeMetadata": "false"}).json()
    assert latest["sequence"] == 2 and latest["action"] == "create"


def test_time_window(client: TestClient) -> None:
    _store(client, make_dataset())
    middle = datetime.now(UTC)
    _store(client, make_dataset(), make_dataset())
    after = client.get("/v1/changefeed", params={"startTime": middle.isoformat()}).json()
    assert [e["sequence"] for e in after] == [2, 3]
    before = client.get("/v1/changefeed", params={
        "startTime": (middle - timedelta(hours=1)).isoformat(), "endTime": middle.isoformat()}).json()
    assert [e["sequence"] for e in before] == [1]
    paged = client.get("/v1/changefeed", params={"startTime": "2000-01-01T00:00:00Z", "offset": 1, "limit": 1}).json()
    assert [e["sequence"] for e in paged] == [2]


def test_bad_parameters_are_400_naming_them(client: TestClient) -> None:
    for params, name in [
        ({"offset": "x"}, "offset"), ({"offset": "-1"}, "offset"), ({"limit": "0"}, "limit"),
        ({"limit": "100000"}, "limit"), ({"includeMetadata": "maybe"}, "includeMetadata"),
        ({"startTime": "yesterday"}, "startTime"), ({"endTime": "2024-01-01T00:00:00"}, "endTime"),
        ({"startTime": "2024-01-02T00:00:00Z", "endTime": "2024-01-01T00:00:00Z"}, "startTime"),
    ]:
        response = client.get("/v1/changefeed", params=params)
        assert response.status_code == 400, params
        assert name in response.json()["message"], params
