"""Data for the whole-slide-imaging benchmark (``bench.wsi``).

- The JPEG slide comes from ``dicomweb.demo.wsi_generate`` (one level, TILED_FULL, one fragment per frame).
- The multi-GB instance is written here directly: a pydicom-built VL Whole Slide Microscopy header
  followed by a defined-length native Pixel Data element whose bytes are streamed to the file in
  large blocks. Rendering real tissue for 2 GB of tiles takes minutes of CPU; the servers only
  store and index bytes, so a cheap, varied byte pattern measures the same thing.
- Repeated STOWs of the same file need a new SOP Instance UID each time (a server may ignore or
  reject a duplicate); :func:`set_sop_uid` rewrites it in place, same length, in the header only.
"""

from __future__ import annotations

import hashlib
import io
import random
import struct
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

WSI_SOP_CLASS = UID("1.2.840.10008.5.1.4.1.1.77.1.6")
PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"
ITEM_TAG = b"\xfe\xff\x00\xe0"
SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0"
HEADER_SCAN_BYTES = 1 << 20  # a header (before Pixel Data) is far smaller than this
WRITE_BLOCK_FRAMES = 64


@dataclass(frozen=True)
class SlideFile:
    """What the harness needs to know about an instance file it STOWs and reads tiles from."""

    path: Path
    study_uid: str
    series_uid: str
    sop_uid: str
    frames: int
    columns: int  # tiles per row of the total pixel matrix
    rows: int
    tile: int
    transfer_syntax: str
    size: int

    def instance_path(self, root: str, sop_uid: str | None = None) -> str:
        return f"{root}/studies/{self.study_uid}/series/{self.series_uid}/instances/{sop_uid or self.sop_uid}"


