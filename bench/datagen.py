"""Synthetic DICOM instances for the benchmark, built with pydicom + numpy (no downloads).

Every UID is derived from a seed string, so the orchestrator can compute the study, series
and instance UIDs it will query without asking the client process that generated them.

Serialising a dataset with pydicom costs ~2-4 ms, which would make 100,000 QIDO instances a
multi-minute CPU job on the same two cores the servers use. So CT instances are rendered
from a byte template: pydicom writes one dataset whose variable values are fixed-width
sentinels, and each instance is that byte string with the sentinels replaced.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import UID, ExplicitVRLittleEndian, JPEGBaseline8Bit

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MF_GRAYSCALE_BYTE_SC = "1.2.840.10008.5.1.4.1.1.7.2"
MF_TRUE_COLOR_SC = "1.2.840.10008.5.1.4.1.1.7.4"
IMPLEMENTATION_UID = "1.2.826.0.1.3680043.10.1424.1"
UID_LENGTH = 44  # every generated UID: "2.25.1" + 38 digits, even so it needs no padding

SURNAMES = ["SMITH", "JOHNSON", "BROWN", "GARCIA", "MILLER", "DAVIS", "MARTIN", "LEE", "WALKER", "HALL"]
GIVEN = ["ANNA", "BEN", "CARLA", "DAVID", "EVA", "FRANK", "GINA", "HUGO"]

# Width of each variable value of a CT instance; values are space-padded to it (legal DICOM).
CT_FIELDS = {
    "sop_uid": UID_LENGTH,
    "study_uid": UID_LENGTH,
    "series_uid": UID_LENGTH,
    "patient_id": 12,
    "patient_name": 24,
    "birth_date": 8,
    "study_date": 8,
    "accession": 10,
    "study_description": 16,
    "series_number": 4,
    "series_description": 12,
    "instance_number": 6,
}
DATE_FIELDS = {"birth_date", "study_date"}
NUMBER_FIELDS = {"series_number", "instance_number"}


def uid_for(*parts: object) -> str:
    """A stable, fixed-length 2.25 UID for ``parts`` (leading 1 so no leading zero)."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return f"2.25.1{int.from_bytes(digest[:15], 'big'):038d}"


def code_for(seed: str) -> str:
    """Four letters per data set, so patient IDs of different data sets never collide."""
    digest = hashlib.sha256(seed.encode()).digest()
    return "".join(chr(65 + b % 26) for b in digest[:4])


@dataclass(frozen=True)
class Patient:
    patient_id: str
    name: str
    birth_date: str


@dataclass(frozen=True)
class StudyInfo:
    study_uid: str
    date: str
    accession: str
    description: str


def patient_for(seed: str, index: int) -> Patient:
    """Patient ``index`` of a data set; every 50th is a DOE so ``DOE*`` matches ~2%."""
    surname = "DOE" if index % 50 == 0 else SURNAMES[index % len(SURNAMES)] + str(index % 7)
    name = f"{surname}^{GIVEN[index % len(GIVEN)]}"
    year = 1930 + index % 80
    birth = f"{year}{1 + index % 12:02d}{1 + index % 28:02d}"
    return Patient(f"{code_for(seed)}{index:08d}", name, birth)


def study_date(index: int) -> str:
    """Study dates spread over 2000-2019 so a one-year range matches ~5% of studies."""
    day = (index * 37) % (20 * 336)
    year, rem = divmod(day, 336)
    month, mday = divmod(rem, 28)
    return f"{2000 + year}{1 + month:02d}{1 + mday:02d}"


def study_for(seed: str, index: int) -> StudyInfo:
    return StudyInfo(
        uid_for(seed, "study", index), study_date(index), f"A{index:09d}", f"CT CHEST {index % 9}"
    )


@lru_cache(maxsize=4)
def ct_pixels(size: int) -> bytes:
    """A 12-bit body-like phantom (disc + noise); cached because every CT instance shares it."""
    rng = np.random.default_rng(size)
    yy, xx = np.mgrid[0:size, 0:size]
    radius = np.hypot(yy - size / 2, xx - size / 2)
    image = np.where(radius < size * 0.42, 1040, 24).astype(np.int32)
    image += rng.integers(0, 60, size=(size, size), dtype=np.int32)
    return image.astype("<u2").tobytes()


def _file_meta(sop_class: str, sop_instance: str, transfer_syntax: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance)
    meta.TransferSyntaxUID = UID(transfer_syntax)
    meta.ImplementationClassUID = UID(IMPLEMENTATION_UID)
    return meta


def _set_patient_study(ds: Dataset, v: dict[str, str]) -> None:
    ds.PatientName = v["patient_name"]
    ds.PatientID = v["patient_id"]
    ds.PatientBirthDate = v["birth_date"]
    ds.PatientSex = "O"
    ds.StudyInstanceUID = v["study_uid"]
    ds.StudyDate = v["study_date"]
    ds.StudyTime = "101500"
    ds.AccessionNumber = v["accession"]
    ds.StudyDescription = v["study_description"]
    ds.ReferringPhysicianName = "REF^DOCTOR"


