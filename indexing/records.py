"""What the index holds for a stored instance, and the change-feed entries it commits.

These rules are the same on every store; the adapters (:mod:`indexing.sqlite`,
:mod:`indexing.cosmos`) only translate them to their storage.
"""

from __future__ import annotations

from typing import Any

from changefeed.port import Action, ChangeEntry
from dicomcore.clock import utc_now
from dicomcore.instance import ParsedInstance
from dicomcore.validation import InstanceUids
from indexing.port import InstanceRecord

TRANSFER_SYNTAX_TAG = "00020010"


def new_record(
    parsed: ParsedInstance, uids: InstanceUids, key: str, incarnation: str, attributes: dict[str, Any]
) -> InstanceRecord:
    """The record of a stored copy of an instance (``incarnation`` names this copy).

    Its attributes gain the File Meta values a search can return (Transfer Syntax UID:
    whole-slide clients ask for it), which the header's DICOM JSON leaves out.
    """
    return InstanceRecord(
        study_uid=uids.study,
        series_uid=uids.series,
        sop_uid=uids.sop,
        sop_class_uid=uids.sop_class,
        instance_key=key,
        incarnation=incarnation,
        transfer_syntax_uid=parsed.transfer_syntax_uid,
        number_of_frames=parsed.frames.number_of_frames,
        size=parsed.size,
        attributes={**attributes, TRANSFER_SYNTAX_TAG: {"vr": "UI", "Value": [parsed.transfer_syntax_uid]}},
        stored_at=utc_now(),
    )


def change_entry(record: InstanceRecord, action: Action) -> ChangeEntry:
    """The feed entry for ``action`` on this stored copy; its id makes appending it idempotent."""
    return ChangeEntry(
        entry_id=f"{record.instance_key}:{record.incarnation}:{action.value}",
        action=action,
        study_uid=record.study_uid,
        series_uid=record.series_uid,
        sop_uid=record.sop_uid,
        sop_class_uid=record.sop_class_uid,
        instance_key=record.instance_key,
        incarnation=record.incarnation,
    )
