"""Turning stored instances into searchable index records, and the stores behind QIDO."""
