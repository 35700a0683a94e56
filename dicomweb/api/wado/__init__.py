"""WADO-RS (PS3.18 §10.4): instances, metadata, frames and bulk data."""
