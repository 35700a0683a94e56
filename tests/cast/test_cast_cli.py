"""``dicomweb cast`` following a running server's change feed, against a real FHIR R4 server:
dicomweb-client stores, deletes and replays; a kill -9 mid-backlog; a FHIR server answering
503 for a while; an invalid birth date; two archives with the same patient; a server that is not FHIR."""

from __future__ import annotations

import contextlib
import io
import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from dicomweb_client.api import DICOMwebClient
from pydicom.uid import generate_uid

from dicomweb.cli import main
from tests.cast.conftest import imaging_studies, patients, shape, wait_for
from tests.support.builders import DICOM, make_dataset, to_bytes
from tests.support.fhir import FhirServer, FlakyProxy
from tests.support.servers import ServerProcess

ROOT = Path(__file__).resolve().parents[2]


def _command(fhir_url: str, root: str, state: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "dicomweb", "cast", *extra[:1], "--fhir-url", fhir_url, "--url", root,
            "--state", str(state), *extra[1:]]


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


def _cli(*argv: str) -> Run:
    """``dicomweb ...`` run in this process (the follower below is a real process, to be killed)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return Run(code, out.getvalue(), err.getvalue())


def _cast_once(fhir_url: str, root: str, state: Path, *options: str) -> Run:
    return _cli(*_command(fhir_url, root, state, "run", "--once", *options)[3:])


def _follow(fhir_url: str, root: str, state: Path, *options: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(_command(fhir_url, root, state, "run", "--poll", "0.1", *options), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stow(root: str, *datasets: object) -> None:
    with httpx.Client(timeout=30) as http:
        for dataset in datasets:
            response = http.post(f"{root}/studies", content=to_bytes(dataset), headers={"Content-Type": DICOM})  # type: ignore[arg-type]
            assert response.status_code == 200, response.text


def _versions(fhir: FhirServer, study: str, patient_id: str) -> tuple[str, str]:
    [imaging] = imaging_studies(fhir, study)
    [patient] = patients(fhir, patient_id)
    return imaging["meta"]["versionId"], patient["meta"]["versionId"]


def test_follow_a_server_with_dicomweb_client(tmp_path: Path, fhir: FhirServer, patient_id: str) -> None:
    server = ServerProcess(tmp_path / "data")
    state = tmp_path / "cast.json"
    try:
        client = DICOMwebClient(server.root)
        study, ct, mr = generate_uid(), generate_uid(), generate_uid()
        ct_sops, mr_sops = [generate_uid() for _ in range(3)], [generate_uid() for _ in range(2)]
        client.store_instances(
            [make_dataset(study=study, series=ct, sop=sop, patient_id=patient_id, instance_number=i, series_number=1)
             for i, sop in enumerate(ct_sops, 1)]
            + [make_dataset(study=study, series=mr, sop=sop, patient_id=patient_id, instance_number=i,
                            series_number=2, modality="MR") for i, sop in enumerate(mr_sops, 1)])
        run = _cast_once(fhir.base_url, server.root, state)
        assert run.returncode == 0, run.stderr
        [imaging] = imaging_studies(fhir, study)
        assert shape(imaging) == {"series": {ct: sorted(ct_sops), mr: sorted(mr_sops)}, "numberOfSeries": 2,
                                  "numberOfInstances": 5, "seriesCounts": [3, 2]}
        [patient] = patients(fhir, patient_id)
        assert patient["name"][0] == {"use": "official", "family": "DOE", "given": ["JOHN"]}
        assert (patient["gender"], patient["birthDate"]) == ("other", "1970-01-01")
        assert "system" not in patient["identifier"][0], "no system configured: none at all, never an empty one"
        [endpoint] = fhir.search("Endpoint", identifier=f"urn:ietf:rfc:3986|{server.root}")
        assert endpoint["connectionType"]["code"] == "dicom-wado-rs" and endpoint["address"] == server.root
        assert imaging["endpoint"] == [{"reference": f"Endpoint/{endpoint['id']}"}]
        assert {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}]},
                "value": "ACC-1"} in imaging["identifier"]

        # Replaying the whole feed changes nothing: no new versions, no duplicates.
        before = _versions(fhir, study, patient_id)
        state.write_text(json.dumps({"sequence": 0, "failures": []}))
        assert _cast_once(fhir.base_url, server.root, state).returncode == 0
        assert _versions(fhir, study, patient_id) == before

        # More instances, then deletes: an instance, a series, the study.
        extra = generate_uid()
        client.store_instances([make_dataset(study=study, series=mr, sop=extra, patient_id=patient_id,
                                             instance_number=3, series_number=2, modality="MR")])
        client.delete_instance(study, ct, ct_sops[0])
        assert _cast_once(fhir.base_url, server.root, state).returncode == 0
        [imaging] = imaging_studies(fhir, study)
        assert shape(imaging)["series"] == {ct: sorted(ct_sops[1:]), mr: sorted([*mr_sops, extra])}
        assert (imaging["numberOfInstances"], shape(imaging)["seriesCounts"]) == (5, [2, 3])
        client.delete_series(study, ct)
        assert _cast_once(fhir.base_url, server.root, state).returncode == 0
        [imaging] = imaging_studies(fhir, study)
        assert (imaging["numberOfSeries"], imaging["numberOfInstances"]) == (1, 3)
        assert [m["code"] for m in imaging["modality"]] == ["MR"]
        client.delete_study(study)
        assert _cast_once(fhir.base_url, server.root, state).returncode == 0
        assert imaging_studies(fhir, study) == []
        assert len(patients(fhir, patient_id)) == 1
    finally:
        server.stop()


def test_kill_mid_backlog_then_restart(tmp_path: Path, fhir: FhirServer, patient_id: str) -> None:
    server = ServerProcess(tmp_path / "data")
    state = tmp_path / "cast.json"
    try:
        studies = [generate_uid() for _ in range(24)]
        _stow(server.root, *(make_dataset(study=uid, patient_id=patient_id) for uid in studies))
        follower = _follow(fhir.base_url, server.root, state, "--batch", "3")

        def position() -> int:
            try:
                return int(json.loads(state.read_text())["sequence"])
            except (FileNotFoundError, ValueError):
                return 0

        wait_for(lambda: position() >= 6, what="the sync to get going")
        follower.send_signal(signal.SIGKILL)
        follower.wait()
        assert position() < len(studies), "killed mid-backlog"
        assert _cast_once(fhir.base_url, server.root, state, "--batch", "3").returncode == 0
        assert position() == len(studies)
        found = fhir.search("ImagingStudy", subject=f"Patient/{patients(fhir, patient_id)[0]['id']}")
        uids = [identifier["value"] for study in found for identifier in study["identifier"]
                if identifier.get("system") == "urn:dicom:uid"]
        assert sorted(uids) == sorted(f"urn:oid:{uid}" for uid in studies), "nothing missed, nothing duplicated"
        assert len(patients(fhir, patient_id)) == 1
    finally:
        server.stop()


def test_fhir_unavailable_for_a_while(tmp_path: Path, fhir: FhirServer, patient_id: str) -> None:
    server = ServerProcess(tmp_path / "data")
    proxy = FlakyProxy(fhir.base_url)
    proxy.failing = True
    try:
        study = generate_uid()
        _stow(server.root, *(make_dataset(study=study, patient_id=patient_id, instance_number=i) for i in (1, 2)))
        follower = _follow(proxy.url, server.root, tmp_path / "cast.json")
        try:
            wait_for(lambda: proxy.refused >= 3, what="the sync to meet the 503s")
            time.sleep(1)
            assert not imaging_studies(fhir, study)
            proxy.failing = False
            found = wait_for(lambda: imaging_studies(fhir, study), what="the sync to recover")
            assert found[0]["numberOfInstances"] == 2 and len(found) == 1
        finally:
            follower.terminate()
            follower.wait(timeout=10)
    finally:
        proxy.stop()
        server.stop()


def test_invalid_birth_date_is_recorded_and_skipped(tmp_path: Path, fhir: FhirServer, patient_id: str) -> None:
    server = ServerProcess(tmp_path / "data")
    state = tmp_path / "cast.json"
    try:
        before, bad, after = generate_uid(), generate_uid(), generate_uid()
        invalid = make_dataset(study=bad, patient_id=patient_id)
        invalid.PatientBirthDate = "19700231"
        _stow(server.root, make_dataset(study=before, patient_id=patient_id), invalid,
              make_dataset(study=after, patient_id=patient_id))
        run = _cast_once(fhir.base_url, server.root, state)
        assert run.returncode == 0, run.stderr
        assert imaging_studies(fhir, before) and imaging_studies(fhir, after) and not imaging_studies(fhir, bad)

        listing = _cli(*_command(fhir.base_url, server.root, state, "failures")[3:])
        assert listing.returncode == 1
        [failure] = [json.loads(line) for line in listing.stdout.splitlines()]
        assert failure["studyInstanceUid"] == bad and failure["sequence"] == 2
        assert "PatientBirthDate" in failure["reason"] and "19700231" not in failure["reason"]
        retried = _cli(*_command(fhir.base_url, server.root, state, "failures", "--retry")[3:])
        assert retried.returncode == 1 and bad in retried.stdout, "still invalid: still recorded"

        # A server that is no FHIR server (here the DICOMweb server itself) is named as such.
        unsuitable = _cast_once(server.root, server.root, tmp_path / "other.json")
        assert unsuitable.returncode == 2 and "GET /metadata" in unsuitable.stderr
    finally:
        server.stop()


def test_two_archives_one_patient(tmp_path: Path, fhir: FhirServer, patient_id: str) -> None:
    system = "urn:oid:2.25.777"
    first, second = ServerProcess(tmp_path / "a"), ServerProcess(tmp_path / "b")
    try:
        study_a, study_b = generate_uid(), generate_uid()
        _stow(first.root, make_dataset(study=study_a, patient_id=patient_id))
        _stow(second.root, make_dataset(study=study_b, patient_id=patient_id, patient_name="DOE^JANE^Q^DR^III"))
        for server, state in ((first, tmp_path / "a.json"), (second, tmp_path / "b.json")):
            run = _cast_once(fhir.base_url, server.root, state, "--patient-system", system)
            assert run.returncode == 0, run.stderr
        [patient] = patients(fhir, patient_id, system)
        assert patient["identifier"] == [{"system": system, "value": patient_id}]
        assert patient["name"] == [{"use": "official", "family": "DOE", "given": ["JANE", "Q"], "prefix": ["DR"],
                                    "suffix": ["III"]}], "the newer demographics win (If-Match update)"
        assert patient["meta"]["versionId"] == "2"
        [a], [b] = imaging_studies(fhir, study_a), imaging_studies(fhir, study_b)
        assert a["subject"] == b["subject"] == {"reference": f"Patient/{patient['id']}"}
        assert a["endpoint"] != b["endpoint"], "each archive is its own Endpoint"
    finally:
        first.stop()
        second.stop()


def test_an_unknown_action_resyncs_the_study(tmp_path: Path, fhir: FhirServer, patient_id: str) -> None:
    """The feed carries create and delete today; an entry with any other action (an update, as
    a later feed may carry) re-syncs its study instead of stopping the sync. Here a proxy in
    front of the server relabels every entry ``update``; the study was also edited in FHIR
    behind the sync's back, and the re-sync brings it back to the archive's state."""
    server = ServerProcess(tmp_path / "data")
    relabel = FlakyProxy(server.root, rewrite=lambda path, body: body.replace(b'"action":"create"',
                                                                              b'"action":"update"'))
    state = tmp_path / "cast.json"
    try:
        study = generate_uid()
        _stow(server.root, make_dataset(study=study, patient_id=patient_id))
        assert _cast_once(fhir.base_url, relabel.url, state).returncode == 0
        [imaging] = imaging_studies(fhir, study)
        edited = {**imaging, "description": "edited elsewhere"}
        assert httpx.put(f"{fhir.base_url}/ImagingStudy/{imaging['id']}", json=edited,
                         headers={"Content-Type": "application/fhir+json"}).status_code == 200

        _stow(server.root, make_dataset(study=study, patient_id=patient_id, instance_number=2))
        run = _cast_once(fhir.base_url, relabel.url, state)
        assert run.returncode == 0 and "1 changes" in run.stdout, run.stdout
        [imaging] = imaging_studies(fhir, study)
        assert (imaging["description"], imaging["numberOfInstances"]) == ("test study", 2)
        assert json.loads(state.read_text())["failures"] == []
    finally:
        relabel.stop()
        server.stop()
