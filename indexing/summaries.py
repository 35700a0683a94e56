"""Study and series summaries: the computed attributes every index store keeps.

Number of Study Related Series/Instances and Number of Series Related Instances count
what is indexed; Modalities in Study is the sorted set of its series' modalities;
SOP Classes in Study lists each class once, in order of arrival while instances are
added, and sorted once a removal makes the store recount it.
"""

from __future__ import annotations

from collections.abc import Iterable

MODALITIES_IN_STUDY_TAG = "00080061"
SOP_CLASSES_IN_STUDY_TAG = "00080062"


def modalities_in_study(modalities: Iterable[str | None]) -> list[str]:
    """From the modalities of the study's (non-empty) series."""
    return sorted({modality for modality in modalities if modality})


def with_sop_class(classes: list[str], sop_class_uid: str) -> list[str]:
    """SOP Classes in Study after an instance of ``sop_class_uid`` was added."""
    return classes if sop_class_uid in classes else [*classes, sop_class_uid]


def recounted_sop_classes(classes: Iterable[str]) -> list[str]:
    """SOP Classes in Study recounted from the instances left after a removal."""
    return sorted(set(classes))
