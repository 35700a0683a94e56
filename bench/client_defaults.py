"""What the client-facing defaults cost: ``python -m bench.client_defaults [--instances N] [--repeats R]``.

One server process on 127.0.0.1, one series of N small instances and a generated JPEG slide
level. Prints the median latency (ms) of:

* an instance search of the series (a page of 100), without includefield, with ez-wsi's
  attribute list (answered from the stored metadata, one batched read), and with
  ``includefield=all``;
* one 256×256 JPEG tile as stored (``type="*/*"``) and in PS3.18's default
  (``type="application/octet-stream"``: decoded to Explicit VR Little Endian).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import pydicom

from dicomweb.demo.wsi_generate import generate_pyramid
from tests.support.builders import make_dataset, multipart_body, to_bytes
from tests.support.servers import ServerProcess

EZWSI_FIELDS = ("StudyInstanceUID,SeriesInstanceUID,SOPInstanceUID,SOPClassUID,Rows,Columns,SamplesPerPixel,"
                "BitsAllocated,BitsStored,HighBit,PixelRepresentation,PhotometricInterpretation,"
                "PlanarConfiguration,NumberOfFrames,ImageType,TotalPixelMatrixColumns,TotalPixelMatrixRows,"
                "TotalPixelMatrixFocalPlanes,DimensionOrganizationType,ConcatenationUID,InConcatenationNumber,"
                "ConcatenationFrameOffsetNumber,InstanceNumber,TransferSyntaxUID,PixelSpacing,"
                "ImagedVolumeWidth,ImagedVolumeHeight,OpticalPathSequence,AcquisitionDateTime,SeriesNumber,"
                "FrameOfReferenceUID,ContentDate,ContentTime,SpecimenLabelInImage,BurnedInAnnotation,"
                "LossyImageCompression,StudyDate")


def _median_ms(http: httpx.Client, url: str, repeats: int, **kwargs: object) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        response = http.get(url, **kwargs)  # type: ignore[arg-type]
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.text
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        level = generate_pyramid(root / "slide", width=1024, height=768, tile=256, levels=1, codec="jpeg",
                                 workers=1)[0]
        tile = pydicom.dcmread(level, stop_before_pixels=True)
        server = ServerProcess(root / "data")
        try:
            with httpx.Client(timeout=120) as http:
                first = make_dataset()
                series = [make_dataset(study=first.StudyInstanceUID, series=first.SeriesInstanceUID,
                                       instance_number=n) for n in range(args.instances)]
                body, content_type = multipart_body([to_bytes(ds) for ds in series])
                assert http.post(f"{server.root}/studies", content=body,
                                 headers={"Content-Type": content_type}).status_code == 200
                assert http.post(f"{server.root}/studies", content=level.read_bytes(),
                                 headers={"Content-Type": "application/dicom"}).status_code == 200
                search = f"{server.root}/studies/{first.StudyInstanceUID}/series/{first.SeriesInstanceUID}/instances"
                frame = (f"{server.root}/studies/{tile.StudyInstanceUID}/series/{tile.SeriesInstanceUID}"
                         f"/instances/{tile.SOPInstanceUID}/frames/5")
                rows = {
                    "QIDO 100 instances": _median_ms(http, search, args.repeats),
                    "QIDO 100 instances, ez-wsi includefield": _median_ms(
                        http, search, args.repeats, params={"includefield": EZWSI_FIELDS}),
                    "QIDO 100 instances, includefield=all": _median_ms(
                        http, search, args.repeats, params={"includefield": "all"}),
                    "frame as stored (type=*/*)": _median_ms(
                        http, frame, args.repeats, headers={"Accept": 'multipart/related; type="*/*"'}),
                    "frame default (octet-stream, decoded)": _median_ms(
                        http, frame, args.repeats,
                        headers={"Accept": 'multipart/related; type="application/octet-stream"'}),
                }
        finally:
            server.stop()
    for name, ms in rows.items():
        print(f"{name:45s} {ms:8.2f} ms")


if __name__ == "__main__":
    main()
