"""Radiation dose reports → FHIR Observations (optional: ``DICOMWEB_FHIR_DOSE_OBSERVATIONS``).

An X-Ray or Radiopharmaceutical Radiation Dose SR instance becomes one Observation coded
LOINC 73569-6 ("Radiation exposure and protection information"), identified by the SR's
SOP Instance UID, ``partOf`` its ImagingStudy, with one component per dose quantity found
in the SR content tree (PS3.16 TID 10001/10011/10020/10021): CTDIvol, DLP, DAP and their
accumulated totals, and the administered activity, each as a UCUM ``valueQuantity``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fhir.resources.R4B.observation import Observation

from dicomweb.usecases.cast.mapping import DCM, DICOM_UID, dump

Json = dict[str, Any]

DOSE_SR_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.88.67",  # X-Ray Radiation Dose SR
    "1.2.840.10008.5.1.4.1.1.88.68",  # Radiopharmaceutical Radiation Dose SR
    "1.2.840.10008.5.1.4.1.1.88.76",  # Enhanced X-Ray Radiation Dose SR
}
DOSE_CODES = {  # DCM code → meaning
    "113830": "Mean CTDIvol",
    "113838": "DLP",
    "113813": "CT Dose Length Product Total",
    "122130": "Dose Area Product",
    "113722": "Dose Area Product Total",
    "113507": "Administered activity",
}
LOINC = "http://loinc.org"
SUMMARY_CODE = "73569-6"
UCUM = "http://unitsofmeasure.org"

# DICOM JSON tags of the SR content tree (PS3.3 C.17.3).
CONTENT_SEQUENCE, CONCEPT_NAME, VALUE_TYPE = "0040A730", "0040A043", "0040A040"
MEASURED_VALUE, NUMERIC_VALUE, UNITS = "0040A300", "0040A30A", "004008EA"
CODE_VALUE, SCHEME = "00080100", "00080102"


def _items(element: Any) -> list[Json]:
    return element.get("Value", []) if isinstance(element, dict) else []


def _first(item: Json, tag: str) -> Any:
    values = _items(item.get(tag))
    return values[0] if values else None


def _numbers(items: list[Json]) -> Iterator[tuple[str, float, str]]:
    """(DCM code, value, UCUM unit) of every NUM item with a dose code, depth first."""
    for item in items:
        name = _first(item, CONCEPT_NAME) or {}
        code, scheme = _first(name, CODE_VALUE), _first(name, SCHEME)
        if _first(item, VALUE_TYPE) == "NUM" and scheme == "DCM" and code in DOSE_CODES:
            measured = _first(item, MEASURED_VALUE) or {}
            value, unit = _first(measured, NUMERIC_VALUE), _first(_first(measured, UNITS) or {}, CODE_VALUE)
            if value is not None:
                yield code, float(value), str(unit or "1")
        yield from _numbers(_items(item.get(CONTENT_SEQUENCE)))


def observation_identifier(sop_uid: str) -> Json:
    return {"system": DICOM_UID, "value": f"urn:oid:{sop_uid}"}


def dose_observation(instance: Json, study_ref: str, subject_ref: str) -> tuple[str, Json] | None:
    """(SOP Instance UID, Observation) for a dose SR with dose values; ``None`` for anything else."""
    sop_class, sop_uid = _first(instance, "00080016"), _first(instance, "00080018")
    if sop_class not in DOSE_SR_CLASSES or not sop_uid:
        return None
    components = [{
        "code": {"coding": [{"system": DCM, "code": code, "display": DOSE_CODES[code]}]},
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
    } for code, value, unit in _numbers(_items(instance.get(CONTENT_SEQUENCE)))]
    if not components:
        return None
    return sop_uid, dump(Observation.model_validate({
        "status": "final",
        "identifier": [observation_identifier(sop_uid)],
        "code": {"coding": [{"system": LOINC, "code": SUMMARY_CODE,
                             "display": "Radiation exposure and protection information"}]},
        "subject": {"reference": subject_ref},
        "partOf": [{"reference": study_ref}],
        "component": components,
    }))


def sop_of(observation: Json) -> str | None:
    for identifier in observation.get("identifier", []):
        if identifier.get("system") == DICOM_UID and str(identifier.get("value", "")).startswith("urn:oid:"):
            return str(identifier["value"])[len("urn:oid:"):]
    return None
