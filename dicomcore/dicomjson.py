"""DICOM JSON (PS3.18 F.2) of a stored instance's header, with bulk data as URIs.

Bulk data elements are named by a *tag path*, which the caller turns into a BulkDataURI and
the bulk data endpoint turns back into the element (:func:`element_at_path`):

* a top-level element: its tag as 8 upper-case hex digits, ``"00282000"``;
* an element inside a sequence item: the sequence's tag, the item's index counted from 0,
  and the element's tag, joined by ``/``: ``"00540016/0/00181072"``; deeper nesting repeats
  the pattern, ``"00400275/1/0040A043/0/00080100"``.

Paths hold only tags and indexes, never values, so they are safe to put in URLs.

Elements still in their raw form go through :mod:`dicomcore.rawjson` (bytes to JSON in one
step, for the common VRs); the rest, and whatever it declines, through pydicom
(``Dataset[tag]`` and ``DataElement.to_json_dict``), which gives the same JSON at ~5× the CPU.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from pydicom import Dataset
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.tag import BaseTag

from dicomcore import rawjson
from dicomcore.frames import FrameIndex

_log = logging.getLogger(__name__)
_BINARY_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}
_TAG = re.compile(r"[0-9A-Fa-f]{8}")
_INDEX = re.compile(r"0|[1-9][0-9]*")
_PIXEL_DATA_VRS = {0x7FE00008: "OF", 0x7FE00009: "OD"}


def to_dicom_json(
    dataset: Dataset,
    bulkdata_uri: Callable[[str], str],
    threshold: int = 1024,
    pixel_data: FrameIndex | None = None,
) -> dict[str, Any]:
    """The DICOM JSON object of ``dataset``, File Meta Information (group 0002) left out.

    Parameters
    ----------
    dataset
        The instance header, as :func:`dicomcore.instance.read_instance` returns it.
    bulkdata_uri
        Makes the BulkDataURI of the element at a tag path (see the module docstring).
    threshold
        Binary values (VR OB, OD, OF, OL, OV, OW, UN) longer than this many bytes become a
        BulkDataURI; shorter ones are inlined as base64 ``InlineBinary``.
    pixel_data
        The instance's frame index. When it has pixel data, the pixel data element (which the
        header lacks) is added as a BulkDataURI at path ``"7FE00010"`` (or ``"7FE00008"`` /
        ``"7FE00009"`` for Float / Double Float Pixel Data); the caller serves that path from
        the file, not through :func:`element_at_path`.
    """
    result = _dataset_json(dataset, "", bulkdata_uri, threshold, top_level=True)
    if pixel_data is not None and pixel_data.pixel_data_tag is not None and pixel_data.number_of_frames > 0:
        key = f"{pixel_data.pixel_data_tag:08X}"
        vr = _pixel_data_vr(pixel_data, dataset)
        result[key] = {"vr": vr, "BulkDataURI": bulkdata_uri(key)}
    return dict(sorted(result.items()))


def _pixel_data_vr(pixel_data: FrameIndex, dataset: Dataset) -> str:
    tag = pixel_data.pixel_data_tag
    if tag in _PIXEL_DATA_VRS:
        return _PIXEL_DATA_VRS[tag]
    if pixel_data.encapsulated:
        return "OB"
    # PS3.5 §8.2: native Pixel Data of more than 8 bits a sample is OW (as implicit VR writes it).
    bits_allocated = dataset.get("BitsAllocated")
    return "OW" if isinstance(bits_allocated, int) and bits_allocated > 8 else "OB"


def _dataset_json(
    dataset: Dataset, prefix: str, bulkdata_uri: Callable[[str], str], threshold: int, top_level: bool
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    elements = dataset._dict  # read without converting: see dicomcore.rawjson
    fast = rawjson.pydicom_defaults()
    codec = rawjson.text_codec(dataset.original_character_set or dataset._character_set) if fast else None
    for tag, element in sorted(elements.items(), key=_tag_number):
        if top_level and tag >> 16 == 0x0002:
            continue
        key = _key(int(tag))
        if fast:
            if isinstance(element, RawDataElement):
                document = _raw_json(element, prefix + key, bulkdata_uri, threshold, codec)
            else:
                document = rawjson.converted_json(element)
            if document is not None:
                result[key] = document
                continue
        path = prefix + key
        try:
            converted = dataset[tag]  # converts the raw value and resolves an ambiguous VR
            result[key] = _element_json(converted, path, bulkdata_uri, threshold)
        except (ValueError, TypeError, OverflowError) as exc:
            # A value the JSON model cannot hold (e.g. IS "1A"): leave the element out rather
            # than fail the whole instance's metadata, as pydicom's suppress_invalid_tags does.
            # The exception's text quotes the value (patient data): its type says enough.
            _log.warning("left %s out of DICOM JSON: invalid value (%s)", path, type(exc).__name__)
    return result


def _raw_json(
    raw: RawDataElement,
    path: str,
    bulkdata_uri: Callable[[str], str],
    threshold: int,
    codec: str | None,
) -> dict[str, Any] | None:
    """The element's JSON straight from its bytes, or ``None`` for pydicom's path."""
    vr = rawjson.raw_vr(raw)
    if vr is None:
        return None
    if vr in rawjson.BINARY_VRS:
        value = raw.value
        if value is None:
            return None  # a deferred read
        if len(value) > threshold:
            return {"vr": vr, "BulkDataURI": bulkdata_uri(path)}
        return rawjson.binary_json(vr, value)
    return rawjson.element_json(vr, raw, codec)


def _tag_number(item: tuple[BaseTag, object]) -> int:
    # Sorting BaseTags themselves calls their Python __lt__ for every comparison.
    return int(item[0])


_KEYS: dict[int, str] = {}
_MAX_KEYS = 20_000  # private tags make the set open-ended: stop caching past this many


def _key(tag: int) -> str:
    """``"0020000D"`` for a tag number (a plain int: a BaseTag key would compare through its
    Python ``__eq__``); formatting it costs more than the look-up."""
    key = _KEYS.get(tag)
    if key is None:
        key = f"{tag:08X}"
        if len(_KEYS) < _MAX_KEYS:
            _KEYS[tag] = key
    return key


def _element_json(
    element: DataElement, path: str, bulkdata_uri: Callable[[str], str], threshold: int
) -> dict[str, Any]:
    if element.VR == "SQ":
        # Items are converted here, not by pydicom, so that each nested element knows its path.
        items = [
            _dataset_json(item, f"{path}/{i}/", bulkdata_uri, threshold, top_level=False)
            for i, item in enumerate(element.value)
        ]
        return {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}
    if _is_bulk(element, threshold):
        return {"vr": element.VR, "BulkDataURI": bulkdata_uri(path)}
    # Everything else, including short binary values (InlineBinary), as pydicom writes it.
    return element.to_json_dict(bulk_data_element_handler=None, bulk_data_threshold=threshold)


def _is_bulk(element: DataElement, threshold: int) -> bool:
    # pydicom's own threshold counts base64 characters; ours counts value bytes, so decide here.
    value = element.value
    return element.VR in _BINARY_VRS and isinstance(value, bytes | bytearray) and len(value) > threshold


def element_at_path(dataset: Dataset, path: str) -> DataElement:
    """The element at a tag path made by :func:`to_dicom_json`.

    Raises
    ------
    KeyError
        The path is malformed or names no element of ``dataset``.
    """
    parts = path.split("/")
    if len(parts) % 2 == 0:
        raise KeyError(path)
    current = dataset
    for tag_text, index_text in zip(parts[:-1:2], parts[1::2], strict=True):
        sequence = _element(current, tag_text, path)
        if sequence.VR != "SQ" or not _INDEX.fullmatch(index_text):
            raise KeyError(path)
        index = int(index_text)
        if index >= len(sequence.value):
            raise KeyError(path)
        current = sequence.value[index]
    return _element(current, parts[-1], path)


def _element(dataset: Dataset, tag_text: str, path: str) -> DataElement:
    if not _TAG.fullmatch(tag_text):
        raise KeyError(path)
    tag = BaseTag(int(tag_text, 16))
    if tag not in dataset:
        raise KeyError(path)
    return dataset[tag]


def without_bulk_data(element: dict[str, Any]) -> dict[str, Any] | None:
    """A DICOM JSON element with bulk data left out (``None`` if it is bulk data itself);
    sequence items are cleaned the same way. Search results carry no bulk data."""
    if "BulkDataURI" in element or "InlineBinary" in element:
        return None
    if element.get("vr") != "SQ" or not element.get("Value"):
        return element
    items = [{tag: kept for tag, value in item.items() if (kept := without_bulk_data(value)) is not None}
             for item in element["Value"]]
    return {**element, "Value": items}