def _to_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _ct_dataset(v: dict[str, str], size: int) -> Dataset:
    ds = Dataset()
    ds.file_meta = _file_meta(CT_IMAGE_STORAGE, v["sop_uid"], ExplicitVRLittleEndian)
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.SOPInstanceUID = v["sop_uid"]
    ds.Modality = "CT"
    ds.Manufacturer = "BENCH"
    _set_patient_study(ds, v)
    ds.SeriesInstanceUID = v["series_uid"]
    ds.SeriesNumber = v["series_number"]
    ds.SeriesDescription = v["series_description"]
    ds.BodyPartExamined = "CHEST"
    ds.InstanceNumber = v["instance_number"]
    ds.ImagePositionPatient = [-250.0, -250.0, 0.0]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.SliceThickness = 1.25
    ds.KVP = 120
    ds.PixelSpacing = [500.0 / size, 500.0 / size]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = size
    ds.Columns = size
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    ds.WindowCenter = 40
    ds.WindowWidth = 400
    ds.PixelData = ct_pixels(size)
    return ds


def _sentinel(index: int, name: str, width: int) -> str:
    """A value valid for the field's VR that cannot occur elsewhere in the header."""
    if width == UID_LENGTH:
        return f"2.25.1{index:02d}".ljust(width, "9")
    if name in DATE_FIELDS:
        return f"18{index:02d}0228"
    if name in NUMBER_FIELDS:
        return f"8{index:02d}".ljust(width, "7")
    return f"Q{index:02d}".ljust(width, "Z")


class ByteTemplate:
    """A serialised dataset with slots: ``render(values)`` splices fixed-width values in."""

    def __init__(self, build: Callable[[dict[str, str]], Dataset], widths: dict[str, int]) -> None:
        self.widths = widths
        sentinels = {name: _sentinel(i, name, w) for i, (name, w) in enumerate(widths.items())}
        ds = build(sentinels)
        full = _to_bytes(ds)
        del ds.PixelData
        header = _to_bytes(ds)
        # Pixel data is the last element, so the full file is the header plus that element;
        # searching only the header keeps pixel bytes from faking a sentinel match.
        if not full.startswith(header):
            raise RuntimeError("pixel data is not the last element of the template")
        self.header, self.tail = header, full[len(header) :]
        self.slots: list[tuple[int, str]] = []
        for name, text in sentinels.items():
            needle, start = text.encode(), 0
            while (found := header.find(needle, start)) >= 0:
                self.slots.append((found, name))
                start = found + len(needle)
            if start == 0:
                raise RuntimeError(f"sentinel for {name} not found in the template")
        self.slots.sort()

    def render(self, values: dict[str, str]) -> bytes:
        pieces: list[bytes] = []
        position = 0
        for offset, name in self.slots:
            value = values[name].ljust(self.widths[name]).encode("ascii")
            if len(value) != self.widths[name]:
                raise ValueError(f"{name}={values[name]!r} is wider than {self.widths[name]}")
            pieces += [self.header[position:offset], value]
            position = offset + len(value)
        pieces += [self.header[position:], self.tail]
        return b"".join(pieces)


@lru_cache(maxsize=4)
def ct_template(size: int) -> ByteTemplate:
    return ByteTemplate(lambda v: _ct_dataset(v, size), CT_FIELDS)


def ct_values(patient: Patient, study: StudyInfo, series_uid: str, series_number: int, number: int) -> dict:
    return {
        "sop_uid": uid_for(series_uid, number),
        "study_uid": study.study_uid,
        "series_uid": series_uid,
        "patient_id": patient.patient_id,
        "patient_name": patient.name,
        "birth_date": patient.birth_date,
        "study_date": study.date,
        "accession": study.accession,
        "study_description": study.description,
        "series_number": str(series_number),
        "series_description": f"AXIAL {series_number}",
        "instance_number": str(number),
    }


@dataclass(frozen=True)
class SeriesSpec:
    """A CT series of one study (``size``² 16-bit, Explicit VR LE: ~512 KB an instance at 512).

    ``first`` lets a caller render a slice of a long series without building the rest."""

    seed: str
    study_index: int
    series_number: int
    count: int
    size: int = 512
    first: int = 1

    @property
    def study(self) -> StudyInfo:
        return study_for(self.seed, self.study_index)

    @property
    def series_uid(self) -> str:
        return uid_for(self.seed, "series", self.study_index, self.series_number)

    def instance_uid(self, number: int) -> str:
        return uid_for(self.series_uid, number)

    def instances(self) -> Iterator[bytes]:
        template = ct_template(self.size)
        patient = patient_for(self.seed, self.study_index)
        study, series_uid = self.study, self.series_uid
        for number in range(self.first, self.first + self.count):
            yield template.render(ct_values(patient, study, series_uid, self.series_number, number))


