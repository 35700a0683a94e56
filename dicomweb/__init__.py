"""A DICOMweb server (DICOM PS3.18): STOW-RS, QIDO-RS, WADO-RS and a change feed."""

__version__ = "0.1.0"
