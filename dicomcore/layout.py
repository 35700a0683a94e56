"""Where an instance's files live in the blob store.

An instance's folder name is a hash of its three UIDs: deterministic (a re-sent instance
lands on the same name, so the exclusive write detects it, and the blob event for a file
maps back to one index record) and free of patient data (PS3.15 treats UIDs as
identifying; a one-way hash of them is not).
"""

from __future__ import annotations

import hashlib

INCOMING_PREFIX = "incoming/"
"""The drop zone: files put here (bulk import, uploads too large for one request) are
parsed, validated and moved into the instance layout by the blob-created event."""
FAILED_PREFIX = "failed/"
"""Where a dropped file that cannot be imported is moved, with a note giving the reason."""


def instance_key(study_uid: str, series_uid: str, sop_uid: str) -> str:
    digest = hashlib.sha256(f"{study_uid}/{series_uid}/{sop_uid}".encode()).hexdigest()
    return digest[:40]


def _folder(key: str) -> str:
    return f"instances/{key[:2]}/{key}"


def file_name(key: str) -> str:
    """The instance file, byte for byte as received."""
    return f"{_folder(key)}/instance.dcm"


def metadata_name(key: str) -> str:
    """DICOM JSON of the instance, BulkDataURIs relative to the service root."""
    return f"{_folder(key)}/metadata.json"


def frames_name(key: str) -> str:
    """The frame index: where each frame's bytes are in the instance file."""
    return f"{_folder(key)}/frames.json"


def key_from_name(name: str) -> str | None:
    """The instance key of any blob in an instance folder, else ``None``."""
    parts = name.split("/")
    if len(parts) == 4 and parts[0] == "instances":
        return parts[2]
    return None


def key_of_instance_file(name: str) -> str | None:
    """The instance key when ``name`` is an instance file (not a sidecar), else ``None``."""
    key = key_from_name(name)
    return key if key is not None and name == file_name(key) else None
