"""Building DICOM test data and STOW request bodies (no files from outside the repo)."""

from __future__ import annotations

import uuid
from io import BytesIO

import numpy as np
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

DICOM = "application/dicom"


def make_dataset(
    *,
    study: str | None = None,
    series: str | None = None,
    sop: str | None = None,
    patient_id: str = "PAT-1",
    patient_name: str = "DOE^JOHN",
    modality: str = "CT",
    study_date: str = "20240102",
    accession: str = "ACC-1",
    rows: int = 4,
    columns: int = 4,
    frames: int = 1,
    instance_number: int = 1,
    series_number: int = 1,
) -> Dataset:
    """A small, valid CT-like instance with native 16-bit pixel data."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop or generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = study or generate_uid()
    ds.SeriesInstanceUID = series or generate_uid()
    ds.PatientID = patient_id
    ds.PatientName = patient_name
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyDate = study_date
    ds.StudyTime = "101500"
    ds.AccessionNumber = accession
    ds.StudyID = "S1"
    ds.ReferringPhysicianName = "WHO^DR"
    ds.StudyDescription = "test study"
    ds.Modality = modality
    ds.SeriesNumber = series_number
    ds.SeriesDescription = "test series"
    ds.InstanceNumber = instance_number
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    if frames > 1:
        ds.NumberOfFrames = frames
    ramp = np.arange(rows * columns * frames, dtype=np.uint32) * 7 + int(ds.InstanceNumber)
    pixels = (ramp % 4096).astype(np.uint16)
    ds.PixelData = pixels.tobytes()
    return ds


def to_bytes(ds: Dataset) -> bytes:
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def multipart_body(parts: list[bytes], part_type: str | None = DICOM) -> tuple[bytes, str]:
    """A multipart/related body and its Content-Type header."""
    boundary = uuid.uuid4().hex
    chunks = []
    for part in parts:
        header = f"--{boundary}\r\n"
        if part_type:
            header += f"Content-Type: {part_type}\r\n"
        chunks += [header.encode(), b"\r\n", part, b"\r\n"]
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f'multipart/related; type="{DICOM}"; boundary={boundary}'


def parse_multipart(body: bytes, content_type: str) -> list[tuple[dict[str, str], bytes]]:
    """Split a multipart response into (headers, payload) pairs."""
    boundary = content_type.split("boundary=")[1].split(";")[0].strip().strip('"')
    delimiter = f"--{boundary}".encode()
    parts = []
    for raw in body.split(delimiter)[1:]:
        if raw.startswith(b"--"):
            break
        head, _, payload = raw[2:].partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        parts.append((headers, payload[:-2]))
    return parts


def many_instances(study: str, count: int) -> list[bytes]:
    """``count`` small instances of one series, made fast: one file written by pydicom, then
    its SOP Instance UID (a fixed-width placeholder) replaced byte for byte in each copy
    (thousands of pydicom writes take minutes on a loaded machine)."""
    width = len(str(count))
    placeholder = f"{study}.1{'9' * width}"
    template = make_dataset(study=study, sop=placeholder)
    data = to_bytes(template)
    assert data.count(placeholder.encode()) == 2  # file meta and dataset
    return [data.replace(placeholder.encode(), f"{study}.1{i:0{width}d}".encode()) for i in range(count)]


def write_large_instance(path: str, size: int, study: str | None = None) -> str:
    """A valid multi-frame 8-bit instance of about ``size`` bytes, written
    sparsely: pydicom writes the header, the Pixel Data element header is appended by hand
    and the frames are a hole (zeros), so a 2 GB file costs no time or disk to make.
    Returns its SOP Instance UID."""
    import struct

    side = 1024
    frames = max(1, size // (side * side))
    ds = make_dataset(study=study, rows=side, columns=side)
    del ds.PixelData
    ds.NumberOfFrames = frames
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    header = to_bytes(ds)
    length = frames * side * side
    with open(path, "wb") as out:
        out.write(header)
        out.write(b"\xe0\x7f\x10\x00OB\x00\x00" + struct.pack("<I", length))
        out.truncate(len(header) + 12 + length)
    return str(ds.SOPInstanceUID)
