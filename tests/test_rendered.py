"""Rendered images, thumbnails and CORS at the HTTP level."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom import dcmread
from pydicom.data import get_testdata_file
from starlette.testclient import TestClient

from dicomweb.app import create_app
from dicomweb.settings import Settings
from tests.support.builders import DICOM, make_dataset, to_bytes


def _instance_url(ds) -> str:
    return f"/v1/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"


def _store_file(client: TestClient, name: str):
    path = get_testdata_file(name)
    assert client.post("/v1/studies", content=Path(path).read_bytes(), headers={"Content-Type": DICOM}).status_code in (
        200, 409)
    return dcmread(path)


def test_rendered_instance_jpeg_and_png(client: TestClient) -> None:
    ds = make_dataset(rows=64, columns=32)
    client.post("/v1/studies", content=to_bytes(ds), headers={"Content-Type": DICOM})
    jpeg = client.get(_instance_url(ds) + "/rendered")
    assert jpeg.status_code == 200 and jpeg.headers["content-type"] == "image/jpeg"
    assert Image.open(BytesIO(jpeg.content)).size == (32, 64)
    png = client.get(_instance_url(ds) + "/rendered", headers={"Accept": "image/png"})
    assert png.headers["content-type"] == "image/png"
    image = np.asarray(Image.open(BytesIO(png.content)))
    assert image.min() == 0 and image.max() == 255  # no stored window: the pixel range is stretched


def test_rendered_frame_of_compressed_colour_instance_matches_pydicom(client: TestClient) -> None:
    ds = _store_file(client, "SC_rgb_rle_2frame.dcm")
    response = client.get(_instance_url(ds) + "/frames/2/rendered", headers={"Accept": "image/png"})
    assert response.status_code == 200, response.text
    rendered = np.asarray(Image.open(BytesIO(response.content)).convert("RGB"))
    assert np.array_equal(rendered, ds.pixel_array[1])


def test_viewport_window_and_quality(client: TestClient) -> None:
    ds = make_dataset(rows=100, columns=200)
    client.post("/v1/studies", content=to_bytes(ds), headers={"Content-Type": DICOM})
    url = _instance_url(ds) + "/rendered"
    small = client.get(url, params={"viewport": "50,50", "quality": "50"})
    assert Image.open(BytesIO(small.content)).size == (50, 25)
    windowed = client.get(url, params={"window": "100,10"}, headers={"Accept": "image/png"})
    assert windowed.status_code == 200
    for params, name in [({"quality": "0"}, "quality"), ({"viewport": "0,5"}, "viewport"),
                         ({"window": "a,b"}, "window"), ({"window": "10,20,sigmoid"}, "sigmoid")]:
        response = client.get(url, params=params)
        assert response.status_code == 400 and name in response.json()["message"], params
    assert client.get(url, headers={"Accept": "image/tiff"}).status_code == 406
    assert client.get(_instance_url(ds) + "/frames/2/rendered").status_code == 404


def test_thumbnails_at_every_level(client: TestClient) -> None:
    ds = make_dataset(rows=512, columns=256)
    client.post("/v1/studies", content=to_bytes(ds), headers={"Content-Type": DICOM})
    for url in (f"/v1/studies/{ds.StudyInstanceUID}/thumbnail",
                f"/v1/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/thumbnail",
                _instance_url(ds) + "/thumbnail", _instance_url(ds) + "/frames/1/thumbnail"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert Image.open(BytesIO(response.content)).size == (64, 128)
    assert client.get("/v1/studies/1.2.3/thumbnail").status_code == 404


def test_no_pixel_data_cannot_be_rendered(client: TestClient) -> None:
    ds = make_dataset()
    del ds.PixelData
    client.post("/v1/studies", content=to_bytes(ds), headers={"Content-Type": DICOM})
    response = client.get(_instance_url(ds) + "/rendered")
    assert response.status_code == 404 and "pixel data" in response.json()["message"]


def test_cors_preflight_and_exposed_headers(tmp_path) -> None:
    app = create_app(Settings(data_dir=tmp_path, cors_origins=("http://viewer.example",),
                              allowed_hosts=("testserver",)))
    with TestClient(app) as client:
        preflight = client.options("/v1/studies", headers={
            "Origin": "http://viewer.example", "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "Accept, Authorization, Content-Type"})
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "http://viewer.example"
        allowed = preflight.headers["access-control-allow-headers"].lower()
        assert {"accept", "authorization", "content-type"} <= {h.strip() for h in allowed.split(",")}
        response = client.get("/v1/studies", headers={"Origin": "http://viewer.example"})
        assert "etag" in response.headers["access-control-expose-headers"].lower()
        other = client.options("/v1/studies", headers={
            "Origin": "http://evil.example", "Access-Control-Request-Method": "GET"})
        assert other.status_code == 400
