"""DICOMcast: keep a FHIR R4 server's Patient, Endpoint and ImagingStudy in step with the archive.

The sync follows the change feed; for each study named by new entries it reads what the
archive holds now and brings FHIR to that state in one transaction Bundle (docs/dicomcast.md).

- :mod:`.ports`: what the sync needs (a FHIR client, the feed, the study's metadata, its state)
- :mod:`.snapshot`: a study's DICOM JSON → the values the mapping uses
- :mod:`.mapping`: those values → ``fhir.resources`` R4 models
- :mod:`.dose`: radiation dose SR instances → Observations (optional)
- :mod:`.bundle`: the transaction that turns FHIR's current state into the wanted one
- :mod:`.sync`: one study, with retries; a catch-up of the feed; the recorded failures
- :mod:`.state`: the position and the failures, in a JSON file or a blob
- :mod:`.archive`: the in-process feed and study reader (ports of this server)
"""
