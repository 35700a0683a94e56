"""Metadata served over HTTP is the DICOM JSON pydicom's own path makes of the stored header.

The STOW path builds the JSON with the hand-written builder (dicomcore.rawjson); this test
builds the expected JSON from the same bytes with that builder switched off (every element
through pydicom's ``to_json_dict``) and compares what ``GET .../metadata`` returns.
"""

from __future__ import annotations

import io

import pytest
from pydicom import Dataset
from pydicom.datadict import tag_for_keyword
from starlette.testclient import TestClient

from dicomcore import dicomjson, rawjson
from dicomcore.instance import read_instance
from tests.support.builders import DICOM, make_dataset, to_bytes

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def instance_with_many_vrs() -> bytes:
    ds = make_dataset(patient_name="Müller^Jürgen")
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "", "AXIAL"]  # an empty value among several
    ds.ImagePositionPatient = ["-12.5", "0", "1e2"]
    ds.InstitutionName = ""  # no value
    ds.OperatorsName = ["Ärzt^Eva", "Yamada^Tarou=Y=y"]
    ds.DimensionIndexPointer = [0x00209056, 0x00209057]
    ds.RetrieveAETitle = ["AE1", "AE2"]
    ds.LongCodeValue = "x" * 70
    ds.SpecimenDetailedDescription = "text\\with backslash"
    ds.SelectorSVValue = [-(2**40), 3]
    ds.TimeRange = [0.25, -1.5]
    ds.EncapsulatedDocument = b"%PDF" + b"x" * 2000  # bulk data
    item = Dataset()
    item.CodeValue = "113076"
    item.CodeMeaning = "Segmentation"
    item.ReferencedFrameNumber = [1, 2]
    item.IconImageSequence = []
    item.SpecimenDetailedDescription = "ünïcode"
    item.EncapsulatedDocument = b"\x01\x02" * 8  # inline binary
    ds.ContentSequence = [item, Dataset()]
    data = to_bytes(ds)
    # An IS value that is not a number: left out of the JSON, the instance still stored.
    # (0054,0017) is the header's last element before Pixel Data, so the order stays valid.
    invalid = b"\x54\x00\x17\x00IS\x02\x001A"
    at = data.index(b"\xe0\x7f\x10\x00OW")
    return data[:at] + invalid + data[at:]


def test_metadata_is_pydicoms_dicom_json(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    data = instance_with_many_vrs()
    response = client.post("/v1/studies", content=data, headers={"Content-Type": DICOM})
    assert response.status_code == 200, response.text
    parsed = read_instance(io.BytesIO(data))
    ds = parsed.dataset
    url = (f"/v1/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
           f"/instances/{ds.SOPInstanceUID}")
    served = client.get(url + "/metadata")
    assert served.status_code == 200
    (document,) = served.json()

    monkeypatch.setattr(rawjson, "pydicom_defaults", lambda: False)
    expected = dicomjson.to_dicom_json(
        ds, lambda path: f"http://testserver{url}/bulkdata/{path}", pixel_data=parsed.frames
    )
    assert document == expected
    assert f"{tag_for_keyword('ResidualSyringeCounts'):08X}" not in document  # the invalid IS
    assert document["00081070"]["Value"][1] == {"Alphabetic": "Yamada^Tarou", "Ideographic": "Y", "Phonetic": "y"}
    assert document["00100010"]["Value"] == [{"Alphabetic": "Müller^Jürgen"}]
    assert "BulkDataURI" in document["00420011"]
    assert "InlineBinary" in document["0040A730"]["Value"][0]["00420011"]


def test_an_unbuildable_value_is_refused_without_quoting_it(client: TestClient) -> None:
    """A US value of the wrong length makes the header unbuildable: the instance fails alone
    (409, reason 272), and the answer names where it failed, never the value's bytes."""
    data = to_bytes(make_dataset())
    secret = b"DOE"  # three bytes: not a whole US value
    bad = b"\x28\x00\x08\x00US\x03\x00" + secret  # (0028,0008) NumberOfFrames, before Rows
    at = data.index(b"\x28\x00\x10\x00US")
    response = client.post("/v1/studies", content=data[:at] + bad + data[at:], headers={"Content-Type": DICOM})
    assert response.status_code == 409, response.text
    failed = response.json()["00081198"]["Value"][0]
    assert failed["00081197"]["Value"] == [272]
    comment = failed["00009902"]["Value"][0] if "00009902" in failed else response.text
    assert "processing failure" in comment
    assert "DOE" not in response.text and "\\x44" not in response.text
