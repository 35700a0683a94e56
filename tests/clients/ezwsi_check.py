"""Open a whole-slide image with ez-wsi-dicomweb the ordinary way and save patches.

Runs in ez-wsi's own virtual environment (.venv-ezwsi; see ezwsi-requirements.txt), so it
imports nothing from this repository. ``DicomSlide`` from the series path (QIDO with
ez-wsi's includefield list, then frames), then every tile of every level read as a patch
with ``get_patch(level, x, y, w, h).image_bytes()``. The patches and each level's size go
to an .npz for tests/clients/test_ezwsi.py to compare with the source tiles.

    .venv-ezwsi/bin/python tests/clients/ezwsi_check.py SERIES_URL OUT.npz
"""

from __future__ import annotations

import sys

import numpy as np
from ez_wsi_dicomweb import credential_factory, dicom_slide, dicom_web_interface
from ez_wsi_dicomweb.ml_toolkit import dicom_path


def main(series_url: str, out: str) -> int:
    interface = dicom_web_interface.DicomWebInterface(credential_factory.NoAuthCredentialsFactory())
    slide = dicom_slide.DicomSlide(interface, dicom_path.FromString(series_url))
    arrays: dict[str, np.ndarray] = {}
    for level in slide.levels:
        index = int(level.level_index)
        arrays[f"size_{index}"] = np.array([level.width, level.height, level.frame_width, level.frame_height])
        for y in range(0, level.height, level.frame_height):
            for x in range(0, level.width, level.frame_width):
                width, height = min(level.frame_width, level.width - x), min(level.frame_height, level.height - y)
                patch = slide.get_patch(level, x, y, width, height)
                arrays[f"patch_{index}_{x}_{y}"] = patch.image_bytes()
    np.savez(out, **arrays)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
