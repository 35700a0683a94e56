"""One study: read what the archive holds, read what FHIR holds, send the difference as one
transaction Bundle (all or nothing), or nothing at all when FHIR already agrees.

Idempotent by construction: resources are found by identifier, created with conditional
create (``ifNoneExist``), updated under ``If-Match`` with the version read, and compared
before any write, so replaying an entry changes nothing. A version that moved meanwhile
fails the transaction with 412, and the caller retries the whole read-compare-write.
"""

from __future__ import annotations

import asyncio
from typing import Any

from dicomweb.usecases.cast import dose, mapping
from dicomweb.usecases.cast.ports import FhirClient, FhirError, StudySource
from dicomweb.usecases.cast.snapshot import StudySnapshot, snapshot

Json = dict[str, Any]
PATIENT_REF = "urn:uuid:00000000-0000-4000-8000-000000000001"
STUDY_REF = "urn:uuid:00000000-0000-4000-8000-000000000003"
PATIENT_LOCKS = 64
"""Striped locks, one per patient identifier hash: bounded memory, however many patients."""


def _version(resource: Json) -> str:
    return f'W/"{resource.get("meta", {}).get("versionId", "")}"'


class StudySync:
    def __init__(self, fhir: FhirClient, studies: StudySource, *, patient_system: str = "",
                 dose_observations: bool = False) -> None:
        self.fhir = fhir
        self.studies = studies
        self.patient_system = patient_system
        self.dose_observations = dose_observations
        self._endpoint: str | None = None
        self._endpoint_lock = asyncio.Lock()
        self._patient_locks = [asyncio.Lock() for _ in range(PATIENT_LOCKS)]

    async def endpoint_reference(self) -> str:
        """``Endpoint/{id}`` of this service, created once (conditional create) and remembered."""
        async with self._endpoint_lock:
            if self._endpoint is None:
                root = self.studies.service_root
                token = mapping.search_token(mapping.endpoint_identifier(root))
                found = await self.fhir.search("Endpoint", {"identifier": token})
                if not found:
                    await self.fhir.transaction(_bundle([{
                        "fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000002",
                        "resource": mapping.endpoint(root),
                        "request": {"method": "POST", "url": "Endpoint", "ifNoneExist": f"identifier={token}"},
                    }]))
                    found = await self.fhir.search("Endpoint", {"identifier": token})
                if not found:
                    raise FhirError("the Endpoint was created but cannot be found by its identifier",
                                    transient=False)
                self._endpoint = f"Endpoint/{found[0]['id']}"
            return self._endpoint

    async def sync(self, study_uid: str) -> bool:
        """Bring FHIR to the study's current state; True if something was written."""
        instances = await self.studies.study_metadata(study_uid)
        study = snapshot(study_uid, instances)
        # Studies of one patient go one at a time: two parallel conditional creates of a new
        # Patient could both find none on a server that does not serialise transactions.
        key = mapping.search_token(mapping.patient_identifier(study.patient, self.patient_system)) if study else ""
        async with self._patient_locks[hash(key) % PATIENT_LOCKS]:
            return await self._sync(study, instances, study_uid)

    async def _sync(self, study: StudySnapshot | None, instances: list[Json], study_uid: str) -> bool:
        found = await self.fhir.search("ImagingStudy", {
            "identifier": mapping.search_token(mapping.study_identifier(study_uid))})
        existing = found[0] if found else None
        entries = await self._entries(study, instances, study_uid, existing)
        if not entries:
            return False
        await self.fhir.transaction(_bundle(entries))
        return True

    async def _entries(self, study: StudySnapshot | None, instances: list[Json], study_uid: str,
                       existing: Json | None) -> list[Json]:
        if study is None:
            return [*await self._dose_entries([], "", "", existing), *self._emptied(study_uid, existing)]
        endpoint = await self.endpoint_reference()
        entries, subject = await self._patient(study)
        wanted = mapping.imaging_study(study, study_uid, subject, endpoint, existing)
        if existing is None:
            token = mapping.search_token(mapping.study_identifier(study_uid))
            entries.append({"fullUrl": STUDY_REF, "resource": wanted, "request": {
                "method": "POST", "url": "ImagingStudy", "ifNoneExist": f"identifier={token}"}})
        elif not mapping.same_resource(mapping.normalised("ImagingStudy", existing), wanted):
            entries.append(_update("ImagingStudy", existing, wanted))
        study_ref = f"ImagingStudy/{existing['id']}" if existing else STUDY_REF
        return [*entries, *await self._dose_entries(instances, study_ref, subject, existing)]

    async def _dose_entries(self, instances: list[Json], study_ref: str, subject: str,
                            existing: Json | None) -> list[Json]:
        """Dose Observations to create (new dose SRs) and to delete (their SR left the study)."""
        if not self.dose_observations:
            return []
        wanted = dict(filter(None, (dose.dose_observation(instance, study_ref, subject) for instance in instances)))
        present: dict[str, Json] = {}
        if existing is not None:
            found = await self.fhir.search("Observation", {
                "part-of": f"ImagingStudy/{existing['id']}", "code": f"{dose.LOINC}|{dose.SUMMARY_CODE}"})
            present = {sop: item for item in found if (sop := dose.sop_of(item))}
        entries = [{"request": {"method": "DELETE", "url": f"Observation/{item['id']}"}}
                   for sop, item in present.items() if sop not in wanted]
        for sop, observation in wanted.items():
            if sop not in present:
                token = mapping.search_token(dose.observation_identifier(sop))
                entries.append({"resource": observation, "request": {
                    "method": "POST", "url": "Observation", "ifNoneExist": f"identifier={token}"}})
        return entries

    def _emptied(self, study_uid: str, existing: Json | None) -> list[Json]:
        """Nothing left in the archive: delete the ImagingStudy we created; empty one we did not."""
        if existing is None:
            return []
        if mapping.created_by_us(existing):
            return [{"request": {"method": "DELETE", "url": f"ImagingStudy/{existing['id']}"}}]
        endpoint_refs = existing.get("endpoint") or [{"reference": ""}]
        wanted = mapping.imaging_study(None, study_uid, None, endpoint_refs[0].get("reference", ""), existing)
        if mapping.same_resource(mapping.normalised("ImagingStudy", existing), wanted):
            return []
        return [_update("ImagingStudy", existing, wanted)]

    async def _patient(self, study: StudySnapshot) -> tuple[list[Json], str]:
        """The Patient entries the transaction needs, and the reference the study uses."""
        identifier = mapping.patient_identifier(study.patient, self.patient_system)
        token = mapping.search_token(identifier)
        found = await self.fhir.search("Patient", {"identifier": token})
        if not found:
            entry = {"fullUrl": PATIENT_REF, "resource": mapping.new_patient(study.patient, self.patient_system),
                     "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={token}"}}
            return [entry], PATIENT_REF
        existing = found[0]
        reference = f"Patient/{existing['id']}"
        updated = mapping.updated_patient(existing, study.patient)
        return ([_update("Patient", existing, updated)] if updated else []), reference


def _update(resource_type: str, existing: Json, wanted: Json) -> Json:
    resource = {**wanted, "id": existing["id"]}
    resource.pop("meta", None)
    if existing.get("meta", {}).get("tag"):
        resource["meta"] = {"tag": existing["meta"]["tag"]}
    return {"resource": resource, "request": {
        "method": "PUT", "url": f"{resource_type}/{existing['id']}", "ifMatch": _version(existing)}}


def _bundle(entries: list[Json]) -> Json:
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}
