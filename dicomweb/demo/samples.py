"""The demo set: pydicom's own test files, re-labelled as one fictional patient, and a
small generated whole-slide image.

- "Demo CT": pydicom's ``CT_small.dcm`` restacked into a five-slice series;
- "Demo MR": ``MR_small.dcm`` and the ten-frame Enhanced MR ``emri_small.dcm`` (a multi-frame);
- "Demo slide": a 2048×1536 H&E-like pyramid in three JPEG levels (:mod:`.wsi_generate`).

UIDs are derived from fixed names (not random), so loading the set twice stores it once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pydicom
import pydicom.data
from pydicom.dataset import Dataset
from pydicom.uid import UID, generate_uid

from dicomweb.demo.wsi_generate import generate_pyramid

PATIENT_NAME = "DEMO^FIRST HOUR"
PATIENT_ID = "DEMO-0001"
"""Fictional; the README's examples search for it (``PatientName=DEMO*``)."""

CT_SLICES = 5
SLIDE_SIZE = (2048, 1536)
SLIDE_LEVELS = 3


def demo_uid(*names: str) -> UID:
    """A UID derived from ``names``: the same on every run and every machine."""
    return generate_uid(entropy_srcs=["dicomweb-server demo", *names])


@dataclass(frozen=True)
class DemoStudy:
    description: str
    study_uid: UID


CT = DemoStudy("Demo CT", demo_uid("ct"))
MR = DemoStudy("Demo MR", demo_uid("mr"))
SLIDE = DemoStudy("Demo slide", demo_uid("slide"))
STUDIES = (CT, MR, SLIDE)


def write_radiology(folder: Path) -> list[Path]:
    """The CT and MR studies as Part 10 files in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(CT_SLICES):
        ds = _relabelled("CT_small.dcm", CT, series=("ct", "Five CT slices"), instance=f"ct-{index}",
                         number=index + 1)
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y, z + index * float(ds.SliceThickness)]
        ds.SliceLocation = z + index * float(ds.SliceThickness)
        paths.append(_save(ds, folder / f"ct-{index}.dcm"))
    paths.append(_save(_relabelled("MR_small.dcm", MR, series=("mr", "One MR slice"), instance="mr", number=1),
                       folder / "mr.dcm"))
    paths.append(_save(_relabelled("emri_small.dcm", MR, series=("emri", "Enhanced MR, ten frames"),
                                   instance="emri", number=1), folder / "emri.dcm"))
    return paths


def write_slide(folder: Path, workers: int = 1) -> list[Path]:
    """The whole-slide study: one file per pyramid level, full resolution first."""
    width, height = SLIDE_SIZE
    paths = generate_pyramid(folder, width=width, height=height, tile=256, levels=SLIDE_LEVELS, codec="jpeg",
                             study_uid=SLIDE.study_uid, patient_id=PATIENT_ID, workers=workers)
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.PatientName = PATIENT_NAME
        ds.StudyDescription = SLIDE.description
        _save(ds, path)
    return paths


def _relabelled(name: str, study: DemoStudy, *, series: tuple[str, str], instance: str, number: int) -> Dataset:
    source = pydicom.data.get_testdata_file(name)
    if source is None:
        raise FileNotFoundError(f"pydicom's test file {name} is missing from this pydicom installation")
    ds = pydicom.dcmread(source)
    ds.PatientName, ds.PatientID = PATIENT_NAME, PATIENT_ID
    ds.StudyInstanceUID, ds.StudyDescription = study.study_uid, study.description
    ds.SeriesInstanceUID, ds.SeriesDescription = demo_uid(series[0]), series[1]
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = demo_uid(instance)
    ds.StudyID, ds.AccessionNumber = "DEMO", "DEMO"
    ds.InstanceNumber = number
    return ds


def _save(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path
