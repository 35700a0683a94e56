"""Telemetry off (the default): no span is made at all, neither per request nor per port
call; the ports the use cases get are the adapters' own methods. Run in a fresh process:
OpenTelemetry's provider is global and tests/test_telemetry.py installs one for good."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import sys
from pathlib import Path
from starlette.testclient import TestClient
from dicomweb.app import create_app
from dicomweb.composition import build_services
from dicomweb.settings import Settings
from dicomweb.telemetry import instruments
from tests.support.builders import make_dataset, multipart_body, to_bytes

def no_span(*args, **kwargs):
    raise AssertionError("a span was made with telemetry off")

instruments.tracer.start_as_current_span = no_span
instruments.tracer.start_span = no_span
settings = Settings(data_dir=Path(sys.argv[1]), allowed_hosts=("testserver",))
services = build_services(settings)
assert not instruments.recording()
assert services.index.get_instance.__self__ is services.index._target  # the adapter's bound method
assert services.blobs.put_bytes.__self__ is services.blobs._target
body, content_type = multipart_body([to_bytes(make_dataset())])
with TestClient(create_app(settings, services), base_url="http://testserver") as client:
    assert client.post("/v1/studies", content=body, headers={"Content-Type": content_type}).status_code == 200
    assert len(client.get("/v1/instances").json()) == 1
print("ok")
"""


def test_no_span_objects_when_telemetry_is_off(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "data")], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parents[1], env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
