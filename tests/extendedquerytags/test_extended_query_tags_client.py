"""A real client: dicomweb-client's search_for_instances on an extended query tag."""

from __future__ import annotations

from pathlib import Path

import httpx
from dicomweb_client.api import DICOMwebClient

from tests.support.builders import make_dataset
from tests.support.import_area import wait_for_operation
from tests.support.servers import ServerProcess


def test_dicomweb_client_searches_an_extended_tag(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data")
    try:
        client = DICOMwebClient(server.root)
        datasets = [make_dataset(instance_number=number) for number in (1, 2)]
        for ds, thickness in zip(datasets, ("1.25", "5"), strict=True):
            ds.SliceThickness = thickness
        client.store_instances(datasets)
        started = httpx.post(f"{server.root}/extendedquerytags",
                             json=[{"path": "SliceThickness", "level": "instance"}], timeout=30)
        assert started.status_code == 202, started.text
        done = wait_for_operation(lambda url: httpx.get(url, timeout=30), started.json()["href"])
        assert done["status"] == "succeeded", done

        found = client.search_for_instances(search_filters={"SliceThickness": "1.250"},
                                            fields=["SliceThickness"])
        assert [item["00080018"]["Value"][0] for item in found] == [datasets[0].SOPInstanceUID]
        assert found[0]["00180050"]["Value"] == [1.25]
    finally:
        server.stop()
