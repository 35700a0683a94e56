"""Reading stored DICOM Part 10 files cheaply: the header, where each frame lies, and DICOM JSON.

Everything here is a pure function of the file's bytes (read through a seekable binary
reader), so the same code serves a local file and a ranged-read wrapper around a cloud blob.
"""
