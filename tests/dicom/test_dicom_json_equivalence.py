"""The hand-written DICOM JSON path (dicomcore.rawjson) gives exactly what pydicom's gives.

Each case parses the same bytes twice and builds the DICOM JSON once with the fast path and
once with it switched off (every element through ``Dataset[tag]`` and ``to_json_dict``, the
builder as it was before); the two must serialise to the same text (so 1 and 1.0 differ, and
NaN compares), or both must fail with the same exception type. The corpus: every file of
pydicom's test, character set and palette data, the test builders, the bench's CT and
multi-frame instances, the WSI data (bench.wsi_data, dicomweb.demo.wsi_generate), and
hand-made elements with bad or unusual values and encodings.
"""

from __future__ import annotations

import io
import json
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom import Dataset
from pydicom.data import get_charset_files, get_palette_files, get_testdata_files
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from bench import datagen, wsi_data
from dicomcore import dicomjson, rawjson
from dicomcore.frames import FrameIndex
from dicomcore.instance import InvalidInstanceError, read_instance
from dicomweb.demo.wsi_generate import generate_pyramid
from tests.support import builders

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

# Its test files, plus its character set and palette files (not among the test files).
PYDICOM_FILES = sorted(
    path for path in [*get_testdata_files(), *get_charset_files(), *get_palette_files()] if os.path.isfile(path)
)
# Files of pydicom's test data that are not DICOM: when pydicom cannot read them even with
# force=True, neither builder gets a dataset. (Those it does read are compared like the rest.)
NOT_DICOM = {".json", ".txt", ".dump", ".gz", ".icc"}


def uri(path: str) -> str:
    return f"https://example.test/bulk/{path}"


def parse(data: bytes) -> tuple[Dataset, FrameIndex | None]:
    """As STOW parses (read_instance), or for files it rejects, pydicom's own reading."""
    try:
        parsed = read_instance(io.BytesIO(data))
        return parsed.dataset, parsed.frames
    except InvalidInstanceError:
        return pydicom.dcmread(io.BytesIO(data), force=True), None


def build(data: bytes, fast: bool, monkeypatch: pytest.MonkeyPatch,
          prepare: Callable[[Dataset], None] | None = None) -> str:
    """The DICOM JSON text of ``data`` (or the name of the exception building it raised)."""
    dataset, frames = parse(data)
    if prepare is not None:
        prepare(dataset)
    with monkeypatch.context() as patch:
        if not fast:
            patch.setattr(rawjson, "pydicom_defaults", lambda: False)
        try:
            document = dicomjson.to_dicom_json(dataset, uri, threshold=64, pixel_data=frames)
        except Exception as exc:  # noqa: BLE001 - the same failure is part of the contract
            return f"raised {type(exc).__name__}"
    return json.dumps(document)


def assert_same(data: bytes, monkeypatch: pytest.MonkeyPatch,
                prepare: Callable[[Dataset], None] | None = None) -> str:
    fast = build(data, True, monkeypatch, prepare)
    assert fast == build(data, False, monkeypatch, prepare)
    return fast


def corpus_id(path: str) -> str:
    return "/".join(Path(path).parts[-2:])


@pytest.mark.parametrize("path", PYDICOM_FILES, ids=corpus_id)
def test_pydicom_test_files(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data = Path(path).read_bytes()
    try:
        parse(data)
    except Exception:  # noqa: BLE001 - pydicom fails on non-DICOM input in many ways
        assert Path(path).suffix in NOT_DICOM, "a DICOM file neither builder can be given"
        return
    assert_same(data, monkeypatch)


def test_already_converted_elements_mix_with_raw_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    # STOW validates the header first, which converts some elements before the JSON is built.
    def convert_every_other(dataset: Dataset) -> None:
        for tag in list(dataset.keys())[::2]:
            dataset[tag]

    names = ("CT_small.dcm", "rtplan.dcm", "chrH31.dcm", "chrSQEncoding.dcm", "chrFrenMulti.dcm", "waveform_ecg.dcm")
    for name in names:
        path = next(p for p in PYDICOM_FILES if Path(p).name == name)
        assert_same(Path(path).read_bytes(), monkeypatch, convert_every_other)


def test_builders_and_bench_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    slide = wsi_data.write_native_slide(tmp_path / "slide.dcm", target_bytes=200_000, tile=64)
    levels = generate_pyramid(tmp_path / "jpeg", width=128, height=64, tile=32, levels=2, codec="jpeg", workers=1)
    instances = [
        builders.to_bytes(builders.make_dataset()),
        builders.to_bytes(builders.make_dataset(frames=3, patient_name="Müller^Jürgen")),
        *builders.many_instances("1.2.3", 2),
        next(iter(datagen.SeriesSpec("equivalence", 0, 1, 1).instances())),
        next(iter(datagen.Population("equivalence", 0, 1).instances())),
        datagen.MultiFrameSpec("equivalence", "native", 2, 16).build(),
        datagen.MultiFrameSpec("equivalence", "jpeg", 2, 16).build(),
        slide.path.read_bytes(),
        *(level.read_bytes() for level in levels),
    ]
    for data in instances:
        assert "raised" not in assert_same(data, monkeypatch)


# Hand-made instances: one element (or a few) with the value bytes given exactly.

LONG_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}


