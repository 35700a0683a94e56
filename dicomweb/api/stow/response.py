"""The STOW-RS response dataset (PS3.18 §10.5.3, Table 10.5.3-1) as DICOM JSON."""

from __future__ import annotations

from typing import Any

from dicomweb.http.urls import instance_url
from dicomweb.usecases.store_instance import Outcome


def _ui(value: str) -> dict[str, Any]:
    return {"vr": "UI", "Value": [value]}


def _referenced(outcome: Outcome, root: str) -> dict[str, Any]:
    item: dict[str, Any] = {
        "00081150": _ui(outcome.sop_class_uid or ""),
        "00081155": _ui(outcome.sop_uid or ""),
        "00081190": {"vr": "UR", "Value": [
            instance_url(root, outcome.study_uid or "", outcome.series_uid or "", outcome.sop_uid or "")]},
    }
    if outcome.warning:
        # The caveat in words (ErrorComment); PS3.18 has no WarningReason code for it.
        item["00000902"] = {"vr": "LO", "Value": [outcome.warning]}
    return item


def _failed(outcome: Outcome) -> dict[str, Any]:
    item: dict[str, Any] = {}
    if outcome.sop_class_uid:
        item["00081150"] = _ui(outcome.sop_class_uid)
    if outcome.sop_uid:
        item["00081155"] = _ui(outcome.sop_uid)
    item["00081197"] = {"vr": "US", "Value": [int(outcome.failure or 0)]}
    if outcome.message:
        # ErrorComment (0000,0902): why, in words, so the sender can fix the file.
        item["00000902"] = {"vr": "LO", "Value": [outcome.message]}
    return item


def warning_headers(outcomes: list[Outcome]) -> dict[str, str]:
    """An HTTP Warning (RFC 7234 §5.5, code 299) naming each instance stored with a caveat."""
    texts = [f"{o.sop_uid}: {o.warning}".replace('"', "'") for o in outcomes if o.stored and o.warning]
    return {"Warning": ", ".join(f'299 dicomweb "{text}"' for text in texts)} if texts else {}


def stow_response(outcomes: list[Outcome], root: str, retrieve_url: str | None) -> tuple[int, dict[str, Any]]:
    """Status code and body for the outcomes of one request: 200 all stored, 202 some
    failed or stored with warnings, 409 all failed (507 when a store was full)."""
    stored = [o for o in outcomes if o.stored]
    failed = [o for o in outcomes if not o.stored]
    body: dict[str, Any] = {}
    if retrieve_url:
        body["00081190"] = {"vr": "UR", "Value": [retrieve_url]}
    if stored:
        body["00081199"] = {"vr": "SQ", "Value": [_referenced(o, root) for o in stored]}
    if failed:
        body["00081198"] = {"vr": "SQ", "Value": [_failed(o) for o in failed]}
    warned = any(o.warning for o in stored)
    status = 409 if not stored else 202 if failed or warned else 200
    if not stored and any(o.out_of_space for o in failed):
        status = 507  # Insufficient Storage (RFC 4918): the retry after space is freed succeeds
    return status, body
