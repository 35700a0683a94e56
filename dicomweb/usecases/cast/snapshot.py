"""A study as the archive holds it now, read from its instances' DICOM JSON (PS3.18 F.2).

Only the attributes the FHIR mapping uses are read. Values that FHIR needs in another form
(dates, times, person names) are checked here, and a bad one raises :class:`InvalidStudy`
naming the attribute but never its value (no patient data in failure records or logs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pydicom.valuerep import PersonName

Json = dict[str, Any]

# Tags in DICOM JSON (group+element, upper-case hex).
TAGS = {
    "PatientName": "00100010", "PatientID": "00100020", "IssuerOfPatientID": "00100021",
    "PatientBirthDate": "00100030", "PatientSex": "00100040",
    "StudyInstanceUID": "0020000D", "StudyDate": "00080020", "StudyTime": "00080030",
    "TimezoneOffsetFromUTC": "00080201", "AccessionNumber": "00080050", "StudyDescription": "00081030",
    "ReferringPhysicianName": "00080090",
    "SeriesInstanceUID": "0020000E", "SeriesNumber": "00200011", "Modality": "00080060",
    "SeriesDescription": "0008103E", "SeriesDate": "00080021", "SeriesTime": "00080031",
    "BodyPartExamined": "00180015",
    "SOPInstanceUID": "00080018", "SOPClassUID": "00080016", "InstanceNumber": "00200013",
    "DocumentTitle": "00420010", "ContentLabel": "00700080",
}


class InvalidStudy(ValueError):
    """The study's DICOM data cannot be expressed in FHIR (non-transient: retrying will not help)."""


def first(instance: Json, keyword: str) -> Any:
    """The first value of ``keyword`` in one instance's DICOM JSON, or ``None``."""
    element = instance.get(TAGS[keyword])
    if not isinstance(element, dict):
        return None
    values = element.get("Value")
    if not values:
        return None
    value = values[0]
    if isinstance(value, dict):  # a person name: {"Alphabetic": "FAMILY^GIVEN^MIDDLE^PREFIX^SUFFIX"}
        return value.get("Alphabetic")
    return value.strip() if isinstance(value, str) else value


def text(instance: Json, keyword: str) -> str | None:
    value = first(instance, keyword)
    return str(value) if value not in (None, "") else None


def integer(instance: Json, keyword: str) -> int | None:
    value = first(instance, keyword)
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError) as exc:
        raise InvalidStudy(f"{keyword} is not an integer") from exc


def dicom_date(value: str | None, keyword: str) -> date | None:
    """A DA value (YYYYMMDD) as a date; PS3.5 6.2."""
    if not value:
        return None
    digits = value.replace(".", "")  # ACR-NEMA style YYYY.MM.DD is still met in the field
    if len(digits) != 8 or not digits.isdigit():
        raise InvalidStudy(f"{keyword} is not a valid DICOM date (YYYYMMDD)")
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError as exc:
        raise InvalidStudy(f"{keyword} is not a valid DICOM date (YYYYMMDD)") from exc


def dicom_time(value: str | None, keyword: str) -> str | None:
    """A TM value (HH[MM[SS[.F{1,6}]]]) as FHIR's ``hh:mm:ss[.ffffff]``."""
    if not value:
        return None
    whole, _, fraction = value.replace(":", "").partition(".")
    if not whole.isdigit() or len(whole) not in (2, 4, 6) or (fraction and not fraction.isdigit()):
        raise InvalidStudy(f"{keyword} is not a valid DICOM time (HHMMSS.FFFFFF)")
    whole = whole.ljust(6, "0")
    hours, minutes, seconds = int(whole[:2]), int(whole[2:4]), int(whole[4:6])
    if hours > 23 or minutes > 59 or seconds > 60:
        raise InvalidStudy(f"{keyword} is not a valid DICOM time (HHMMSS.FFFFFF)")
    return f"{whole[:2]}:{whole[2:4]}:{min(seconds, 59):02d}" + (f".{fraction[:6]}" if fraction else "")


def utc_offset(value: str | None) -> str | None:
    """TimezoneOffsetFromUTC (``+HHMM``/``-HHMM``) as FHIR's ``+hh:mm``; ``None`` when absent."""
    if not value:
        return None
    if len(value) != 5 or value[0] not in "+-" or not value[1:].isdigit():
        raise InvalidStudy("TimezoneOffsetFromUTC is not of the form +HHMM or -HHMM")
    return f"{value[:3]}:{value[3:]}"


def started(day: date | None, time: str | None, offset: str | None) -> str | None:
    """A FHIR dateTime: with a time only when the zone is known (FHIR requires one with a time)."""
    if day is None:
        return None
    if time is None or offset is None:
        return day.isoformat()
    return f"{day.isoformat()}T{time}{offset}"


