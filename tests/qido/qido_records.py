"""Index records made straight from pydicom datasets, so QIDO tests need no STOW."""

from __future__ import annotations

from pydicom import Dataset

from dicomcore.layout import instance_key
from indexing.port import InstanceRecord
from tests.support.builders import make_dataset


def record_of(ds: Dataset) -> InstanceRecord:
    """The record the indexer would make: the header as DICOM JSON, pixel data as a
    BulkDataURI entry (which the index must ignore)."""
    attributes = ds.to_json_dict(bulk_data_threshold=64, bulk_data_element_handler=lambda _: "bulk/7FE00010")
    return InstanceRecord(
        study_uid=ds.StudyInstanceUID,
        series_uid=ds.SeriesInstanceUID,
        sop_uid=ds.SOPInstanceUID,
        sop_class_uid=ds.SOPClassUID,
        instance_key=instance_key(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID),
        incarnation="inc-1",
        transfer_syntax_uid=ds.file_meta.TransferSyntaxUID,
        number_of_frames=int(ds.get("NumberOfFrames", 1)),
        size=1000,
        attributes=attributes,
        stored_at="2024-01-02T03:04:05Z",
    )


def make_record(**changes: object) -> InstanceRecord:
    """A record of :func:`builders.make_dataset` with keyword attributes set on top
    (``make_record(PatientName="X", study="1.2")``: builder arguments are lower-case)."""
    builder_args = {key: value for key, value in changes.items() if key[0].islower()}
    ds = make_dataset(**builder_args)  # type: ignore[arg-type]
    for keyword, value in changes.items():
        if keyword[0].isupper():
            setattr(ds, keyword, value)
    return record_of(ds)
