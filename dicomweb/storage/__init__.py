"""Blob stores: where instance files, their metadata and frame indexes live."""