def element(tag: int, vr: str, value: bytes, *, implicit: bool = False, little: bool = True) -> bytes:
    end = "<" if little else ">"
    head = struct.pack(f"{end}HH", tag >> 16, tag & 0xFFFF)
    if implicit:
        return head + struct.pack(f"{end}L", len(value)) + value
    if vr in LONG_VRS:
        return head + vr.encode() + b"\0\0" + struct.pack(f"{end}L", len(value)) + value
    return head + vr.encode() + struct.pack(f"{end}H", len(value)) + value


def instance(body: bytes, syntax: str = ExplicitVRLittleEndian) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    meta.TransferSyntaxUID = syntax
    out = io.BytesIO()
    out.write(b"\0" * 128 + b"DICM")
    pydicom.filewriter.write_file_meta_info(out, meta, enforce_standard=True)  # type: ignore[arg-type]
    return out.getvalue() + body


def one(tag: int, vr: str, value: bytes, charset: bytes | None = None, **encoding: Any) -> bytes:
    body = element(0x00080005, "CS", charset, **encoding) if charset is not None else b""
    return body + element(tag, vr, value, **encoding)


BAD_AND_ODD = {
    # IS: invalid, float-like, too long for an exact float, empty pieces, padding
    "IS letters": one(0x00200013, "IS", b"1A"),
    "IS float": one(0x00200013, "IS", b"1.0 "),
    "IS fraction": one(0x00200013, "IS", b"1.5 "),
    "IS huge": one(0x00200013, "IS", b"12345678901234567890"),
    "IS spaces": one(0x00200013, "IS", b"  "),
    "IS empty piece": one(0x00200013, "IS", b"1\\"),
    "IS underscore": one(0x00200013, "IS", b"1_0 "),
    "IS signs": one(0x00200013, "IS", b"+7\\-0\\ 08"),
    "IS nul padded": one(0x00200013, "IS", b"42\0"),
    # DS: not numbers, overflow, exponents, empty pieces
    "DS nan": one(0x00180050, "DS", b"nan "),
    "DS inf": one(0x00180050, "DS", b"-inf"),
    "DS overflow": one(0x00180050, "DS", b"1e999 "),
    "DS comma": one(0x00180050, "DS", b"1,5 "),
    "DS exponent": one(0x00180050, "DS", b"-1.5E-3\\.5\\7."),
    "DS integer": one(0x00180050, "DS", b"3 "),
    "DS empty piece": one(0x00280030, "DS", b"0.5\\"),
    "DS tab": one(0x00180050, "DS", b"\t1.5 "),
    # binary numbers of the wrong length, and big values
    "US odd length": one(0x00280010, "US", b"\x01\x02\x03"),
    "UL short": one(0x00081161, "UL", b"\x01\x02"),
    "FL odd": one(0x00182043, "FL", b"\0" * 6),
    "FD nan": one(0x00081163, "FD", struct.pack("<2d", float("nan"), 1.0)),
    "SS many": one(0x00189442, "SS", struct.pack("<3h", -1, 0, 1)),
    "SV UV": one(0x00720082, "SV", struct.pack("<2q", -(2**62), 5)) + one(0x00720083, "UV", struct.pack("<Q", 2**63)),
    "AT two": one(0x00209165, "AT", struct.pack("<4H", 0x0010, 0x0020, 0x7FE0, 0x0010)),
    "AT odd": one(0x00209165, "AT", b"\x10\x00\x20\x00\x01"),
    "LUT descriptor": one(0x00281101, "SS", struct.pack("<3h", -256, 0, 16)),
    # strings: padding, empty values among several, backslashes in single-valued text
    "CS empties": one(0x00080008, "CS", b"ORIGINAL\\\\PRIMARY\\ "),
    "CS only backslash": one(0x00080008, "CS", b"\\"),
    "CS leading space": one(0x00080060, "CS", b" CT "),
    "AE spaces": one(0x00080054, "AE", b"  AET  \\ B "),
    "UI nul": one(0x00080018, "UI", b"1.2.3\0"),
    "UI spaces": one(0x00081150, "UI", b" 1.2 \\1.3"),
    "DA range": one(0x00080020, "DA", b"20240101-"),
    "DT TM": one(0x0008002A, "DT", b"20240101120000.5 ") + one(0x00080030, "TM", b"1200\\1300 "),
    "UR trailing": one(0x00081190, "UR", b"http://x/a\\b  "),
    "LO padding": one(0x00081030, "LO", b" desc \\ two\0"),
    "LO LT backslash": one(0x00081040, "LO", b"a\\b") + one(0x00324000, "LT", b"a\\b \0"),
    "UC UT": one(0x00080119, "UC", b"x\\y ") + one(0x00400602, "UT", b"long\\text  "),
    "AS": one(0x00101010, "AS", b"042Y"),
    # person names: groups, empty names among several, more than three groups
    "PN groups": one(0x00100010, "PN", b"Yamada^Tarou=Y=y"),
    "PN trailing groups": one(0x00100010, "PN", b"A^B==  "),
    "PN only separators": one(0x00100010, "PN", b"=="),
    "PN empty among many": one(0x00081070, "PN", b"A\\"),
    "PN four groups": one(0x00100010, "PN", b"a=b=c=d"),
    "PN carets": one(0x00100010, "PN", b"^^^^"),
    "PN middle empty": one(0x00100010, "PN", b"=X"),
    # empty elements of every VR kind
    "empties": b"".join(
        element(tag, vr, b"")
        for tag, vr in [(0x00080008, "CS"), (0x00080018, "UI"), (0x00100010, "PN"), (0x00200013, "IS"),
                        (0x00280030, "DS"), (0x00280010, "US"), (0x00081030, "LO"), (0x00209165, "AT"),
                        (0x00324000, "LT"), (0x00420011, "OB"), (0x00081190, "UR")]
    ),
    # binary values: inline, bulk, odd lengths, UN (public and private)
    "OB inline": one(0x00420011, "OB", b"abc"),
    "OB bulk": one(0x00420011, "OB", b"x" * 65),
    "OW at threshold": one(0x54001010, "OW", b"y" * 64),
    "OF OL": one(0x00640009, "OF", b"\0" * 8) + one(0x00660040, "OL", b"\1" * 8),
    "UN public": one(0x00100020, "UN", b"ID123 "),
    "UN private": element(0x00090010, "LO", b"CREATOR ") + one(0x00091011, "UN", b"zz"),
    "private LO": element(0x00090010, "LO", b"ACME ") + element(0x00091001, "LO", b"secret "),
    "unknown VR": one(0x00100020, "ZZ", b"??"),
    "group length": one(0x00080000, "UL", struct.pack("<L", 10)),
    "repeater": one(0x60000010, "US", struct.pack("<H", 4)) + one(0x60003000, "OW", b"\0" * 8),
    # character sets: default, ISO_IR 100 and 192 (fast), others and escapes (pydicom)
    "latin-1": one(0x00100010, "PN", "Müller^Jörg".encode("latin_1"), b"ISO_IR 100"),
    "latin-1 default set": one(0x00100010, "PN", "Müller".encode("latin_1")),
    "utf-8": one(0x00100010, "PN", "Émile^Zoë=山田".encode(), b"ISO_IR 192"),
    "utf-8 invalid": one(0x00081030, "LO", b"\xff\xfe bad", b"ISO_IR 192"),
    "utf-8 text": one(0x00324000, "LT", "naïve\\text".encode(), b"ISO_IR 192"),
    "ISO 2022 escapes": one(0x00100010, "PN", b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=",
                            b"\\ISO 2022 IR 87"),
    "GB18030": one(0x00100010, "PN", "王^小东".encode("gb18030"), b"GB18030"),
    "unknown charset": one(0x00100010, "PN", b"A^B", b"FOO 1"),
    "two charsets": one(0x00081030, "LO", b"plain", b"ISO_IR 100\\ISO_IR 126"),
    "charset multi plain": one(0x00081030, "LO", b"plain", b"ISO 2022 IR 100"),
}


