"""Several clients storing into one study at once lose nothing and corrupt nothing."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from pydicom.uid import generate_uid

from tests.support.builders import DICOM, make_dataset, multipart_body, parse_multipart, to_bytes
from tests.support.emulators import azure_environment
from tests.support.servers import ServerProcess

CLIENTS = 8
PER_CLIENT = 12
SETTLE_SECONDS = 5.0
"""Far above one batch recount of the Cosmos store (0.5 s and the recount itself)."""


def _summaries_once_settled(http: httpx.Client, root: str, study: str, total: int) -> tuple[dict, list[dict]]:
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        (found,) = http.get(f"{root}/studies", params={"StudyInstanceUID": study}).json()
        per_series = http.get(f"{root}/studies/{study}/series").json()
        settled = found["00201208"]["Value"] == [total] and sum(s["00201209"]["Value"][0] for s in per_series) == total
        if settled or time.monotonic() > deadline:
            return found, per_series
        time.sleep(0.05)


@pytest.mark.parametrize(("workers", "backend"), [(1, "embedded"), (2, "embedded"), (2, "azure")])
def test_parallel_stores_into_one_study(tmp_path, workers: int, backend: str, request: pytest.FixtureRequest) -> None:
    env = None
    if backend == "azure":  # two server processes sharing Azurite and one Cosmos database
        database = f"conc-{generate_uid()[-12:]}"
        env = azure_environment(request.getfixturevalue("azurite"), request.getfixturevalue("cosmos_server"))
        env.update(DICOMWEB_BLOB_CONTAINER=database.replace(".", ""), DICOMWEB_COSMOS_DATABASE=database)
    server = ServerProcess(tmp_path / "data", workers=workers, env=env)
    study = generate_uid()
    series = [generate_uid() for _ in range(3)]
    modalities = ["CT", "MR", "PT"]
    batches = [[make_dataset(study=study, series=series[(c + i) % 3], modality=modalities[(c + i) % 3],
                             instance_number=c * 100 + i, patient_id="CONC") for i in range(PER_CLIENT)]
               for c in range(CLIENTS)]
    duplicate = batches[0][0]

    def send(batch) -> list[int]:
        codes = []
        with httpx.Client(timeout=60) as http:
            for ds in batch:
                body, content_type = multipart_body([to_bytes(ds)])
                codes.append(http.post(f"{server.root}/studies/{study}", content=body,
                                       headers={"Content-Type": content_type}).status_code)
            # everyone also re-sends the same instance: exactly one copy may exist
            codes.append(http.post(f"{server.root}/studies", content=to_bytes(duplicate),
                                   headers={"Content-Type": DICOM}).status_code)
        return codes

    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            results = list(pool.map(send, batches))
        assert all(code == 200 for codes in results for code in codes[:-1])
        assert [codes[-1] for codes in results].count(409) == CLIENTS

        with httpx.Client(timeout=60) as http:
            total = CLIENTS * PER_CLIENT
            # The Cosmos store recounts summaries in batches per process: another worker's
            # last adds reach this worker's answers after at most one pass (docs/architecture.md).
            found, per_series = _summaries_once_settled(http, server.root, study, total)
            assert found["00201208"]["Value"] == [total]
            assert found["00201206"]["Value"] == [3]
            assert sorted(found["00080061"]["Value"]) == modalities
            assert sum(s["00201209"]["Value"][0] for s in per_series) == total
            response = http.get(f"{server.root}/studies/{study}",
                                headers={"Accept": 'multipart/related; type="application/dicom"'})
            parts = parse_multipart(response.content, response.headers["content-type"])
            sent = {to_bytes(ds) for batch in batches for ds in batch}
            assert len(parts) == total
            assert {payload for _, payload in parts} == sent
            feed = http.get(f"{server.root}/changefeed", params={"limit": 1000, "includeMetadata": "false"}).json()
            assert [entry["sequence"] for entry in feed] == list(range(1, total + 1))
    finally:
        server.stop()
