"""Benchmark harness: our DICOMweb server against Orthanc + its DICOMweb plugin.

Run ``python -m bench --help``; bench/README.md explains the workloads.
"""
