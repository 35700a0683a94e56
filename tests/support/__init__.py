"""Helpers shared by the tests and the benchmarks: server processes, free ports, the Azure
emulators, DICOM data builders and blob drops. ``bench/`` imports them as ``tests.support``."""
