"""A real client: dicomweb-client's search_for_instances on extended query tags (a number
range, a path into a sequence)."""

from __future__ import annotations

from pathlib import Path

import httpx
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset

from tests.support.builders import make_dataset
from tests.support.import_area import wait_for_operation
from tests.support.servers import ServerProcess


def test_dicomweb_client_searches_an_extended_tag(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data")
    try:
        client = DICOMwebClient(server.root)
        datasets = [make_dataset(instance_number=number) for number in (1, 2)]
        for ds, thickness, code in zip(datasets, ("1.25", "5"), ("P1", "P2"), strict=True):
            ds.SliceThickness = thickness
            item = Dataset()
            item.CodeValue = code
            ds.ProcedureCodeSequence = [item]
        client.store_instances(datasets)
        started = httpx.post(f"{server.root}/extendedquerytags",
                             json=[{"path": "SliceThickness", "level": "instance"},
                                   {"path": "ProcedureCodeSequence.CodeValue", "level": "study"}], timeout=30)
        assert started.status_code == 202, started.text
        done = wait_for_operation(lambda url: httpx.get(url, timeout=30), started.json()["href"])
        assert done["status"] == "succeeded", done

        found = client.search_for_instances(search_filters={"SliceThickness": "1.250"},
                                            fields=["SliceThickness"])
        assert [item["00080018"]["Value"][0] for item in found] == [datasets[0].SOPInstanceUID]
        assert found[0]["00180050"]["Value"] == [1.25]
        in_range = client.search_for_instances(search_filters={"SliceThickness": "1-2"})
        assert [item["00080018"]["Value"][0] for item in in_range] == [datasets[0].SOPInstanceUID]
        by_code = client.search_for_instances(search_filters={"ProcedureCodeSequence.CodeValue": "P2"})
        assert [item["00080018"]["Value"][0] for item in by_code] == [datasets[1].SOPInstanceUID]
    finally:
        server.stop()
