"""Builders of small synthetic Part 10 files for the dicomcore tests."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from pydicom import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, SecondaryCaptureImageStorage, generate_uid

# A frame that looks like a JPEG codestream to a start-marker scan: SOI, a marker, a body
# without FF bytes (so no fragment boundary can look like a marker), and EOI.
_SOI = b"\xff\xd8\xff\xdb"
_EOI = b"\xff\xd9"


def image_dataset(transfer_syntax: str, *, rows: int, columns: int, frames: int, bits: int = 8) -> Dataset:
    """An image dataset with File Meta and no pixel data."""
    dataset = Dataset()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = transfer_syntax
    dataset.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    dataset.SOPClassUID = SecondaryCaptureImageStorage
    dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    dataset.StudyInstanceUID = generate_uid()
    dataset.SeriesInstanceUID = generate_uid()
    dataset.PatientName = "Test^Frames"
    dataset.Rows, dataset.Columns = rows, columns
    dataset.NumberOfFrames = frames
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated = bits
    dataset.BitsStored = bits
    dataset.HighBit = bits - 1
    dataset.PixelRepresentation = 0
    return dataset


def file_bytes(dataset: Dataset) -> bytes:
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def fake_frames(count: int, *, markers: bool = True, size: int = 300) -> list[bytes]:
    """Distinct encoded-looking frames; without ``markers`` they lack the SOI (but keep EOI)."""
    frames = []
    for number in range(count):
        body = bytes((number * 7 + i) % 251 for i in range(size))
        frames.append((_SOI if markers else b"\x00\x01\x02\x03") + body + _EOI)
    return frames


def encapsulated_file(encapsulated_value: bytes, frames: int, **elements: object) -> bytes:
    """A JPEG Baseline file whose Pixel Data value is ``encapsulated_value`` (BOT and items)."""
    dataset = image_dataset(JPEGBaseline8Bit, rows=16, columns=16, frames=frames)
    for keyword, value in elements.items():
        setattr(dataset, keyword, value)
    dataset.PixelData = encapsulated_value
    dataset["PixelData"].VR = "OB"
    dataset["PixelData"].is_undefined_length = True
    return file_bytes(dataset)


def native_file(pixel_data: bytes, *, rows: int, columns: int, frames: int, bits: int = 8) -> bytes:
    dataset = image_dataset(ExplicitVRLittleEndian, rows=rows, columns=columns, frames=frames, bits=bits)
    dataset.PixelData = pixel_data
    dataset["PixelData"].VR = "OB" if bits <= 8 else "OW"
    return file_bytes(dataset)


@pytest.fixture
def make_fake_frames() -> Callable[..., list[bytes]]:
    return fake_frames


@pytest.fixture
def make_encapsulated_file() -> Callable[..., bytes]:
    return encapsulated_file


@pytest.fixture
def make_native_file() -> Callable[..., bytes]:
    return native_file
