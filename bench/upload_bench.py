"""A multi-GB upload through an upload session against Azurite:
``python -m bench.upload_bench [--gib 2]``.

``POST /v1/uploads`` on the app (Azure adapters: Azurite with a disk workspace, the Cosmos
test server) gives a SAS URL; a sparse DICOM file of ``--gib`` GiB is uploaded to it in 8 MB
blocks with the Storage SDK (4 in flight); the BlobCreated event is then handled as the
Functions blob trigger would (a server-side copy into the instance layout, header read with
ranged reads), and QIDO must find the instance. Prints the upload time, the import time and
the process's peak memory (app and uploader together), which must stay bounded.
"""

from __future__ import annotations

import argparse
import json
import resource
import shlex
import sys
import tempfile
import time
import uuid
from pathlib import Path

from azure.storage.blob import BlobClient
from starlette.testclient import TestClient

from dicomweb.app import create_app
from dicomweb.settings import Settings
from dicomweb.storage.blob_events import BlobCreated
from tests.support.builders import write_large_instance
from tests.support.emulators import start_azurite, start_cosmos

STUDY = "1.2.826.0.1.3680043.8.498.7200"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.upload_bench", description=__doc__)
    parser.add_argument("--gib", type=float, default=2.0)
    args = parser.parse_args(argv)
    azurite, cosmos = start_azurite(in_memory=False), start_cosmos()
    try:
        fresh = uuid.uuid4().hex[:12]
        with tempfile.TemporaryDirectory(prefix="upload-bench-") as scratch:
            settings = Settings(
                data_dir=Path(scratch) / "data", blob_store="azure", index_store="cosmos",
                blob_connection_string=azurite.connection_string, blob_container=f"bench-{fresh}",
                cosmos_endpoint=cosmos.endpoint, cosmos_key=cosmos.key, cosmos_database=f"bench-{fresh}")
            source = Path(scratch) / "large.dcm"
            sop = write_large_instance(str(source), int(args.gib * (1 << 30)), study=STUDY)
            with TestClient(create_app(settings)) as client:
                before = _peak_rss_mb()
                url = client.post("/v1/uploads").json()["uploadUrl"]
                started = time.perf_counter()
                blob = BlobClient.from_blob_url(url, max_block_size=8 << 20, max_single_put_size=8 << 20)
                with open(source, "rb") as data:
                    blob.upload_blob(data, max_concurrency=4)
                uploaded = time.perf_counter() - started
                name = url.split(f"/{settings.blob_container}/", 1)[1].split("?", 1)[0]
                services = client.app.state.services  # type: ignore[attr-defined]
                started = time.perf_counter()
                outcome = client.portal.call(  # type: ignore[union-attr]
                    services.blob_created.handle, BlobCreated(settings.blob_container, name))
                imported = time.perf_counter() - started
                found = client.get(f"/v1/studies/{STUDY}/instances", params={"SOPInstanceUID": sop}).json()
                result = {
                    "command": shlex.join(["python", "-m", "bench.upload_bench", *argv]),
                    "bytes": source.stat().st_size, "outcome": str(outcome), "found_by_qido": len(found) == 1,
                    "upload_seconds": round(uploaded, 1),
                    "upload_mb_per_s": round(source.stat().st_size / uploaded / 1e6, 1),
                    "import_seconds": round(imported, 1),
                    "peak_rss_mb_before": round(before), "peak_rss_mb_after": round(_peak_rss_mb()),
                }
        print(json.dumps(result, indent=2))
        return 0 if result["found_by_qido"] else 1
    finally:
        azurite.stop()
        cosmos.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
