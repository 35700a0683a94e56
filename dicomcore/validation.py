"""What an instance must carry to be stored (PS3.18 §10.5 and the issue's rules).

The four UIDs must be present and valid (PS3.5 §9.1) and PatientID present: it is Type 2
(PS3.3 C.7.1.1), so an empty value is accepted and indexed as empty. Errors name
the attribute and show the bad value, so a sender can fix the file from the message.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom import Dataset

from dicomcore.uids import is_valid_uid

REQUIRED_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")


@dataclass(frozen=True)
class InstanceUids:
    study: str
    series: str
    sop: str
    sop_class: str


class ValidationError(ValueError):
    """The instance cannot be stored; ``sop_uid``/``sop_class_uid`` are what could be read."""

    def __init__(self, message: str, sop_uid: str | None = None, sop_class_uid: str | None = None) -> None:
        super().__init__(message)
        self.sop_uid = sop_uid
        self.sop_class_uid = sop_class_uid


def _text(dataset: Dataset, keyword: str) -> str | None:
    try:
        value = dataset.get(keyword)
    except Exception:  # a malformed value must not hide the other attributes
        return None
    if value is None or value == "":
        return None
    return str(value).strip().rstrip("\x00")


def validate_instance(dataset: Dataset) -> InstanceUids:
    """The instance's UIDs, or :class:`ValidationError` naming the first problem."""
    values = {keyword: _text(dataset, keyword) for keyword in REQUIRED_UIDS}
    sop, sop_class = values["SOPInstanceUID"], values["SOPClassUID"]
    for keyword, value in values.items():
        if value is None:
            raise ValidationError(f"{keyword} is missing or empty", sop, sop_class)
        if not is_valid_uid(value):
            raise ValidationError(f"{keyword} {value!r} is not a valid UID (PS3.5 9.1)", sop, sop_class)
    if "PatientID" not in dataset:
        raise ValidationError("PatientID (0010,0020) is missing (it may be empty, not absent)", sop, sop_class)
    return InstanceUids(values["StudyInstanceUID"], values["SeriesInstanceUID"], sop, sop_class)  # type: ignore[arg-type]
