"""Optional radiation dose Observations: an X-Ray Radiation Dose SR becomes one Observation
(LOINC 73569-6) part of its ImagingStudy, and leaves with the SR; off by default."""

from __future__ import annotations

from pathlib import Path

from dicomweb_client.api import DICOMwebClient
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from dicomweb.cli import main
from tests.cast.conftest import imaging_studies
from tests.support.builders import make_dataset
from tests.support.fhir import FhirServer
from tests.support.servers import ServerProcess

XRAY_DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.67"


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, scheme, meaning
    return code


def _number(value: str, meaning: str, amount: str, unit: str) -> Dataset:
    item = Dataset()
    item.RelationshipType, item.ValueType = "CONTAINS", "NUM"
    item.ConceptNameCodeSequence = Sequence([_code(value, "DCM", meaning)])
    measured = Dataset()
    measured.NumericValue = amount
    measured.MeasurementUnitsCodeSequence = Sequence([_code(unit, "UCUM", unit)])
    item.MeasuredValueSequence = Sequence([measured])
    return item


def dose_report(study: str, patient_id: str) -> Dataset:
    """A small CT dose report (TID 10011): one irradiation event with CTDIvol and DLP, and the total DLP."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = XRAY_DOSE_SR
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, generate_uid()
    ds.PatientID, ds.PatientName, ds.Modality = patient_id, "DOE^JOHN", "SR"
    ds.SeriesNumber, ds.InstanceNumber = 99, 1
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = Sequence([_code("113701", "DCM", "X-Ray Radiation Dose Report")])
    event = Dataset()
    event.RelationshipType, event.ValueType = "CONTAINS", "CONTAINER"
    event.ConceptNameCodeSequence = Sequence([_code("113819", "DCM", "CT Acquisition")])
    event.ContentSequence = Sequence([_number("113830", "Mean CTDIvol", "12.5", "mGy"),
                                      _number("113838", "DLP", "310", "mGy.cm")])
    ds.ContentSequence = Sequence([event, _number("113813", "CT Dose Length Product Total", "310", "mGy.cm")])
    return ds


def test_dose_report_becomes_an_observation(tmp_path: Path, fhir: FhirServer, patient_id: str) -> None:
    server = ServerProcess(tmp_path / "data")
    try:
        client = DICOMwebClient(server.root)
        study = generate_uid()
        report = dose_report(study, patient_id)
        client.store_instances([make_dataset(study=study, patient_id=patient_id), report])
        state = str(tmp_path / "cast.json")
        common = ["cast", "--fhir-url", fhir.base_url, "--url", server.root, "--state", state, "--once"]
        assert main(common) == 0
        observations = f"urn:dicom:uid|urn:oid:{report.SOPInstanceUID}"
        assert fhir.search("Observation", identifier=observations) == [], "off by default"

        assert main([*common, "--dose-observations"]) == 0  # no new entries: nothing to do yet
        client.store_instances([make_dataset(study=study, patient_id=patient_id, instance_number=2)])
        assert main([*common, "--dose-observations"]) == 0
        [imaging] = imaging_studies(fhir, study)
        [observation] = fhir.search("Observation", identifier=observations)
        assert observation["code"]["coding"][0]["code"] == "73569-6"
        assert observation["partOf"] == [{"reference": f"ImagingStudy/{imaging['id']}"}]
        assert observation["subject"] == imaging["subject"]
        values = {c["code"]["coding"][0]["code"]: c["valueQuantity"] for c in observation["component"]}
        assert values["113830"]["value"] == 12.5 and values["113830"]["code"] == "mGy"
        assert values["113838"]["value"] == 310 and values["113813"]["unit"] == "mGy.cm"

        client.delete_instance(study, report.SeriesInstanceUID, report.SOPInstanceUID)
        assert main([*common, "--dose-observations"]) == 0
        assert fhir.search("Observation", identifier=observations) == []
        assert imaging_studies(fhir, study)[0]["numberOfInstances"] == 2
    finally:
        server.stop()
