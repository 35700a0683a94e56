"""DICOM values → FHIR R4 resources, built and checked with ``fhir.resources`` (R4B models,
the R4 structures for Patient, Endpoint and ImagingStudy). The table is in docs/dicomcast.md."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.endpoint import Endpoint
from fhir.resources.R4B.imagingstudy import ImagingStudy
from fhir.resources.R4B.patient import Patient

from dicomweb.usecases.cast.snapshot import PatientValues, StudySnapshot

Json = dict[str, Any]

DCM = "http://dicom.nema.org/resources/ontology/DCM"
DICOM_UID = "urn:dicom:uid"
URI = "urn:ietf:rfc:3986"
IDENTIFIER_TYPE = "http://terminology.hl7.org/CodeSystem/v2-0203"
CONNECTION_TYPE = "http://terminology.hl7.org/CodeSystem/endpoint-connection-type"
CREATED_TAG = {"system": "urn:dicomweb-server:dicomcast", "code": "created",
               "display": "created by DICOMcast: deleted when its study leaves the archive"}
GENDERS = {"M": "male", "F": "female", "O": "other"}


def dump(resource: Any) -> Json:
    """A model as FHIR JSON, without empty elements."""
    data: Json = resource.model_dump(mode="json", exclude_none=True)
    return data


def study_identifier(study_uid: str) -> Json:
    return {"system": DICOM_UID, "value": f"urn:oid:{study_uid}"}


def search_token(identifier: Json) -> str:
    """``system|value``, or the bare value when there is no system (never an empty system)."""
    return f"{identifier['system']}|{identifier['value']}" if identifier.get("system") else identifier["value"]


def patient_identifier(patient: PatientValues, system: str) -> Json:
    """PatientID, in the configured system, else IssuerOfPatientID's, else none at all."""
    chosen = system or patient.issuer
    return {"system": chosen, "value": patient.patient_id} if chosen else {"value": patient.patient_id}


def demographics(patient: PatientValues) -> Json:
    """The Patient elements DICOM knows: name, gender, birthDate (only those present)."""
    fields: Json = {}
    if patient.name is not None:
        name: Json = {"use": "official", "family": patient.name.family, "given": list(patient.name.given) or None,
                      "prefix": [patient.name.prefix] if patient.name.prefix else None,
                      "suffix": [patient.name.suffix] if patient.name.suffix else None}
        fields["name"] = [{key: value for key, value in name.items() if value is not None}]
    if patient.sex:
        fields["gender"] = GENDERS.get(patient.sex.upper(), "unknown")
    if patient.birth_date is not None:
        fields["birthDate"] = patient.birth_date.isoformat()
    return fields


def new_patient(patient: PatientValues, system: str) -> Json:
    return dump(Patient.model_validate({"identifier": [patient_identifier(patient, system)], **demographics(patient)}))


def updated_patient(existing: Json, patient: PatientValues) -> Json | None:
    """``existing`` with DICOM's demographics, or ``None`` when they already agree."""
    wanted = demographics(patient)
    if all(existing.get(key) == value for key, value in wanted.items()):
        return None
    return dump(Patient.model_validate({**existing, **wanted}))


def endpoint(service_root: str) -> Json:
    return dump(Endpoint.model_validate({
        "status": "active",
        "identifier": [endpoint_identifier(service_root)],
        "name": "DICOMweb service",
        "connectionType": {"system": CONNECTION_TYPE, "code": "dicom-wado-rs"},
        "payloadType": [{"text": "DICOM"}],
        "payloadMimeType": ["application/dicom"],
        "address": service_root,
    }))


def endpoint_identifier(service_root: str) -> Json:
    return {"system": URI, "value": service_root}


def _identifiers(study: StudySnapshot) -> list[Json]:
    identifiers = [study_identifier(study.study_uid)]
    if study.accession:
        identifiers.append({"type": {"coding": [{"system": IDENTIFIER_TYPE, "code": "ACSN"}]},
                            "value": study.accession})
    return identifiers


def _series(study: StudySnapshot) -> list[Json]:
    return [{
        "uid": series.uid,
        "number": series.number,
        "modality": {"system": DCM, "code": series.modality or "OT"},
        "description": series.description,
        "started": series.started,
        "bodySite": {"display": series.body_part} if series.body_part else None,
        "numberOfInstances": len(series.instances),
        "instance": [{"uid": instance.uid, "sopClass": {"system": URI, "code": f"urn:oid:{instance.sop_class_uid}"},
                      "number": instance.number, "title": instance.title} for instance in series.instances],
    } for series in study.series]


def managed_study_fields(study: StudySnapshot | None, subject: str | None, endpoint_ref: str) -> Json:
    """The ImagingStudy elements the sync owns; ``study=None``: the study left the archive."""
    if study is None:
        return {"status": "registered", "numberOfSeries": 0, "numberOfInstances": 0, "series": None,
                "modality": None}
    return {
        "status": "available",
        "modality": [{"system": DCM, "code": code} for code in study.modalities] or None,
        "subject": {"reference": subject},
        "started": study.started,
        "endpoint": [{"reference": endpoint_ref}],
        "numberOfSeries": len(study.series),
        "numberOfInstances": study.instance_count,
        "description": study.description,
        "referrer": {"display": study.referrer} if study.referrer else None,
        "series": _series(study),
    }


def _other_identifiers(existing: Json) -> list[Json]:
    """Identifiers someone else gave the study: kept as they are."""
    def ours(identifier: Json) -> bool:
        codes = [coding.get("code") for coding in identifier.get("type", {}).get("coding", [])]
        return identifier.get("system") == DICOM_UID or "ACSN" in codes
    return [identifier for identifier in existing.get("identifier", []) if not ours(identifier)]


def imaging_study(study: StudySnapshot | None, study_uid: str, subject: str | None, endpoint_ref: str,
                  existing: Json | None) -> Json:
    """The wanted ImagingStudy: ``existing`` (if any) with the managed elements replaced."""
    base: Json = dict(existing or {"resourceType": "ImagingStudy", "meta": {"tag": [CREATED_TAG]}})
    fields = managed_study_fields(study, subject, endpoint_ref)
    identifiers = _identifiers(study) if study else [study_identifier(study_uid)]
    merged = {**base, **fields, "identifier": identifiers + _other_identifiers(base)}
    cleaned = {key: value for key, value in merged.items() if value is not None}
    return dump(ImagingStudy.model_validate(cleaned))


def same_resource(left: Json, right: Json) -> bool:
    """Equal apart from the server's bookkeeping (id, meta, narrative)."""
    ignored = {"id", "meta", "text"}
    return {k: v for k, v in left.items() if k not in ignored} == {k: v for k, v in right.items() if k not in ignored}


def created_by_us(resource: Json) -> bool:
    return any(tag.get("system") == CREATED_TAG["system"] and tag.get("code") == CREATED_TAG["code"]
               for tag in resource.get("meta", {}).get("tag", []))


def normalised(resource_type: str, resource: Json) -> Json:
    """A resource as read from the server, in the form :func:`dump` gives (for comparisons)."""
    if resource_type == "ImagingStudy":
        return dump(ImagingStudy.model_validate(resource))
    return dump(Patient.model_validate(resource))
