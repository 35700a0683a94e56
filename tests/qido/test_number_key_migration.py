"""An index written before number keys were ordered is rewritten once when it is opened."""

from __future__ import annotations

import sqlite3

from starlette.testclient import TestClient

from dicomweb.app import create_app
from dicomweb.settings import Settings
from tests.support.builders import make_dataset, multipart_body, to_bytes


def _found(client: TestClient, query: str) -> int:
    response = client.get(f"/v1/instances?{query}")
    assert response.status_code == 200, response.text
    return len(response.json())


def test_old_number_keys_are_rewritten_on_open(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        body, content_type = multipart_body([to_bytes(make_dataset(instance_number=7, rows=512, columns=512))])
        assert client.post("/v1/studies", content=body, headers={"Content-Type": content_type}).status_code == 200
    with sqlite3.connect(settings.data_dir / "index.sqlite") as database:  # the keys as they were written before
        database.execute("UPDATE instance_value SET value = '7' WHERE tag = '00200013'")
        database.execute("UPDATE instance_value SET value = '512' WHERE tag = '00280010'")
        database.execute("PRAGMA user_version = 0")
    with TestClient(create_app(settings)) as client:
        assert _found(client, "InstanceNumber=7") == 1
        assert _found(client, "InstanceNumber=5-9") == 1
        assert _found(client, "Rows=100-600") == 1
        assert _found(client, "Rows=600-") == 0
