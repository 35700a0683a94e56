"""A QIDO result as every index store builds it: the stored attributes of each level the
result spans, plus the computed attributes (PS3.18 §10.6.3.3). One place, so the SQLite
and Cosmos stores cannot answer differently."""

from __future__ import annotations

from typing import Any

from indexing.attributes import Level
from indexing.values import element_values

DicomJson = dict[str, Any]

INSTANCE_NUMBER_TAG = "00200013"

# Computed attributes (tag, VR). Instance Availability is ONLINE because every indexed
# instance is in the blob store, retrievable at once.
AVAILABILITY = ("00080056", "CS")
MODALITIES_IN_STUDY = ("00080061", "CS")
SOP_CLASSES_IN_STUDY = ("00080062", "UI")
STUDY_RELATED_SERIES = ("00201206", "IS")
STUDY_RELATED_INSTANCES = ("00201208", "IS")
SERIES_RELATED_INSTANCES = ("00201209", "IS")


def _element(vr: str, values: list[Any]) -> dict[str, Any]:
    return {"vr": vr, "Value": values} if values else {"vr": vr}


def compose_result(
    level: Level,
    study: DicomJson,
    study_counts: tuple[int, int],
    modalities: list[str],
    sop_classes: list[str],
    series: DicomJson | None = None,
    series_instances: int = 0,
    instance: DicomJson | None = None,
) -> DicomJson:
    """``study_counts`` is (related series, related instances)."""
    result: DicomJson = dict(study)
    result[AVAILABILITY[0]] = _element(AVAILABILITY[1], ["ONLINE"])
    result[MODALITIES_IN_STUDY[0]] = _element(MODALITIES_IN_STUDY[1], modalities)
    result[SOP_CLASSES_IN_STUDY[0]] = _element(SOP_CLASSES_IN_STUDY[1], sop_classes)
    result[STUDY_RELATED_SERIES[0]] = _element(STUDY_RELATED_SERIES[1], [study_counts[0]])
    result[STUDY_RELATED_INSTANCES[0]] = _element(STUDY_RELATED_INSTANCES[1], [study_counts[1]])
    if level is not Level.STUDY and series is not None:
        result.update(series)
        result[SERIES_RELATED_INSTANCES[0]] = _element(SERIES_RELATED_INSTANCES[1], [series_instances])
    if level is Level.INSTANCE and instance is not None:
        result.update(instance)
    return dict(sorted(result.items()))


def instance_number(dataset: DicomJson) -> int | None:
    """InstanceNumber as an integer, for ordering (None when absent or not a number)."""
    for value in element_values(dataset, (INSTANCE_NUMBER_TAG,)):
        try:
            return int(value)
        except (TypeError, ValueError):
            return None
    return None