def sequence_cases() -> dict[str, bytes]:
    item = element(0x00080005, "CS", b"ISO_IR 192") + element(0x00100010, "PN", "Zoë".encode())
    items = b"\xfe\xff\x00\xe0" + struct.pack("<L", len(item)) + item
    defined = element(0x00082112, "SQ", items)
    undefined = (struct.pack("<HH", 0x0008, 0x1115) + b"SQ\0\0\xff\xff\xff\xff"
                 + b"\xfe\xff\x00\xe0\xff\xff\xff\xff" + element(0x00200013, "IS", b"3 ")
                 + element(0x00420011, "OB", b"z" * 100) + b"\xfe\xff\x0d\xe0\0\0\0\0"
                 + b"\xfe\xff\xdd\xe0\0\0\0\0")
    empty = element(0x00081140, "SQ", b"")
    inherited = element(0x00100010, "PN", b"M\xfcller")  # no character set of its own
    inheriting = element(0x00082112, "SQ", b"\xfe\xff\x00\xe0" + struct.pack("<L", len(inherited)) + inherited)
    return {"sequences": defined + undefined + empty,
            "sequence charset from parent": element(0x00080005, "CS", b"ISO_IR 100") + inheriting}


def implicit_cases() -> dict[str, bytes]:
    body = b"".join([
        element(0x00080008, "CS", b"ORIGINAL\\PRIMARY", implicit=True),
        element(0x00100010, "PN", b"Doe^John", implicit=True),
        element(0x00200013, "IS", b"5 ", implicit=True),
        element(0x00280010, "US", struct.pack("<H", 512), implicit=True),
        element(0x00280103, "US", struct.pack("<H", 1), implicit=True),
        element(0x00281052, "DS", b"-1024", implicit=True),
        element(0x00283002, "US", struct.pack("<3H", 256, 0, 16), implicit=True),  # LUT descriptor
        element(0x00280106, "US", struct.pack("<H", 0xFFFF), implicit=True),  # US or SS
        element(0x00091001, "LO", b"private", implicit=True),
        element(0x00420011, "OB", b"q" * 80, implicit=True),
        element(0x60003000, "OW", b"\0" * 4, implicit=True),  # OB or OW, repeater
    ])
    return {"implicit VR": body}