@dataclass(frozen=True)
class Population:
    """The QIDO population: tiny (8×8) CT instances, 5 per series, 2 series per study,
    2 studies per patient. ``start``/``stop`` are instance indexes so it can grow in steps."""

    seed: str
    start: int
    stop: int
    per_series: int = 5
    series_per_study: int = 2
    studies_per_patient: int = 2

    @property
    def per_study(self) -> int:
        return self.per_series * self.series_per_study

    def study_index(self, instance_index: int) -> int:
        return instance_index // self.per_study

    def patient_index(self, study_index: int) -> int:
        return study_index // self.studies_per_patient

    def series_uid(self, study_index: int, series_number: int) -> str:
        return uid_for(self.seed, "population-series", study_index, series_number)

    def instances(self) -> Iterator[bytes]:
        template = ct_template(8)
        for index in range(self.start, self.stop):
            study_index = self.study_index(index)
            within = index % self.per_study
            series_number = 1 + within // self.per_series
            patient = patient_for(self.seed, self.patient_index(study_index))
            study = study_for(self.seed, study_index)
            series_uid = self.series_uid(study_index, series_number)
            number = 1 + within % self.per_series
            yield template.render(ct_values(patient, study, series_uid, series_number, number))


def _texture_rgb(rng: np.random.Generator, size: int) -> np.ndarray:
    """Tissue-like RGB: smooth blocks plus fine noise, so JPEG q90 lands near 50-60 KB a tile."""
    coarse = rng.integers(120, 255, size=(size // 16, size // 16, 3), dtype=np.uint8)
    image = np.kron(coarse, np.ones((16, 16, 1), dtype=np.uint8)).astype(np.int16)
    image += rng.integers(-40, 40, size=(size, size, 3), dtype=np.int16)
    return np.clip(image, 0, 255).astype(np.uint8)


def jpeg_frames(seed: str, count: int, size: int, quality: int = 90) -> list[bytes]:
    from PIL import Image

    rng = np.random.default_rng(int(uid_for(seed, "jpeg")[6:]) % 2**32)
    tiles: list[bytes] = []
    for _ in range(count):
        buffer = io.BytesIO()
        # 4:2:2 subsampling matches the YBR_FULL_422 photometric interpretation declared below.
        Image.fromarray(_texture_rgb(rng, size), "RGB").save(buffer, "JPEG", quality=quality, subsampling=1)
        tiles.append(buffer.getvalue())
    return tiles


@dataclass(frozen=True)
class MultiFrameSpec:
    """A multi-frame secondary-capture instance: native 8-bit mono, or JPEG baseline RGB."""

    seed: str
    kind: str  # "native" or "jpeg"
    frames: int
    size: int

    @property
    def study(self) -> StudyInfo:
        return study_for(self.seed, 900_000 + (self.kind == "jpeg"))

    @property
    def series_uid(self) -> str:
        return uid_for(self.seed, "mf-series", self.kind)

    @property
    def instance_uid(self) -> str:
        return uid_for(self.seed, "mf-instance", self.kind)

    def build(self) -> bytes:
        jpeg = self.kind == "jpeg"
        sop_class = MF_TRUE_COLOR_SC if jpeg else MF_GRAYSCALE_BYTE_SC
        ds = Dataset()
        ds.file_meta = _file_meta(
            sop_class, self.instance_uid, JPEGBaseline8Bit if jpeg else ExplicitVRLittleEndian
        )
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = self.instance_uid
        ds.Modality = "SM" if jpeg else "OT"
        patient, study = patient_for(self.seed, 900_000), self.study
        _set_patient_study(ds, ct_values(patient, study, self.series_uid, 1, 1))
        ds.SeriesInstanceUID = self.series_uid
        ds.SeriesNumber = 1
        ds.InstanceNumber = 1
        ds.NumberOfFrames = self.frames
        ds.Rows = self.size
        ds.Columns = self.size
        ds.BitsAllocated = 8
        ds.BitsStored = 8
        ds.HighBit = 7
        ds.PixelRepresentation = 0
        if jpeg:
            ds.SamplesPerPixel = 3
            ds.PhotometricInterpretation = "YBR_FULL_422"
            ds.PlanarConfiguration = 0
            ds.PixelData = encapsulate(jpeg_frames(self.seed, self.frames, self.size))
            ds["PixelData"].VR = "OB"
        else:
            ds.SamplesPerPixel = 1
            ds.PhotometricInterpretation = "MONOCHROME2"
            rng = np.random.default_rng(7)
            pixels = rng.integers(0, 255, size=self.frames * self.size * self.size, dtype=np.uint8)
            ds.PixelData = pixels.tobytes()
        return _to_bytes(ds)
