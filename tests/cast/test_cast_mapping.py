"""The DICOM → FHIR values, without a server: dates, times, names, the CapabilityStatement check."""

from __future__ import annotations

from datetime import date

import pytest

from dicomweb.usecases.cast.mapping import demographics, patient_identifier
from dicomweb.usecases.cast.snapshot import InvalidStudy, dicom_date, dicom_time, person_name, snapshot, started
from dicomweb.usecases.cast.sync import capability_problems


def test_dates_and_times() -> None:
    assert dicom_date("19700101", "PatientBirthDate") == date(1970, 1, 1)
    assert dicom_date("1970.01.01", "PatientBirthDate") == date(1970, 1, 1)
    for bad in ("19701345", "1970", "abcdefgh", "19700231"):
        with pytest.raises(InvalidStudy, match="PatientBirthDate") as caught:
            dicom_date(bad, "PatientBirthDate")
        assert bad not in str(caught.value), "no patient value in the reason"
    assert dicom_time("101500.123", "StudyTime") == "10:15:00.123"
    assert dicom_time("10", "StudyTime") == "10:00:00"
    with pytest.raises(InvalidStudy):
        dicom_time("2561", "StudyTime")
    assert started(date(2024, 1, 2), "10:15:00", "+01:00") == "2024-01-02T10:15:00+01:00"
    assert started(date(2024, 1, 2), "10:15:00", None) == "2024-01-02", "no zone: the date alone"


def test_names_gender_and_identifier_system() -> None:
    values = snapshot("1.2", [{
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "DOE^JANE^Q^DR^III"}]},
        "00100020": {"vr": "LO", "Value": ["P1"]}, "00100021": {"vr": "LO", "Value": ["urn:oid:1.9"]},
        "00100040": {"vr": "CS", "Value": ["F"]}, "0020000E": {"vr": "UI", "Value": ["1.2.3"]},
        "00080018": {"vr": "UI", "Value": ["1.2.3.4"]},
        "00080016": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.2"]},
    }])
    assert values is not None
    assert demographics(values.patient) == {"name": [{"use": "official", "family": "DOE", "given": ["JANE", "Q"],
                                                      "prefix": ["DR"], "suffix": ["III"]}], "gender": "female"}
    assert patient_identifier(values.patient, "") == {"system": "urn:oid:1.9", "value": "P1"}
    assert patient_identifier(values.patient, "urn:x") == {"system": "urn:x", "value": "P1"}
    assert person_name("^") is None
    assert snapshot("1.2", []) is None


def test_capability_statement_check_names_what_is_missing() -> None:
    good = {"fhirVersion": "4.0.1", "rest": [{"interaction": [{"code": "transaction"}]}]}
    assert capability_problems(good) == []
    problems = capability_problems({"fhirVersion": "5.0.0", "rest": [{"interaction": [{"code": "batch"}],
                                                                       "resource": [{"type": "Patient"}]}]})
    assert any("not R4" in p for p in problems) and any("transaction" in p for p in problems)
    assert any("ImagingStudy" in p for p in problems) and any("Endpoint" in p for p in problems)
