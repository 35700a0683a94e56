"""Decoding one frame to pixels, and encoding pixels as an image, through pydicom and Pillow.

WADO serves stored bytes whenever it can; these are for the cases it cannot: rendered
images and thumbnails, and frames asked for in a media type they are not stored in.
A frame is decoded alone (its bytes come from the frame index), with the image-pixel
attributes taken from the stored metadata, so no request reads or decodes a whole file.
"""

from __future__ import annotations

import threading
from io import BytesIO
from typing import Any

import numpy as np
from PIL import Image
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import pack_bits
from pydicom.uid import UID

_OPENJPEG_ENCODER = threading.Lock()

# Image Pixel module attributes (PS3.3 C.7.6.3) and rescale/window values a frame needs.
PIXEL_ATTRIBUTES = {
    "00280002": "SamplesPerPixel",
    "00280004": "PhotometricInterpretation",
    "00280006": "PlanarConfiguration",
    "00280010": "Rows",
    "00280011": "Columns",
    "00280100": "BitsAllocated",
    "00280101": "BitsStored",
    "00280102": "HighBit",
    "00280103": "PixelRepresentation",
    "00281050": "WindowCenter",
    "00281051": "WindowWidth",
    "00281052": "RescaleIntercept",
    "00281053": "RescaleSlope",
}


def _value(attributes: dict[str, Any], tag: str) -> Any:
    values = attributes.get(tag, {}).get("Value")
    if not values:
        return None
    return values if len(values) > 1 else values[0]


def frame_dataset(attributes: dict[str, Any], transfer_syntax: str, frame: bytes) -> Dataset:
    """A one-frame dataset pydicom can decode: the instance's pixel attributes and ``frame``."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(transfer_syntax)
    for tag, keyword in PIXEL_ATTRIBUTES.items():
        value = _value(attributes, tag)
        if value is not None:
            setattr(ds, keyword, value)
    ds.NumberOfFrames = 1
    ds.PixelData = encapsulate([frame]) if UID(transfer_syntax).is_compressed else frame
    ds["PixelData"].is_undefined_length = UID(transfer_syntax).is_compressed
    ds["PixelData"].VR = "OB" if UID(transfer_syntax).is_compressed or ds.get("BitsAllocated", 8) <= 8 else "OW"
    return ds


def decode_frame(attributes: dict[str, Any], transfer_syntax: str, frame: bytes) -> np.ndarray:
    """Pixels of one stored frame (colour as RGB)."""
    return frame_dataset(attributes, transfer_syntax, frame).pixel_array


def native_bytes(pixels: np.ndarray, attributes: dict[str, Any]) -> bytes:
    """Decoded pixels as a native Explicit VR Little Endian frame: little-endian words,
    colour planes in the stored Planar Configuration, 1-bit pixels packed again."""
    if int(_value(attributes, "00280100") or 8) == 1:
        return pack_bits(pixels.ravel())
    if pixels.ndim == 3 and int(_value(attributes, "00280006") or 0) == 1:
        pixels = np.moveaxis(pixels, -1, 0)  # colour-by-plane, as the metadata says
    little = pixels.dtype.newbyteorder("<")
    return np.ascontiguousarray(pixels, dtype=little).tobytes()


def to_display(pixels: np.ndarray, attributes: dict[str, Any], window: tuple[float, float] | None = None
               ) -> np.ndarray:
    """8-bit pixels for display: rescale, then the VOI window (asked for, stored, or the
    pixel range), MONOCHROME1 inverted. Colour images pass through (scaled to 8 bits)."""
    photometric = str(_value(attributes, "00280004") or "MONOCHROME2")
    if pixels.ndim == 3 and pixels.shape[-1] in (3, 4):
        if pixels.dtype != np.uint8:
            top = float(pixels.max()) or 1.0
            pixels = (pixels.astype(np.float64) * (255.0 / top)).astype(np.uint8)
        return pixels[..., :3]
    values = pixels.astype(np.float64)
    slope = float(_first(_value(attributes, "00281053")) or 1.0)
    intercept = float(_first(_value(attributes, "00281052")) or 0.0)
    values = values * slope + intercept
    if window is None:
        center, width = _first(_value(attributes, "00281050")), _first(_value(attributes, "00281051"))
        if center is not None and width is not None and float(width) > 0:
            window = (float(center), float(width))
    if window is not None:
        low = window[0] - window[1] / 2
        values = np.clip((values - low) / max(window[1], 1e-6), 0.0, 1.0) * 255.0
    else:
        low, high = float(values.min()), float(values.max())
        values = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    display = values.astype(np.uint8)
    return 255 - display if photometric == "MONOCHROME1" else display


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) else value


def encode_image(display: np.ndarray, media_type: str, *, quality: int = 90,
                 viewport: tuple[int, int] | None = None) -> bytes:
    """JPEG, PNG or GIF bytes of 8-bit pixels, scaled to fit ``viewport`` (width, height)."""
    image = Image.fromarray(display)
    if viewport is not None:
        image.thumbnail(viewport, Image.Resampling.LANCZOS)
    out = BytesIO()
    if media_type == "image/png":
        image.save(out, format="PNG")
    elif media_type == "image/gif":
        image.save(out, format="GIF")
    else:
        image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def encode_frame(pixels: np.ndarray, media_type: str) -> bytes:
    """A frame's pixels in a compressed image media type (for frame transcoding).

    ``image/jpeg`` is baseline (lossy, 8-bit only) through Pillow; ``image/jp2`` is
    lossless JPEG 2000 through pylibjpeg-openjpeg.
    """
    if media_type == "image/jp2":
        import openjpeg

        colour = 1 if pixels.ndim == 3 else 0  # openjpeg's sRGB / greyscale
        # pylibjpeg-openjpeg's encoder is not thread-safe: concurrent calls crash the process.
        with _OPENJPEG_ENCODER:
            return openjpeg.encode(np.ascontiguousarray(pixels), photometric_interpretation=colour,
                                   codec_format=0)  # 0: a raw J2K codestream, as DICOM encapsulates it
    if media_type == "image/jpeg":
        if pixels.dtype != np.uint8:
            raise ValueError("baseline JPEG holds 8-bit pixels only")
        out = BytesIO()
        # Colour stays RGB in the JPEG (no YCbCr conversion): the instance's metadata says
        # RGB, and clients trust it to decide whether to convert colours back.
        Image.fromarray(pixels).save(out, format="JPEG", quality=90, keep_rgb=pixels.ndim == 3)
        return out.getvalue()
    raise ValueError(f"cannot encode frames as {media_type}")
