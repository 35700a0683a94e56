"""Tests for the synthetic whole-slide pyramid generator (dicomweb/demo/wsi_generate.py)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest

from dicomweb.demo.wsi_generate import CODECS, generate_pyramid, main

WSI_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"
ITEM_TAG = b"\xfe\xff\x00\xe0"
SEQ_DELIM_TAG = b"\xfe\xff\xdd\xe0"
WIDTH, HEIGHT, TILE, LEVELS = 1024, 768, 256, 3

EXPECTED = {
    "jpeg": ("1.2.840.10008.1.2.4.50", "YBR_FULL_422"),
    "jpeg2000": ("1.2.840.10008.1.2.4.91", "YBR_ICT"),
    "jpeg2000-lossless": ("1.2.840.10008.1.2.4.90", "RGB"),
    "native": ("1.2.840.10008.1.2.1", "RGB"),
}


def _tiles(width: int, height: int, tile: int = TILE) -> tuple[int, int]:
    return -(-width // tile), -(-height // tile)


def _frames(ds: pydicom.Dataset) -> np.ndarray:
    arr = ds.pixel_array
    # pydicom drops the frame axis for single-frame data.
    return arr[None] if int(ds.NumberOfFrames) == 1 else arr


def _total_matrix(ds: pydicom.Dataset) -> np.ndarray:
    """Reassemble the TILED_FULL frames (row-major tiles) into the total pixel matrix."""
    frames = _frames(ds)
    cols, rows = _tiles(ds.TotalPixelMatrixColumns, ds.TotalPixelMatrixRows, ds.Columns)
    full = frames.reshape(rows, cols, ds.Rows, ds.Columns, 3).transpose(0, 2, 1, 3, 4)
    full = full.reshape(rows * ds.Rows, cols * ds.Columns, 3)
    return full[: ds.TotalPixelMatrixRows, : ds.TotalPixelMatrixColumns]


def _pixel_data_items(path: Path) -> tuple[bytes, int, list[tuple[int, int]]]:
    """(BOT value, offset of the first item after the BOT, [(item offset, item length), ...])."""
    data = path.read_bytes()
    start = data.rfind(b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff")
    assert start > 0, "no undefined-length Pixel Data element"
    pos = start + 12
    assert data[pos : pos + 4] == ITEM_TAG
    (bot_len,) = struct.unpack_from("<I", data, pos + 4)
    bot = data[pos + 8 : pos + 8 + bot_len]
    first = pos + 8 + bot_len
    pos = first
    items = []
    while data[pos : pos + 4] == ITEM_TAG:
        (length,) = struct.unpack_from("<I", data, pos + 4)
        items.append((pos - first, length))
        pos += 8 + length
    assert data[pos : pos + 4] == SEQ_DELIM_TAG
    assert pos + 8 == len(data), "trailing bytes after the sequence delimiter"
    return bot, first, items


@pytest.fixture(scope="module")
def pyramids(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    out = {}
    for codec in CODECS:
        out[codec] = generate_pyramid(
            tmp_path_factory.mktemp(codec),
            width=WIDTH,
            height=HEIGHT,
            tile=TILE,
            levels=LEVELS,
            codec=codec,
            seed=7,
            study_uid="1.2.3.4.5.6.7",
            patient_id="PAT-42",
            workers=1,
        )
    return out


@pytest.mark.parametrize("codec", sorted(EXPECTED))
def test_headers_follow_wsi_iod(pyramids: dict[str, list[Path]], codec: str) -> None:
    paths = pyramids[codec]
    assert [p.name for p in paths] == ["level-0.dcm", "level-1.dcm", "level-2.dcm"]
    datasets = [pydicom.dcmread(p) for p in paths]
    ts, photometric = EXPECTED[codec]
    for level, ds in enumerate(datasets):
        width, height = -(-WIDTH // 2**level), -(-HEIGHT // 2**level)
        cols, rows = _tiles(width, height)
        assert ds.file_meta.TransferSyntaxUID == ts
        assert ds.SOPClassUID == WSI_SOP_CLASS == ds.file_meta.MediaStorageSOPClassUID
        assert ds.Modality == "SM"
        assert ds.PhotometricInterpretation == photometric
        assert ds.SamplesPerPixel == 3
        assert ds.DimensionOrganizationType == "TILED_FULL"
        assert (ds.TotalPixelMatrixColumns, ds.TotalPixelMatrixRows) == (width, height)
        assert (ds.Columns, ds.Rows) == (TILE, TILE)
        assert int(ds.NumberOfFrames) == cols * rows
        assert ds.InstanceNumber == level + 1
        expected_type = (
            ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
            if level == 0
            else [
                "DERIVED",
                "PRIMARY",
                "VOLUME",
                "RESAMPLED",
            ]
        )
        assert list(ds.ImageType) == expected_type
        shared = ds.SharedFunctionalGroupsSequence[0]
        spacing = [float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing]
        assert spacing == pytest.approx([0.00025 * 2**level] * 2)
        assert float(shared.PixelMeasuresSequence[0].SliceThickness) > 0
        assert list(shared.WholeSlideMicroscopyImageFrameTypeSequence[0].FrameType) == expected_type
        assert ds.ImagedVolumeWidth == pytest.approx(WIDTH * 0.00025)
        assert ds.ImagedVolumeHeight == pytest.approx(HEIGHT * 0.00025)
        assert len(ds.TotalPixelMatrixOriginSequence) == 1
        assert len(ds.OpticalPathSequence) == 1 and ds.OpticalPathSequence[0].ICCProfile
        assert ds.ContainerIdentifier and len(ds.SpecimenDescriptionSequence) == 1
        assert len(ds.DimensionOrganizationSequence) == 1
        assert ds.PatientID == "PAT-42" and str(ds.PatientName) and ds.StudyDate and ds.AccessionNumber
        assert ds.StudyInstanceUID == "1.2.3.4.5.6.7"
        if CODECS[codec].lossy:
            assert ds.LossyImageCompression == "01" and float(ds.LossyImageCompressionRatio) > 1
        else:
            assert ds.LossyImageCompression == "00"
    for attr in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID", "PyramidUID"):
        assert len({ds[attr].value for ds in datasets}) == 1, attr
    assert len({ds.SOPInstanceUID for ds in datasets}) == LEVELS


@pytest.mark.parametrize("codec", sorted(EXPECTED))
def test_frames_decode_to_rgb_tiles(pyramids: dict[str, list[Path]], codec: str) -> None:
    for path in pyramids[codec]:
        ds = pydicom.dcmread(path)
        frames = _frames(ds)
        assert frames.shape == (int(ds.NumberOfFrames), TILE, TILE, 3)
        assert frames.dtype == np.uint8
    # Tissue makes neighbouring tiles differ; background-only tiles could be identical.
    level0 = _frames(pydicom.dcmread(pyramids[codec][0]))
    assert len({f.tobytes() for f in level0}) > len(level0) // 2
    assert level0.std() > 10


@pytest.mark.parametrize("codec", ["jpeg", "jpeg2000", "jpeg2000-lossless"])
def test_basic_offset_table_points_at_items(pyramids: dict[str, list[Path]], codec: str) -> None:
    for path in pyramids[codec]:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        bot, _first, items = _pixel_data_items(path)
        frames = int(ds.NumberOfFrames)
        assert len(items) == frames, "one fragment per frame"
        offsets = list(struct.unpack(f"<{frames}I", bot))
        assert offsets == [off for off, _length in items]
        assert all(length % 2 == 0 for _off, length in items)
        assert "ExtendedOffsetTable" not in ds


def test_level1_is_downsampled_level0(pyramids: dict[str, list[Path]]) -> None:
    for codec, limit in (("native", 3.0), ("jpeg", 4.0), ("jpeg2000", 4.0)):
        level0 = _total_matrix(pydicom.dcmread(pyramids[codec][0])).astype(np.float64)
        level1 = _total_matrix(pydicom.dcmread(pyramids[codec][1])).astype(np.float64)
        assert level1.shape == (HEIGHT // 2, WIDTH // 2, 3)
        down = level0.reshape(HEIGHT // 2, 2, WIDTH // 2, 2, 3).mean(axis=(1, 3))
        mad = np.abs(down - level1).mean()
        assert mad < limit, (codec, mad)
        # ... and that is a meaningful bar: a shifted copy is far off.
        assert np.abs(np.roll(down, 37, axis=1) - level1).mean() > 3 * mad


def test_extended_offset_table_and_padding(tmp_path: Path) -> None:
    # Odd sizes: partial edge tiles must be padded with background, EOT must match the fragments.
    paths = generate_pyramid(tmp_path, width=1000, height=700, levels=2, codec="jpeg", eot=True, workers=1)
    for path in paths:
        ds = pydicom.dcmread(path)
        bot, _first, items = _pixel_data_items(path)
        assert bot == b"", "BOT must be empty when an Extended Offset Table is present"
        frames = int(ds.NumberOfFrames)
        offsets = np.frombuffer(ds.ExtendedOffsetTable, dtype="<u8")
        lengths = np.frombuffer(ds.ExtendedOffsetTableLengths, dtype="<u8")
        assert offsets.tolist() == [off for off, _length in items]
        assert lengths.tolist() == [length for _off, length in items]
        assert len(items) == frames
        matrix = _frames(ds)
        cols, rows = _tiles(ds.TotalPixelMatrixColumns, ds.TotalPixelMatrixRows)
        last = matrix[cols * rows - 1].astype(int)
        pad_x = ds.TotalPixelMatrixColumns - (cols - 1) * TILE
        # JPEG ringing allows a little deviation from the flat background.
        assert np.abs(last[:, pad_x + 8 :] - [243, 240, 246]).max() < 12


def test_deterministic_and_parallel_matches_serial(tmp_path: Path) -> None:
    kwargs = {"width": 2048, "height": 1536, "levels": 1, "codec": "native", "seed": 3}
    serial = generate_pyramid(tmp_path / "a", workers=1, **kwargs)[0]
    parallel = generate_pyramid(tmp_path / "b", workers=2, **kwargs)[0]
    other_seed = generate_pyramid(tmp_path / "c", workers=1, **{**kwargs, "seed": 4})[0]
    a, b, c = (pydicom.dcmread(p).PixelData for p in (serial, parallel, other_seed))
    assert a == b
    assert a != c


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        [
            str(tmp_path),
            "--width",
            "600",
            "--height",
            "400",
            "--levels",
            "2",
            "--codec",
            "jpeg",
            "--seed",
            "5",
        ]
        + ["--patient-id", "CLI-1", "--study-uid", "1.2.3.99", "--workers", "1"]
    )
    assert rc == 0
    out = capsys.readouterr().out
    for level in range(2):
        path = tmp_path / f"level-{level}.dcm"
        assert str(path) in out and str(path.stat().st_size) in out
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert ds.PatientID == "CLI-1" and ds.StudyInstanceUID == "1.2.3.99"


def test_offsets_past_bot_range_switch_to_eot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dicomweb.demo.wsi_generate as wsi

    # Shrink the 32-bit limit so a tiny pyramid "overflows" it; defeat the up-front size prediction to
    # exercise the fall-back rewrite with an Extended Offset Table.
    monkeypatch.setattr(wsi, "_BOT_MAX_OFFSET", 20_000)
    monkeypatch.setattr(wsi, "_estimate_frame_bytes", lambda job, samples=64: 1.0)
    kwargs = {"width": 1024, "height": 768, "levels": 1, "codec": "jpeg", "workers": 1}
    with pytest.raises(ValueError, match="Basic Offset Table"):
        generate_pyramid(tmp_path / "bot", eot=False, **kwargs)
    path = generate_pyramid(tmp_path / "auto", **kwargs)[0]
    ds = pydicom.dcmread(path)
    bot, _first, items = _pixel_data_items(path)
    assert bot == b""
    assert np.frombuffer(ds.ExtendedOffsetTable, dtype="<u8").tolist() == [off for off, _ in items]
    assert _frames(ds).shape == (12, TILE, TILE, 3)