def describe(path: Path) -> SlideFile:
    """A :class:`SlideFile` for an existing WSI instance (reads the header only)."""
    ds = dcmread(path, stop_before_pixels=True)
    tile = int(ds.Columns)
    return SlideFile(
        path=path,
        study_uid=str(ds.StudyInstanceUID),
        series_uid=str(ds.SeriesInstanceUID),
        sop_uid=str(ds.SOPInstanceUID),
        frames=int(ds.NumberOfFrames),
        columns=-(-int(ds.TotalPixelMatrixColumns) // tile),
        rows=-(-int(ds.TotalPixelMatrixRows) // int(ds.Rows)),
        tile=tile,
        transfer_syntax=str(ds.file_meta.TransferSyntaxUID),
        size=path.stat().st_size,
    )


def _wsi_header(study: str, series: str, sop: str, tiles_x: int, tiles_y: int, tile: int) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = WSI_SOP_CLASS
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    now = datetime.now()
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = WSI_SOP_CLASS
    ds.SOPInstanceUID = sop
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.FrameOfReferenceUID = generate_uid()
    ds.PatientID = "WSI-BENCH-BIG"
    ds.PatientName = "Bench^Large^Slide"
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.StudyDate = now.strftime("%Y%m%d")
    ds.StudyTime = now.strftime("%H%M%S")
    ds.StudyID = "1"
    ds.AccessionNumber = "WSI-BIG"
    ds.ReferringPhysicianName = ""
    ds.Modality = "SM"
    ds.SeriesNumber = 1
    ds.SeriesDescription = "benchmark: native multi-GB level"
    ds.InstanceNumber = 1
    ds.Manufacturer = "dicomweb-server bench"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
    ds.ContentDate = ds.StudyDate
    ds.ContentTime = ds.StudyTime
    ds.NumberOfFrames = tiles_x * tiles_y
    ds.Rows = ds.Columns = tile
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.DimensionOrganizationType = "TILED_FULL"
    ds.TotalPixelMatrixColumns = tiles_x * tile
    ds.TotalPixelMatrixRows = tiles_y * tile
    ds.TotalPixelMatrixFocalPlanes = 1
    ds.BurnedInAnnotation = "NO"
    ds.SpecimenLabelInImage = "NO"
    ds.VolumetricProperties = "VOLUME"
    ds.LossyImageCompression = "00"
    ds.ImagedVolumeWidth = tiles_x * tile * 0.00025
    ds.ImagedVolumeHeight = tiles_y * tile * 0.00025
    ds.ImagedVolumeDepth = 0.004
    return ds


def native_tiles_for(target_bytes: int, tile: int = 256) -> int:
    """Tiles per side of a square native RGB level of at least ``target_bytes`` of pixels."""
    per_tile = tile * tile * 3
    side = 1
    while side * side * per_tile < target_bytes:
        side += 1
    return side


def write_native_slide(path: Path, target_bytes: int, tile: int = 256, seed: int = 0) -> SlideFile:
    """A native (Explicit VR Little Endian) RGB WSI level of at least ``target_bytes`` of pixel data,
    written block by block (memory stays at a few tens of MB whatever the size)."""
    side = native_tiles_for(target_bytes, tile)
    frames = side * side
    frame_bytes = tile * tile * 3
    length = frames * frame_bytes
    if length > 0xFFFFFFFE:
        raise ValueError(f"{length} bytes of native Pixel Data do not fit a defined-length element")
    study, series, sop = generate_uid(), generate_uid(), generate_uid()
    header = io.BytesIO()
    _wsi_header(study, series, sop, side, side, tile).save_as(header, enforce_file_format=True)
    rng = np.random.default_rng(seed)
    # A pool of random blocks; each frame gets its index stamped in, so no two frames are equal.
    pool = rng.integers(0, 256, size=(4, WRITE_BLOCK_FRAMES, frame_bytes), dtype=np.uint8)
    with open(path, "wb") as fh:
        fh.write(header.getvalue())
        fh.write(PIXEL_DATA_TAG + b"OB\x00\x00" + struct.pack("<I", length))
        for first in range(0, frames, WRITE_BLOCK_FRAMES):
            count = min(WRITE_BLOCK_FRAMES, frames - first)
            block = pool[(first // WRITE_BLOCK_FRAMES) % len(pool), :count].copy()
            block[:, :8] = np.arange(first, first + count, dtype="<u8").view(np.uint8).reshape(count, 8)
            fh.write(block.tobytes())
    return SlideFile(path, study, series, sop, frames, side, side, tile, ExplicitVRLittleEndian,
                     path.stat().st_size)


def _pixel_data_offset(head: bytes) -> int:
    """Offset of the top-level Pixel Data element in the first bytes of a file we wrote."""
    at = head.find(PIXEL_DATA_TAG + b"OB")
    if at < 0:
        raise ValueError("no Pixel Data (7FE0,0010) OB element in the header")
    return at


def set_sop_uid(slide: SlideFile, current: str, new: str) -> None:
    """Replace the SOP Instance UID (file meta and data set) in place; ``new`` has the same length."""
    if len(new) != len(current):
        raise ValueError("the new UID must have the length of the current one")
    with open(slide.path, "r+b") as fh:
        head = fh.read(HEADER_SCAN_BYTES)
        end = _pixel_data_offset(head)
        old_b, new_b = current.encode(), new.encode()
        patched = head[:end].replace(old_b, new_b)
        if head[:end].count(old_b) != 2:
            raise ValueError(f"expected the SOP Instance UID twice in the header, found {head[:end].count(old_b)}")
        fh.seek(0)
        fh.write(patched)


def same_length_uid(uid: str, rng: random.Random) -> str:
    """A different valid UID of the same length: the last digits of the last component replaced."""
    last = uid.rsplit(".", 1)[-1]
    digits = min(9, len(last) - 1)  # keep the component's first digit, so no leading zero appears
    if digits < 4:
        raise ValueError(f"UID {uid!r} has too short a last component to vary")
    while True:
        candidate = uid[:-digits] + str(rng.randrange(10**digits)).zfill(digits)
        if candidate != uid:
            return candidate


def fragment_hashes(path: Path, frame_numbers: list[int]) -> dict[int, tuple[int, str]]:
    """(length, sha256) of the stored bytes of some 1-based frames: the fragment of an encapsulated
    one-fragment-per-frame level (trailing pad byte included), or the slice of a native one."""
    slide = describe(path)
    wanted = set(frame_numbers)
    out: dict[int, tuple[int, str]] = {}
    with open(path, "rb") as fh:
        head = fh.read(HEADER_SCAN_BYTES)
        at = _pixel_data_offset(head)
        (length,) = struct.unpack("<I", head[at + 8 : at + 12])
        start = at + 12
        if length != 0xFFFFFFFF:
            frame_bytes = slide.tile * slide.tile * 3
            for n in sorted(wanted):
                fh.seek(start + (n - 1) * frame_bytes)
                data = fh.read(frame_bytes)
                out[n] = (len(data), hashlib.sha256(data).hexdigest())
            return out
        fh.seek(start)
        tag, size = struct.unpack("<4sI", fh.read(8))  # Basic Offset Table item
        fh.seek(size, io.SEEK_CUR)
        n = 0
        while wanted - out.keys():
            tag, size = struct.unpack("<4sI", fh.read(8))
            if tag != ITEM_TAG:
                break
            n += 1
            if n in wanted:
                data = fh.read(size)
                out[n] = (len(data), hashlib.sha256(data).hexdigest())
            else:
                fh.seek(size, io.SEEK_CUR)
    return out