@dataclass(frozen=True)
class PatientName:
    family: str | None
    given: tuple[str, ...]
    prefix: str | None
    suffix: str | None


def person_name(value: str | None) -> PatientName | None:
    if not value:
        return None
    name = PersonName(value)  # pydicom splits the five PN components (PS3.5 6.2.1)
    given = tuple(part for part in (name.given_name, name.middle_name) if part)
    result = PatientName(name.family_name or None, given, name.name_prefix or None, name.name_suffix or None)
    return result if result != PatientName(None, (), None, None) else None


@dataclass(frozen=True)
class PatientValues:
    patient_id: str
    issuer: str | None
    name: PatientName | None
    sex: str | None
    birth_date: date | None


@dataclass(frozen=True)
class InstanceValues:
    uid: str
    sop_class_uid: str
    number: int | None
    title: str | None


@dataclass
class SeriesValues:
    uid: str
    number: int | None
    modality: str | None
    description: str | None
    started: str | None
    body_part: str | None
    instances: list[InstanceValues] = field(default_factory=list)


@dataclass
class StudySnapshot:
    study_uid: str
    patient: PatientValues
    accession: str | None
    description: str | None
    started: str | None
    referrer: str | None
    series: list[SeriesValues]

    @property
    def instance_count(self) -> int:
        return sum(len(series.instances) for series in self.series)

    @property
    def modalities(self) -> list[str]:
        return sorted({series.modality for series in self.series if series.modality})


def _patient(instance: Json) -> PatientValues:
    patient_id = text(instance, "PatientID")
    if not patient_id:
        raise InvalidStudy("PatientID is missing: a FHIR Patient needs an identifier")
    return PatientValues(
        patient_id=patient_id,
        issuer=text(instance, "IssuerOfPatientID"),
        name=person_name(text(instance, "PatientName")),
        sex=text(instance, "PatientSex"),
        birth_date=dicom_date(text(instance, "PatientBirthDate"), "PatientBirthDate"),
    )


def _series(instance: Json, offset: str | None) -> SeriesValues:
    return SeriesValues(
        uid=str(text(instance, "SeriesInstanceUID")),
        number=integer(instance, "SeriesNumber"),
        modality=text(instance, "Modality"),
        description=text(instance, "SeriesDescription"),
        started=started(dicom_date(text(instance, "SeriesDate"), "SeriesDate"),
                        dicom_time(text(instance, "SeriesTime"), "SeriesTime"), offset),
        body_part=text(instance, "BodyPartExamined"),
    )


def _instance(instance: Json) -> InstanceValues:
    return InstanceValues(
        uid=str(text(instance, "SOPInstanceUID")),
        sop_class_uid=str(text(instance, "SOPClassUID")),
        number=integer(instance, "InstanceNumber"),
        title=text(instance, "DocumentTitle") or text(instance, "ContentLabel"),
    )


def _instance_order(instance: InstanceValues) -> tuple[int, str]:
    return (instance.number if instance.number is not None else 2**31, instance.uid)


def snapshot(study_uid: str, instances: list[Json]) -> StudySnapshot | None:
    """The study's values, series and instances in a stable order; ``None`` when it holds none.

    Study and patient attributes are read from the first instance: the archive keeps them
    per study, as DICOM requires them equal across a study's instances.
    """
    if not instances:
        return None
    head = instances[0]
    offset = utc_offset(text(head, "TimezoneOffsetFromUTC"))
    series: dict[str, SeriesValues] = {}
    for instance in instances:
        series_uid = str(text(instance, "SeriesInstanceUID"))
        if series_uid not in series:
            series[series_uid] = _series(instance, offset)
        series[series_uid].instances.append(_instance(instance))
    for values in series.values():
        values.instances.sort(key=_instance_order)
    ordered = sorted(series.values(), key=lambda s: (s.number if s.number is not None else 2**31, s.uid))
    return StudySnapshot(
        study_uid=study_uid,
        patient=_patient(head),
        accession=text(head, "AccessionNumber"),
        description=text(head, "StudyDescription"),
        started=started(dicom_date(text(head, "StudyDate"), "StudyDate"),
                        dicom_time(text(head, "StudyTime"), "StudyTime"), offset),
        referrer=_display_name(text(head, "ReferringPhysicianName")),
        series=ordered,
    )


def _display_name(value: str | None) -> str | None:
    name = person_name(value)
    if name is None:
        return None
    return " ".join(part for part in (name.prefix, *name.given, name.family, name.suffix) if part) or None
