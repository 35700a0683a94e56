"""Adapters for DICOMcast (dicomweb.usecases.cast): a FHIR server over HTTP, and a remote archive."""
