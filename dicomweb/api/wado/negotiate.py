"""Choosing what to send from the Accept header (PS3.18 §8.7), with PS3.18's defaults
(§8.7.3: Explicit VR Little Endian when no transfer-syntax is named, lossy data excepted).

Entries are tried in the client's order of preference; the first one we can satisfy
wins. When none can be, the 406 message says why for each entry, so a client author can
see what to ask for instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.uid import UID

from dicomweb.http.accept import (
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
    PIXEL_MEDIA_TYPES,
    MediaRange,
    matches,
    parse_accept,
)
from dicomweb.http.errors import not_acceptable

DICOM = "application/dicom"
OCTET_STREAM = "application/octet-stream"
NATIVE_LITTLE_ENDIAN = {EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN}
ENCODABLE = {
    "image/jpeg": "1.2.840.10008.1.2.4.50",  # baseline, 8-bit (Pillow)
    "image/jp2": "1.2.840.10008.1.2.4.90",  # lossless JPEG 2000 (pylibjpeg-openjpeg)
}
"""Media types frames can be converted to, and the transfer syntax they are then in."""


@dataclass(frozen=True)
class Plan:
    """What to send: multipart or one part, the part media type, the transfer syntax.

    ``transfer_syntax`` is what the parts are labelled with; ``None`` means as stored (for
    frames), or, for instances, that the parts differ (each part header names its own).
    """

    multipart: bool
    media_type: str
    transfer_syntax: str | None


def is_compressed(transfer_syntax: str) -> bool:
    return UID(transfer_syntax).is_compressed


def can_decode(transfer_syntax: str) -> bool:
    """Can pydicom (with pylibjpeg) decode pixel data in this transfer syntax?"""
    from pydicom.pixels import get_decoder

    try:
        return get_decoder(UID(transfer_syntax)).is_available
    except NotImplementedError:
        return False


def _wanted_syntax(entry: MediaRange) -> str | None:
    syntax = entry.transfer_syntax
    return None if syntax in (None, "*") else syntax


# -- instances ------------------------------------------------------------------------

LOSSY = {
    "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51",  # JPEG baseline, extended
    "1.2.840.10008.1.2.4.81",  # JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.93",  # JPEG 2000 (lossy allowed)
    "1.2.840.10008.1.2.4.203",  # HTJ2K (lossy allowed)
    *(f"1.2.840.10008.1.2.4.{n}" for n in range(100, 109)),  # MPEG-2/4, HEVC video
}
"""Transfer syntaxes whose pixel data may be lossy: PS3.18 §8.7.3 lets the origin server
send these as stored where the default (Explicit VR Little Endian) applies, since
decompressing them would only inflate the same lossy pixels."""


def can_transcode_instance(stored: str, target: str) -> bool:
    """Only to Explicit VR Little Endian (decompressing when needed)."""
    if stored == target:
        return True
    if target != EXPLICIT_VR_LITTLE_ENDIAN:
        return False
    return not is_compressed(stored) or can_decode(stored)


def default_instance_syntax(stored: str) -> str:
    """What ``application/dicom`` without a transfer-syntax sends (PS3.18 §8.7.3, Table
    8.7.3-2: Explicit VR Little Endian), keeping lossy compressed data as stored."""
    return stored if stored in LOSSY else EXPLICIT_VR_LITTLE_ENDIAN


def _instance_targets(entry: MediaRange, stored: list[str]) -> list[str] | str:
    """The transfer syntax to send each instance in, or why this entry cannot be met."""
    if entry.part_type in ("*/*", "*") or entry.transfer_syntax == "*":
        return stored  # no DICOM media type or any syntax: the stored bytes
    wanted = entry.transfer_syntax
    targets = [wanted or default_instance_syntax(syntax) for syntax in stored]
    impossible = sorted({s for s, t in zip(stored, targets, strict=True) if not can_transcode_instance(s, t)})
    if impossible:
        return (f"cannot convert {', '.join(impossible)} to transfer-syntax "
                f"{wanted or EXPLICIT_VR_LITTLE_ENDIAN} (ask transfer-syntax=* for the stored bytes)")
    return targets


def negotiate_instances(accept: str | None, stored: list[str]) -> tuple[Plan, list[str]]:
    """``stored``: the transfer syntax of each instance to be sent. Returns the plan and the
    transfer syntax each instance is sent in."""
    reasons = []
    for entry in parse_accept(accept):
        if not matches(entry.part_type, DICOM):
            reasons.append(f"{entry.part_type!r} is not application/dicom")
            continue
        if not entry.multipart and entry.media_type != "*/*" and len(stored) != 1:
            reasons.append(f"single-part {DICOM} can carry one instance, not {len(stored)}")
            continue
        targets = _instance_targets(entry, stored)
        if isinstance(targets, str):
            reasons.append(targets)
            continue
        label = targets[0] if len(set(targets)) == 1 else None
        return Plan(multipart=entry.multipart or entry.media_type == "*/*", media_type=DICOM,
                    transfer_syntax=label), targets
    raise not_acceptable("no acceptable representation: " + "; ".join(reasons))


# -- frames ---------------------------------------------------------------------------


def natural_frame_type(stored: str) -> str:
    """The media type frames are in as stored: an image type if compressed."""
    return PIXEL_MEDIA_TYPES.get(stored, OCTET_STREAM) if is_compressed(stored) else OCTET_STREAM


def same_frame_bytes(source: str, target: str | None) -> bool:
    """Are frames in ``source`` already the bytes of ``target`` (``None``: as stored)? The
    two native little endian syntaxes differ in their dataset encoding, not their frames."""
    return target in (None, source) or (source in NATIVE_LITTLE_ENDIAN and target in NATIVE_LITTLE_ENDIAN)


def _native_plan(multipart: bool, stored: str, wanted: str) -> Plan | str:
    """Uncompressed little endian frames, decoded or swapped when stored otherwise."""
    if wanted not in NATIVE_LITTLE_ENDIAN:
        return f"{OCTET_STREAM} frames are uncompressed; frames stored as {stored} cannot be sent as {wanted}"
    if same_frame_bytes(stored, wanted) or not is_compressed(stored) or can_decode(stored):
        return Plan(multipart, OCTET_STREAM, wanted)
    return f"frames stored as {stored} cannot be decoded to {wanted}"


def _frame_plan(entry: MediaRange, stored: str) -> Plan | str:
    """A plan for this entry, or the reason it cannot be satisfied. ``stored`` is the
    frames' own syntax (see :func:`dicomcore.frames.frame_transfer_syntax`); a plan's
    ``transfer_syntax`` is what the frames are labelled, ``None`` meaning as stored."""
    natural = natural_frame_type(stored)
    wanted = _wanted_syntax(entry)
    part_type = entry.part_type
    any_syntax = entry.transfer_syntax == "*"
    if part_type in ("*/*", "*"):
        if wanted in (None, stored):
            return Plan(True, natural, None)  # any media type: the stored bytes
        return _native_plan(True, stored, wanted)
    if part_type == OCTET_STREAM:
        # PS3.18 §8.7.3, Table 8.7.3-4: application/octet-stream defaults to Explicit VR
        # Little Endian, so frames stored otherwise are decoded; transfer-syntax=* keeps them.
        if any_syntax or wanted == stored:
            return Plan(entry.multipart, OCTET_STREAM, None)
        return _native_plan(entry.multipart, stored, wanted or EXPLICIT_VR_LITTLE_ENDIAN)
    if matches(part_type, natural) and natural != OCTET_STREAM:
        if wanted is None or wanted == stored:
            return Plan(entry.multipart, natural, None)
        return f"frames are stored as {stored}, not {wanted}"
    if part_type in ENCODABLE and (not is_compressed(stored) or can_decode(stored)):
        target = ENCODABLE[part_type]
        if wanted in (None, target):
            return Plan(entry.multipart, part_type, target)
        return f"{part_type} frames are offered as {target}, not {wanted}"
    return f"frames are stored as {natural} ({stored}); converting them to {part_type} is not supported"


def negotiate_frames(accept: str | None, stored: str, frame_count: int) -> Plan:
    """The client's most preferred representation; among equally preferred ones, the
    stored bytes over a conversion (viewers list many types at q=1, and converting a tile
    costs far more than sending it)."""
    reasons: list[str] = []
    candidates: list[tuple[float, Plan]] = []
    for entry in parse_accept(accept):
        plan = _frame_plan(entry, stored)
        if isinstance(plan, str):
            reasons.append(plan)
        elif not plan.multipart and frame_count != 1 and entry.media_type != "*/*":
            reasons.append(f"single-part {entry.media_type} can carry one frame, not {frame_count}")
        else:
            multipart = plan.multipart or entry.media_type == "*/*"
            candidates.append((entry.q, Plan(multipart, plan.media_type, plan.transfer_syntax)))
    if not candidates:
        raise not_acceptable("no acceptable representation of the frames: " + "; ".join(reasons))
    best_q = max(q for q, _ in candidates)
    preferred = [plan for q, plan in candidates if q == best_q]
    return next((plan for plan in preferred if same_frame_bytes(stored, plan.transfer_syntax)), preferred[0])
