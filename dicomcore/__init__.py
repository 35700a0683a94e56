"""The DICOM kernel: what every layer may use, with no I/O of its own and no business rules
about stores.

Reading stored DICOM Part 10 files cheaply (the header, where each frame lies, DICOM JSON),
pixel conversion, UID syntax, what an instance must carry to be stored, where its blobs are
named (no patient data in names), and the clock. Everything here is a pure function of its
inputs (files are read through a seekable binary reader), so the same code serves a local
file and a ranged-read wrapper around a cloud blob.
"""
