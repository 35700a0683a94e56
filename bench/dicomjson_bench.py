"""Microseconds per DICOM JSON build (``dicomcore.dicomjson.to_dicom_json``) of one instance header.

Usage: ``python -m bench.dicomjson_bench [--repeat 300]``

Times only ``to_dicom_json`` on a freshly parsed header (as STOW calls it from
``sidecars.derive``; parsing converts a few elements, the rest are still raw), for three
instances: the bench's ~513 KB CT instance, a JPEG whole-slide level from
``dicomweb.demo.wsi_generate`` (sequences, codes, an ICC profile) and the native WSI header of
``bench.wsi_data``. Prints the median and the 10th/90th percentiles, and the load average
(the machine is shared: compare runs taken back to back).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench import datagen, wsi_data
from dicomcore.dicomjson import to_dicom_json
from dicomcore.instance import read_instance

INSTANCE_NAMES = ("CT 512x512 (bench)", "WSI JPEG level (wsi_generate)", "WSI native (wsi_data)")


def instances(folder: Path) -> dict[str, bytes]:
    from dicomweb.demo.wsi_generate import generate_pyramid

    slide = generate_pyramid(folder / "jpeg", width=64, height=64, tile=32, levels=1, codec="jpeg", workers=1)[0]
    native = wsi_data.write_native_slide(folder / "native.dcm", target_bytes=16 * 16 * 3, tile=16)
    ct = next(iter(datagen.SeriesSpec("dicomjson-bench", 0, 1, 1).instances()))
    return dict(zip(INSTANCE_NAMES, (ct, slide.read_bytes(), native.path.read_bytes()), strict=True))


def time_builds(data: bytes, repeat: int) -> list[float]:
    """CPU microseconds (this thread) of each of ``repeat`` builds, each on a header parsed
    just before: CPU time, which the load of a shared machine disturbs far less than wall time."""
    uri_base = "{{service-root}}/studies/1/series/2/instances/3/bulkdata/"
    samples = []
    for _ in range(repeat):
        parsed = read_instance(io.BytesIO(data))
        started = time.thread_time_ns()
        to_dicom_json(parsed.dataset, lambda path: uri_base + path, 1024, pixel_data=parsed.frames)
        samples.append((time.thread_time_ns() - started) / 1000)
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=300, help="builds per instance (default 300)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        data = instances(Path(tmp))
    for name, body in data.items():
        time_builds(body, 20)  # warm up: imports, caches
        samples = sorted(time_builds(body, args.repeat))
        decile = len(samples) // 10
        elements = len(read_instance(io.BytesIO(body)).dataset)
        print(f"{name:32} {elements:3d} top-level elements: median {statistics.median(samples):7.1f} µs "
              f"(p10 {samples[decile]:.1f}, p90 {samples[-decile - 1]:.1f})")
    print(f"load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