def big_endian_cases() -> dict[str, bytes]:
    body = b"".join([
        element(0x00100010, "PN", b"Doe^John", little=False),
        element(0x00280010, "US", struct.pack(">H", 512), little=False),
        element(0x00189219, "FD", struct.pack(">2d", 1.5, -2.0), little=False),
        element(0x00209165, "AT", struct.pack(">2H", 0x0010, 0x0020), little=False),
        element(0x54001010, "OW", b"\x01\x02" * 3, little=False),
    ])
    return {"big endian": body}


SYNTAX = {"implicit VR": ImplicitVRLittleEndian, "big endian": ExplicitVRBigEndian}
CASES = {**BAD_AND_ODD, **sequence_cases(), **implicit_cases(), **big_endian_cases()}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_and_odd_values(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert_same(instance(CASES[name], SYNTAX.get(name, ExplicitVRLittleEndian)), monkeypatch)


def test_fast_path_is_taken_for_the_common_vrs() -> None:
    # Guards the speed: the bench CT header goes through the fast path, element for element.
    data = next(iter(datagen.SeriesSpec("equivalence", 0, 1, 1).instances()))
    dataset = read_instance(io.BytesIO(data)).dataset
    raw_before = [tag for tag, value in dataset._dict.items() if type(value) is pydicom.dataelem.RawDataElement]
    dicomjson.to_dicom_json(dataset, uri)
    still_raw = [tag for tag, value in dataset._dict.items() if type(value) is pydicom.dataelem.RawDataElement]
    assert raw_before and still_raw == raw_before
