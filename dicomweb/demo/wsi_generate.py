"""Generate synthetic VL Whole Slide Microscopy Image pyramids (SOP Class 1.2.840.10008.5.1.4.1.1.77.1.6).

One DICOM Part 10 file is written per pyramid level (level 0 = full resolution, each further level half
the size), all in one series, TILED_FULL, with one fragment per frame.

The image is a procedural H&E-like "tissue" pattern: every pixel is a function of its position on the
slide, so any tile at any level can be rendered on its own. That is what lets multi-GB levels be
streamed to disk tile by tile with a small, constant memory footprint, and lets tiles be rendered in
parallel worker processes.

Usage::

    python -m dicomweb.demo.wsi_generate OUT_DIR --width 16384 --height 16384 --tile 256 --levels 4 --codec jpeg
    python -m dicomweb.demo.wsi_generate OUT_DIR --target-gb 2 --levels 6 --codec jpeg
"""

from __future__ import annotations

import argparse
import io
import math
import os
import struct
import sys
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms
from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    JPEG2000,
    UID,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    generate_uid,
)

__all__ = [
    "CODECS",
    "TissueModel",
    "encode_tile",
    "generate_pyramid",
    "level_shape",
    "main",
    "render_tile",
    "size_for_target",
]

WSI_SOP_CLASS_UID = UID("1.2.840.10008.5.1.4.1.1.77.1.6")

# 0.25 um/pixel is a typical "40x" scan; everything physical (nucleus size etc.) is expressed in
# level-0 pixels, so this only feeds the DICOM spacing attributes.
BASE_PIXEL_SPACING_MM = 0.00025
SLICE_THICKNESS_MM = 0.004  # a usual section thickness (4 um)

# Offsets in a Basic Offset Table are 32-bit; beyond this an Extended Offset Table is mandatory.
_BOT_MAX_OFFSET = 0xFFFFFFFF
# A defined-length native Pixel Data element must fit a 32-bit length (0xFFFFFFFF means "undefined").
_NATIVE_MAX_LENGTH = 0xFFFFFFFE

_ITEM_TAG = b"\xfe\xff\x00\xe0"
_SEQ_DELIM = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
_PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"


# --------------------------------------------------------------------------------------------------
# Codecs
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CodecSpec:
    """How tiles are encoded and what that implies for the DICOM header."""

    name: str
    transfer_syntax: UID
    photometric: str
    lossy: bool
    method: str | None  # Lossy Image Compression Method (0028,2114)

    @property
    def encapsulated(self) -> bool:
        return self.transfer_syntax != ExplicitVRLittleEndian


CODECS: dict[str, CodecSpec] = {
    # Pillow/libjpeg-turbo writes JFIF (full-range YCbCr); subsampling=1 is 4:2:2 -> YBR_FULL_422.
    "jpeg": CodecSpec("jpeg", JPEGBaseline8Bit, "YBR_FULL_422", True, "ISO_10918_1"),
    # Irreversible wavelet + irreversible colour transform -> YBR_ICT (PS3.5 8.2.4).
    "jpeg2000": CodecSpec("jpeg2000", JPEG2000, "YBR_ICT", True, "ISO_15444_1"),
    # Reversible wavelet without a colour transform keeps the components as RGB.
    "jpeg2000-lossless": CodecSpec("jpeg2000-lossless", JPEG2000Lossless, "RGB", False, None),
    "native": CodecSpec("native", ExplicitVRLittleEndian, "RGB", False, None),
}


def encode_tile(rgb: np.ndarray, codec: str, quality: int = 90, j2k_rate: float = 15.0) -> bytes:
    """Encode one (tile, tile, 3) uint8 RGB tile for ``codec`` (raw bytes for ``native``)."""
    if codec == "native":
        return rgb.tobytes()
    img = Image.fromarray(rgb, "RGB")
    buf = io.BytesIO()
    if codec == "jpeg":
        img.save(buf, format="JPEG", quality=quality, subsampling=1)
    elif codec == "jpeg2000":
        # no_jp2: DICOM wants the bare codestream, not the JP2 box wrapper.
        img.save(
            buf,
            format="JPEG2000",
            no_jp2=True,
            irreversible=True,
            mct=1,
            quality_mode="rates",
            quality_layers=[j2k_rate],
        )
    elif codec == "jpeg2000-lossless":
        img.save(buf, format="JPEG2000", no_jp2=True, irreversible=False, mct=0)
    else:
        raise ValueError(f"unknown codec {codec!r}; expected one of {sorted(CODECS)}")
    return buf.getvalue()


# --------------------------------------------------------------------------------------------------
# Procedural tissue
# --------------------------------------------------------------------------------------------------

_LN10 = math.log(10.0)
# Stain optical-density vectors (log10 units, scaled by ln 10 for np.exp). Hematoxylin follows Ruifrok &
# Johnston; the eosin vector absorbs a little more blue than theirs so the stroma reads pink rather than
# magenta on screen.
_H_OD = tuple(float(v) * _LN10 for v in (0.650, 0.704, 0.286))
_E_OD = tuple(float(v) * _LN10 for v in (0.090, 0.850, 0.380))
_BACKGROUND = np.array([243.0, 240.0, 246.0], dtype=np.float32)  # bright-field glass, slightly cool
_BACKGROUND_U8 = np.round(_BACKGROUND).astype(np.uint8)

# Nuclei: one candidate per CELL x CELL level-0 pixel cell, placed/sized by a hash of the cell index.
_CELL = 32
_SIGMA1 = (3.0, 2.5)  # major-axis std dev: 3.0 + 2.5 * u  (level-0 px)
_ELONGATION = (0.55, 0.45)  # minor/major ratio: 0.55 + 0.45 * u
_AMPLITUDE = (0.8, 0.7)  # hematoxylin optical density at the centre: 0.8 + 0.7 * u
_PRESENCE = 0.9  # max probability that a cell holds a nucleus (times tissue x density)
_SIGMA_MAX = _SIGMA1[0] + _SIGMA1[1]
# Past this downsampling factor a pixel covers about a cell, so individual nuclei are replaced by their
# expected (mean) density; rendering them would cost ~(s / CELL)^2 nuclei per pixel for no visible gain.
_MAX_NUCLEI_SCALE = 16
# E[a * 2*pi * sigma1 * sigma2] for independent uniforms -> mean optical density per unit area.
_E_SIGMA1_SQ = _SIGMA1[0] ** 2 + _SIGMA1[0] * _SIGMA1[1] + _SIGMA1[1] ** 2 / 3.0
_MEAN_NUCLEUS_MASS = (
    (_AMPLITUDE[0] + _AMPLITUDE[1] / 2) * 2.0 * math.pi * _E_SIGMA1_SQ * (_ELONGATION[0] + _ELONGATION[1] / 2)
)

_NOISE_SIZE = 1024  # period of the grain texture table (level-0 pixels); invisible at this size
_NOISE_GAIN = 0.2


def _smoothstep(lo: float, hi: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - lo) * (1.0 / (hi - lo)), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _fmix64(h: np.ndarray) -> np.ndarray:
    # MurmurHash3 finaliser: cheap, vectorisable, and good enough to decorrelate neighbouring cells.
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return h


def _cell_uniforms(seed: int, cx: np.ndarray, cy: np.ndarray, count: int) -> np.ndarray:
    """``count`` uniforms in [0, 1) per cell, a pure function of (seed, cx, cy)."""
    ux = cx.astype(np.int64).view(np.uint64)
    uy = cy.astype(np.int64).view(np.uint64)
    base = ux * np.uint64(0x9E3779B97F4A7C15) ^ uy * np.uint64(0xC2B2AE3D27D4EB4F)
    base ^= np.uint64((seed * 0x165667B19E3779F9 + 0x27D4EB2F) & 0xFFFFFFFFFFFFFFFF)
    out = np.empty((count, cx.size), dtype=np.float64)
    for k in range(count):
        h = _fmix64(base + np.uint64((k + 1) * 0x632BE59BD9B4E019 & 0xFFFFFFFFFFFFFFFF))
        out[k] = (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
    return out


def _stack(factors: list[np.ndarray]) -> np.ndarray:
    return np.stack(factors).astype(np.float32)


def _low_rank(fy: np.ndarray, fx: np.ndarray) -> np.ndarray:
    """sum_k outer(fy[k], fx[k]) for (K, rows) and (K, cols) factor stacks.

    Deliberately einsum rather than matmul: matmul goes to multi-threaded OpenBLAS, whose spinning
    threads made tile rendering ~5x slower overall (and worse with several worker processes).
    """
    return np.einsum("ki,kj->ij", fy, fx)


@lru_cache(maxsize=4)
def _noise_table(seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 0x5EED])
    return np.clip(rng.standard_normal((_NOISE_SIZE, _NOISE_SIZE), dtype=np.float32), -2.5, 2.5)


@dataclass(frozen=True)
class TissueModel:
    """Parameters of the synthetic slide; all lengths are level-0 pixels.

    Most fields are sums of separable terms f(x) * g(y), so a tile's field is one small matrix product
    of per-column and per-row factors instead of a per-pixel evaluation of every term.
    """

    width: int
    height: int
    seed: int
    blobs: tuple[tuple[float, float, float, float], ...]  # cx, cy, radius, weight (tissue outline)
    warps: tuple[tuple[float, float, float, float, float], ...]  # amp, kx, phase x, ky, phase y
    fibers: tuple[tuple[float, ...], ...]  # amp, wavelength, angle, warp amp/k/phase for x and y
    density: tuple[tuple[float, float, float, float, float], ...]  # amp, kx, phase x, ky, phase y

    @classmethod
    def from_seed(cls, width: int, height: int, seed: int = 0) -> TissueModel:
        rng = np.random.default_rng([seed, 0x7155])
        short = float(min(width, height))
        blobs: list[tuple[float, float, float, float]] = []
        for _ in range(7):  # tissue fragments
            blobs.append(
                (
                    float(rng.uniform(0.25, 0.75) * width),
                    float(rng.uniform(0.25, 0.75) * height),
                    float(rng.uniform(0.08, 0.17) * short),
                    float(rng.uniform(0.7, 1.0)),
                )
            )
        for _ in range(14):  # lumens / tears: small negative blobs carve holes into the tissue
            blobs.append(
                (
                    float(rng.uniform(0.15, 0.85) * width),
                    float(rng.uniform(0.15, 0.85) * height),
                    float(rng.uniform(0.008, 0.03) * short),
                    float(-rng.uniform(0.5, 0.9)),
                )
            )
        warps = tuple(
            (
                float(rng.uniform(0.12, 0.25)),
                float(2 * math.pi / (rng.uniform(0.08, 0.3) * short)),
                float(rng.uniform(0, 2 * math.pi)),
                float(2 * math.pi / (rng.uniform(0.08, 0.3) * short)),
                float(rng.uniform(0, 2 * math.pi)),
            )
            for _ in range(4)
        )
        fibers = []
        for amp, lam in ((0.10, rng.uniform(40, 70)), (0.08, rng.uniform(110, 180)), (0.07, 900.0)):
            fibers.append(
                (
                    amp,
                    float(lam),
                    float(rng.uniform(0, math.pi)),
                    float(rng.uniform(1.5, 4.0)),
                    float(2 * math.pi / rng.uniform(600, 1600)),
                    float(rng.uniform(0, 2 * math.pi)),
                    float(rng.uniform(1.5, 4.0)),
                    float(2 * math.pi / rng.uniform(600, 1600)),
                    float(rng.uniform(0, 2 * math.pi)),
                )
            )
        density = tuple(
            (
                float(rng.uniform(0.12, 0.22)),
                float(2 * math.pi / rng.uniform(1500, 5000)),
                float(rng.uniform(0, 2 * math.pi)),
                float(2 * math.pi / rng.uniform(1500, 5000)),
                float(rng.uniform(0, 2 * math.pi)),
            )
            for _ in range(3)
        )
        return cls(width, height, seed, tuple(blobs), warps, tuple(fibers), density)

    # -- separable factors: field(Y, X) = fy(Y) @ fx(X).T -----------------------------------------

    def _tissue_factors(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        fx = []
        fy = []
        for cx, cy, r, w in self.blobs:
            k = -0.5 / (r * r)
            fx.append(w * np.exp(k * (x - cx) ** 2))
            fy.append(np.exp(k * (y - cy) ** 2))
        for amp, kx, px, ky, py in self.warps:
            fx.append(amp * np.sin(kx * x + px))
            fy.append(np.sin(ky * y + py))
        return _stack(fy), _stack(fx)

    def _border(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Fade tissue out near the slide edge so the outermost tiles look like empty glass.
        mx, my = 0.04 * self.width, 0.04 * self.height
        bx = _smoothstep(0.0, mx, x) * _smoothstep(0.0, mx, self.width - x)
        by = _smoothstep(0.0, my, y) * _smoothstep(0.0, my, self.height - y)
        return bx, by

    def _density_factors(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        fx = [np.full_like(x, 0.55)]
        fy = [np.ones_like(y)]
        for amp, kx, px, ky, py in self.density:
            fx.append(amp * np.sin(kx * x + px))
            fy.append(np.sin(ky * y + py))
        return _stack(fy), _stack(fx)

    def tissue_grid(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        fy, fx = self._tissue_factors(x, y)
        bx, by = self._border(x, y)
        return _smoothstep(0.3, 0.45, _low_rank(fy, fx)) * np.outer(by, bx).astype(np.float32)

    def tissue_points(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        fy, fx = self._tissue_factors(x, y)
        bx, by = self._border(x, y)
        return _smoothstep(0.3, 0.45, np.sum(fy * fx, axis=0)) * bx * by

    def density_grid(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        fy, fx = self._density_factors(x, y)
        return np.clip(_low_rank(fy, fx), 0.1, 1.0)

    def density_points(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        fy, fx = self._density_factors(x, y)
        return np.clip(np.sum(fy * fx, axis=0), 0.1, 1.0)

    def fibers_grid(self, x: np.ndarray, y: np.ndarray, blur_var: float) -> np.ndarray:
        # sin(a(x) + b(y)) = sin a cos b + cos a sin b keeps the wavy stripes separable (rank 2).
        fx = []
        fy = []
        for amp, lam, ang, wax, wkx, wpx, way, wky, wpy in self.fibers:
            k = 2 * math.pi / lam
            # Gaussian pre-filter of a sinusoid = attenuation; mimics what box-downsampling does.
            att = amp * math.exp(-0.5 * k * k * blur_var)
            a = k * math.cos(ang) * x + wax * np.sin(wkx * x + wpx)
            b = k * math.sin(ang) * y + way * np.sin(wky * y + wpy)
            fx += [att * np.sin(a), att * np.cos(a)]
            fy += [np.cos(b), np.sin(b)]
        return _low_rank(_stack(fy), _stack(fx))

    # -- nuclei ----------------------------------------------------------------------------------

    def nuclei(self, level: int, px0: int, py0: int, tile: int) -> np.ndarray:
        """Hematoxylin density of the nuclei on a (tile, tile) block at level-``level`` pixel origin.

        Each nucleus is an anisotropic Gaussian. At level L (scale s = 2**L) it is convolved with a
        Gaussian of the variance of an s x s box (s^2 - 1) / 12, which keeps the integral (amplitude is
        scaled by sqrt(det ratio)); so level L approximates the box-downsampled level 0.
        """
        s = 1 << level
        blur_var = (s * s - 1) / 12.0
        sig_max = math.sqrt(_SIGMA_MAX**2 + blur_var)
        margin = 3.0 * sig_max
        x_lo, x_hi = px0 * s - margin, (px0 + tile) * s + margin
        y_lo, y_hi = py0 * s - margin, (py0 + tile) * s + margin
        cxs = np.arange(math.floor(x_lo / _CELL), math.floor(x_hi / _CELL) + 1)
        cys = np.arange(math.floor(y_lo / _CELL), math.floor(y_hi / _CELL) + 1)
        grid_x, grid_y = np.meshgrid(cxs, cys)
        gx, gy = grid_x.ravel(), grid_y.ravel()
        u = _cell_uniforms(self.seed, gx, gy, 7)
        nx = (gx + u[0]) * _CELL
        ny = (gy + u[1]) * _CELL
        keep = u[2] < _PRESENCE * self.tissue_points(nx, ny) * self.density_points(nx, ny)
        out = np.zeros(tile * tile, dtype=np.float64)
        if not keep.any():
            return out.reshape(tile, tile).astype(np.float32)
        nx, ny, u = nx[keep], ny[keep], u[:, keep]
        s1 = _SIGMA1[0] + _SIGMA1[1] * u[3]
        s2 = s1 * (_ELONGATION[0] + _ELONGATION[1] * u[4])
        theta = math.pi * u[5]
        amp = _AMPLITUDE[0] + _AMPLITUDE[1] * u[6]
        c, sn = np.cos(theta), np.sin(theta)
        v1, v2 = s1 * s1, s2 * s2
        sxx = v1 * c * c + v2 * sn * sn + blur_var
        syy = v1 * sn * sn + v2 * c * c + blur_var
        sxy = (v1 - v2) * c * sn
        det = sxx * syy - sxy * sxy
        amp = amp * np.sqrt(v1 * v2 / det)
        # Inverse covariance in level-L pixel units (covariance scales by 1/s^2).
        f32 = np.float32
        ia = (syy / det * s * s).astype(f32)[:, None, None]
        ib = (-sxy / det * s * s).astype(f32)[:, None, None]
        ic = (sxx / det * s * s).astype(f32)[:, None, None]
        lx = nx / s - px0  # centre in tile-local level-L coordinates (pixel j spans [j, j+1))
        ly = ny / s - py0
        half = math.ceil(3.0 * sig_max / s)
        offs = np.arange(-half, half + 1)
        cols = np.floor(lx).astype(np.int64)[:, None] + offs  # (n, P)
        rows = np.floor(ly).astype(np.int64)[:, None] + offs
        dx = (cols + 0.5 - lx[:, None]).astype(f32)[:, None, :]
        dy = (rows + 0.5 - ly[:, None]).astype(f32)[:, :, None]
        q = (2.0 * ib * dy) * dx  # the only term that is already (n, P, P)
        q += ia * dx * dx
        q += ic * dy * dy
        q *= -0.5
        val = np.exp(q, out=q)
        val *= amp.astype(f32)[:, None, None]
        valid = ((cols >= 0) & (cols < tile))[:, None, :] & ((rows >= 0) & (rows < tile))[:, :, None]
        idx = rows[:, :, None] * tile + cols[:, None, :]
        out += np.bincount(idx[valid], weights=val[valid], minlength=tile * tile)
        return out.reshape(tile, tile).astype(np.float32)


def render_tile(
    model: TissueModel, level: int, col: int, row: int, tile: int, level_width: int, level_height: int
) -> np.ndarray:
    """RGB uint8 pixels (tile, tile, 3) of tile (col, row) of pyramid ``level``.

    Pixels outside the level's total pixel matrix (right/bottom padding of edge tiles) are background.
    """
    rgb = _render(model, level, col, row, tile, level_width, level_height)
    return _background_tile(tile).copy() if rgb is None else rgb


@lru_cache(maxsize=4)
def _background_tile(tile: int) -> np.ndarray:
    rgb = np.empty((tile, tile, 3), dtype=np.uint8)
    rgb[...] = _BACKGROUND_U8
    rgb.flags.writeable = False  # shared cached instance
    return rgb


def _render(
    model: TissueModel, level: int, col: int, row: int, tile: int, level_width: int, level_height: int
) -> np.ndarray | None:
    """Like render_tile, but None for a tile that is pure background (glass): often half of a slide."""
    s = 1 << level
    px0, py0 = col * tile, row * tile
    if px0 >= level_width or py0 >= level_height:
        return None
    blur_var = (s * s - 1) / 12.0
    # Tissue is evaluated on the tile plus a margin as wide as a nucleus can reach: no tissue there
    # means no nucleus can spill into the tile either, so the tile is exactly background.
    margin = math.ceil(3.0 * math.sqrt(_SIGMA_MAX**2 + blur_var) / s)
    # Level-0 coordinates of the level-L pixel centres.
    x_ext = ((px0 - margin + np.arange(tile + 2 * margin, dtype=np.float64)) + 0.5) * s
    y_ext = ((py0 - margin + np.arange(tile + 2 * margin, dtype=np.float64)) + 0.5) * s
    tissue_ext = model.tissue_grid(x_ext, y_ext)
    if not tissue_ext.any():
        return None
    tissue = np.ascontiguousarray(tissue_ext[margin : margin + tile, margin : margin + tile])
    x, y = x_ext[margin : margin + tile], y_ext[margin : margin + tile]
    fib = model.fibers_grid(x, y, blur_var)
    if s <= _MAX_NUCLEI_SCALE:
        nuc = model.nuclei(level, px0, py0, tile)
    else:
        dens = model.density_grid(x, y)
        nuc = tissue * dens * np.float32(_PRESENCE * _MEAN_NUCLEUS_MASS / (_CELL * _CELL))
    # Grain: averaging s*s independent samples shrinks their spread by s, hence the 1/s gain.
    table = _noise_table(model.seed)
    ix = (np.arange(px0, px0 + tile) + 389 * level) % _NOISE_SIZE
    iy = (np.arange(py0, py0 + tile) + 577 * level) % _NOISE_SIZE
    grain = 1.0 + (_NOISE_GAIN / s) * table[np.ix_(iy, ix)]
    eosin = tissue * np.maximum(fib + 0.16, 0.02) * grain
    hema = (tissue * 0.05 + nuc) * grain
    # Beer-Lambert per channel; in-place float32 ops because this is the per-pixel hot path.
    rgb = np.empty((tile, tile, 3), dtype=np.uint8)
    chan = np.empty((tile, tile), dtype=np.float32)
    for c in range(3):
        np.multiply(hema, -_H_OD[c], out=chan)
        chan -= eosin * _E_OD[c]
        np.exp(chan, out=chan)
        chan *= _BACKGROUND[c]
        chan += 0.5
        rgb[..., c] = chan
    valid_w = level_width - px0
    valid_h = level_height - py0
    if valid_w < tile:
        rgb[:, max(valid_w, 0) :] = _BACKGROUND_U8
    if valid_h < tile:
        rgb[max(valid_h, 0) :, :] = _BACKGROUND_U8
    return rgb


# --------------------------------------------------------------------------------------------------
# Parallel tile production
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _LevelJob:
    model: TissueModel
    level: int
    tile: int
    width: int  # level's total pixel matrix
    height: int
    codec: str
    quality: int
    j2k_rate: float

    @property
    def cols(self) -> int:
        return -(-self.width // self.tile)

    @property
    def rows(self) -> int:
        return -(-self.height // self.tile)

    def encode(self, col: int, row: int) -> bytes:
        rgb = _render(self.model, self.level, col, row, self.tile, self.width, self.height)
        if rgb is None:
            return _encoded_background(self.tile, self.codec, self.quality, self.j2k_rate)
        return encode_tile(rgb, self.codec, self.quality, self.j2k_rate)


@lru_cache(maxsize=8)
def _encoded_background(tile: int, codec: str, quality: int, j2k_rate: float) -> bytes:
    # Glass tiles are all identical; encoding one per worker saves real time on mostly-empty slides.
    return encode_tile(_background_tile(tile), codec, quality, j2k_rate)


def _encode_chunk(job: _LevelJob, start: int, stop: int) -> list[bytes]:
    return [job.encode(i % job.cols, i // job.cols) for i in range(start, stop)]


def _iter_frames(job: _LevelJob, workers: int, chunk: int = 32) -> Iterator[bytes]:
    """Encoded frames in TILED_FULL order (row-major), with bounded read-ahead."""
    total = job.cols * job.rows
    if workers <= 1 or total <= chunk:
        for i in range(total):
            yield job.encode(i % job.cols, i // job.cols)
        return
    # A bounded window of in-flight chunks (rather than Executor.map over everything) keeps memory
    # flat for levels with hundreds of thousands of tiles, even if the disk is slower than encoding.
    with ProcessPoolExecutor(max_workers=workers) as pool:
        pending: deque[Future[list[bytes]]] = deque()
        next_start = 0
        while next_start < total or pending:
            while next_start < total and len(pending) < 3 * workers:
                stop = min(next_start + chunk, total)
                pending.append(pool.submit(_encode_chunk, job, next_start, stop))
                next_start = stop
            yield from pending.popleft().result()


# --------------------------------------------------------------------------------------------------
# DICOM header
# --------------------------------------------------------------------------------------------------


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _ds(value: float) -> str:
    # DS is limited to 16 characters; %g keeps e.g. 0.00025 * 2**k short and exact enough.
    return f"{value:.10g}"


@lru_cache(maxsize=1)
def _srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@dataclass(frozen=True)
class _SeriesInfo:
    study_uid: str
    series_uid: str
    frame_of_reference_uid: str
    pyramid_uid: str
    dimension_organization_uid: str
    specimen_uid: str
    patient_id: str
    now: datetime


_RATIO_PLACEHOLDER = "1.00000000000000"  # 16 chars: patched in place once the real size is known


def _build_header(
    info: _SeriesInfo, codec: CodecSpec, job: _LevelJob, base_width: int, base_height: int, eot: bool
) -> Dataset:
    level = job.level
    frames = job.cols * job.rows
    spacing = BASE_PIXEL_SPACING_MM * (1 << level)
    sop_uid = generate_uid()

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = WSI_SOP_CLASS_UID
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = codec.transfer_syntax

    ds = Dataset()
    ds.file_meta = meta
    date, tm = info.now.strftime("%Y%m%d"), info.now.strftime("%H%M%S")
    if level == 0:
        image_type = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
    else:
        image_type = ["DERIVED", "PRIMARY", "VOLUME", "RESAMPLED"]

    # SOP Common
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = WSI_SOP_CLASS_UID
    ds.SOPInstanceUID = sop_uid
    # Patient / Study / Series
    ds.PatientName = f"Synthetic^Slide^{info.patient_id}"
    ds.PatientID = info.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.StudyInstanceUID = info.study_uid
    ds.StudyDate = date
    ds.StudyTime = tm
    ds.StudyID = "1"
    ds.AccessionNumber = f"ACC-{info.patient_id}"[:16]
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "Synthetic whole slide image"
    ds.Modality = "SM"
    ds.SeriesInstanceUID = info.series_uid
    ds.SeriesNumber = 1
    ds.SeriesDescription = "Synthetic H&E pyramid"
    ds.PyramidUID = info.pyramid_uid
    ds.PyramidLabel = "Synthetic H&E"
    # Frame of Reference
    ds.FrameOfReferenceUID = info.frame_of_reference_uid
    ds.PositionReferenceIndicator = "SLIDE_CORNER"
    # (Enhanced) General Equipment
    ds.Manufacturer = "dicomweb-server"
    ds.ManufacturerModelName = "dicomweb.demo.wsi_generate"
    ds.DeviceSerialNumber = "SYNTH-0001"
    ds.SoftwareVersions = "1.0"
    # Whole Slide Microscopy Image + Image Pixel + Multi-frame Functional Groups
    ds.ImageType = image_type
    ds.InstanceNumber = level + 1
    ds.ContentDate = date
    ds.ContentTime = tm
    ds.AcquisitionDateTime = info.now.strftime("%Y%m%d%H%M%S")
    ds.NumberOfFrames = frames
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = codec.photometric
    ds.PlanarConfiguration = 0
    ds.Rows = job.tile
    ds.Columns = job.tile
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.BurnedInAnnotation = "NO"
    ds.SpecimenLabelInImage = "NO"
    ds.VolumetricProperties = "VOLUME"
    ds.FocusMethod = "AUTO"
    ds.ExtendedDepthOfField = "NO"
    ds.DimensionOrganizationType = "TILED_FULL"
    ds.ImagedVolumeWidth = base_width * BASE_PIXEL_SPACING_MM
    ds.ImagedVolumeHeight = base_height * BASE_PIXEL_SPACING_MM
    ds.ImagedVolumeDepth = SLICE_THICKNESS_MM
    ds.TotalPixelMatrixColumns = job.width
    ds.TotalPixelMatrixRows = job.height
    ds.TotalPixelMatrixFocalPlanes = 1
    origin = Dataset()
    origin.XOffsetInSlideCoordinateSystem = "20.0"
    origin.YOffsetInSlideCoordinateSystem = "40.0"
    ds.TotalPixelMatrixOriginSequence = [origin]
    ds.ImageOrientationSlide = ["0", "-1", "0", "-1", "0", "0"]
    if codec.lossy:
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionRatio = _RATIO_PLACEHOLDER
        ds.LossyImageCompressionMethod = codec.method
    else:
        ds.LossyImageCompression = "00"
    # Multi-frame Dimension: TILED_FULL frames are implicitly indexed by plane position.
    dim_org = Dataset()
    dim_org.DimensionOrganizationUID = info.dimension_organization_uid
    ds.DimensionOrganizationSequence = [dim_org]
    dims = []
    for pointer, label in ((0x0048021E, "Column Position"), (0x0048021F, "Row Position")):
        item = Dataset()
        item.DimensionOrganizationUID = info.dimension_organization_uid
        item.DimensionIndexPointer = pointer
        item.FunctionalGroupPointer = 0x0048021A  # Plane Position (Slide) Sequence
        item.DimensionDescriptionLabel = label
        dims.append(item)
    ds.DimensionIndexSequence = dims
    measures = Dataset()
    measures.PixelSpacing = [_ds(spacing), _ds(spacing)]
    measures.SliceThickness = _ds(SLICE_THICKNESS_MM)
    frame_type = Dataset()
    frame_type.FrameType = image_type
    path_id = Dataset()
    path_id.OpticalPathIdentifier = "1"
    shared = Dataset()
    shared.PixelMeasuresSequence = [measures]
    shared.WholeSlideMicroscopyImageFrameTypeSequence = [frame_type]
    shared.OpticalPathIdentificationSequence = [path_id]
    ds.SharedFunctionalGroupsSequence = [shared]
    # Acquisition Context (type 2, may be empty)
    ds.AcquisitionContextSequence = DicomSequence()
    # Specimen
    ds.ContainerIdentifier = f"SLIDE-{info.patient_id}"[:64]
    ds.IssuerOfTheContainerIdentifierSequence = DicomSequence()
    ds.ContainerTypeCodeSequence = [_code("433466003", "SCT", "Microscope slide")]
    specimen = Dataset()
    specimen.SpecimenIdentifier = f"SPEC-{info.patient_id}"[:64]
    specimen.SpecimenUID = info.specimen_uid
    specimen.IssuerOfTheSpecimenIdentifierSequence = DicomSequence()
    specimen.SpecimenShortDescription = "Synthetic H&E section"
    specimen.SpecimenPreparationSequence = DicomSequence()
    ds.SpecimenDescriptionSequence = [specimen]
    # Optical Path: one bright-field path; colour images need an ICC profile here.
    path = Dataset()
    path.OpticalPathIdentifier = "1"
    path.OpticalPathDescription = "Brightfield"
    path.IlluminationTypeCodeSequence = [_code("111744", "DCM", "Brightfield illumination")]
    path.IlluminationColorCodeSequence = [_code("414298005", "SCT", "Full Spectrum")]
    path.ICCProfile = _srgb_icc()
    path.ColorSpace = "SRGB"
    path.ObjectiveLensPower = "40"
    ds.NumberOfOpticalPaths = 1
    ds.OpticalPathSequence = [path]
    if eot:
        # Zero-filled placeholders; real values are patched in after the fragments are written.
        ds.ExtendedOffsetTable = bytes(8 * frames)
        ds.ExtendedOffsetTableLengths = bytes(8 * frames)
    return ds


# --------------------------------------------------------------------------------------------------
# Streaming writer
# --------------------------------------------------------------------------------------------------


class _BotOverflow(Exception):
    """A frame offset does not fit the 32-bit Basic Offset Table."""


def _header_bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def _write_level(path: Path, ds: Dataset, job: _LevelJob, codec: CodecSpec, eot: bool, workers: int) -> int:
    """Write header then Pixel Data tile by tile; returns the file size."""
    frames = job.cols * job.rows
    raw_frame = job.tile * job.tile * 3
    header = _header_bytes(ds)
    ratio_pos = -1
    if codec.lossy:
        # (0028,2112) DS, explicit VR LE, length 16 -> value follows the 8-byte element header.
        marker = b"\x28\x00\x12\x21DS\x10\x00"
        ratio_pos = header.find(marker)
        if ratio_pos < 0 or header.find(marker, ratio_pos + 1) >= 0:
            raise RuntimeError("could not locate Lossy Image Compression Ratio placeholder")
        ratio_pos += len(marker)
    eot_off_pos = eot_len_pos = -1
    if eot:
        # The EOT elements are the last two elements pydicom wrote (nothing sorts between them and
        # Pixel Data): ... | 7FE0,0001 OV hdr(12) | offsets | 7FE0,0002 OV hdr(12) | lengths |
        n = 8 * frames
        eot_len_pos = len(header) - n
        eot_off_pos = eot_len_pos - 12 - n
        if (
            header[eot_len_pos - 12 : eot_len_pos - 8] != b"\xe0\x7f\x02\x00"
            or header[eot_off_pos - 12 : eot_off_pos - 8] != b"\xe0\x7f\x01\x00"
        ):
            raise RuntimeError("unexpected layout of the Extended Offset Table elements")

    with open(path, "wb") as fh:
        fh.write(header)
        if not codec.encapsulated:
            length = raw_frame * frames
            pad = length % 2
            if length + pad > _NATIVE_MAX_LENGTH:
                raise ValueError(
                    f"native level {job.level} needs {length} bytes of Pixel Data, over the 4 GiB limit of "
                    "a defined-length element; use a compressed codec or fewer pixels"
                )
            fh.write(_PIXEL_DATA_TAG + b"OB\x00\x00" + struct.pack("<I", length + pad))
            for frame in _iter_frames(job, workers):
                fh.write(frame)
            if pad:
                fh.write(b"\x00")
            return fh.tell()

        fh.write(_PIXEL_DATA_TAG + b"OB\x00\x00\xff\xff\xff\xff")
        bot_len = 0 if eot else 4 * frames
        fh.write(_ITEM_TAG + struct.pack("<I", bot_len))
        bot_pos = fh.tell()
        fh.write(bytes(bot_len))
        offsets = np.empty(frames, dtype="<u8")
        lengths = np.empty(frames, dtype="<u8")
        pos = 0
        for i, frame in enumerate(_iter_frames(job, workers)):
            if not eot and pos > _BOT_MAX_OFFSET:
                raise _BotOverflow
            odd = len(frame) % 2
            # Fragments must have even length; a trailing 0x00 after EOI/EOC is ignored by decoders.
            fh.write(_ITEM_TAG + struct.pack("<I", len(frame) + odd))
            fh.write(frame)
            if odd:
                fh.write(b"\x00")
            offsets[i] = pos
            lengths[i] = len(frame) + odd
            pos += 8 + len(frame) + odd
        fh.write(_SEQ_DELIM)
        size = fh.tell()
        if eot:
            fh.seek(eot_off_pos)
            fh.write(offsets.tobytes())
            fh.seek(eot_len_pos)
            fh.write(lengths.tobytes())
        else:
            fh.seek(bot_pos)
            fh.write(offsets.astype("<u4").tobytes())
        if codec.lossy:
            ratio = raw_frame * frames / max(int(lengths.sum()), 1)
            fh.seek(ratio_pos)
            fh.write(f"{ratio:.6f}"[:16].ljust(16).encode("ascii"))
        return size


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


def level_shape(width: int, height: int, level: int) -> tuple[int, int]:
    """(columns, rows) of the total pixel matrix at ``level`` (each level halves, rounding up)."""
    s = 1 << level
    return -(-width // s), -(-height // s)


def _estimate_frame_bytes(job: _LevelJob, samples: int = 64) -> float:
    """Mean encoded tile size from a grid of tiles spread evenly over the level.

    A 2-D grid rather than a stride over the frame index: a stride that divides the column count
    would sample a single column of the slide.
    """
    side = max(1, math.isqrt(samples))
    cols = sorted({min(job.cols - 1, int((i + 0.5) * job.cols / side)) for i in range(side)})
    rows = sorted({min(job.rows - 1, int((i + 0.5) * job.rows / side)) for i in range(side)})
    sizes = [len(job.encode(c, r)) for r in rows for c in cols]
    return float(np.mean(sizes))


def size_for_target(
    target_bytes: float,
    *,
    tile: int = 256,
    codec: str = "jpeg",
    quality: int = 90,
    j2k_rate: float = 15.0,
    seed: int = 0,
) -> int:
    """Square level-0 side (pixels, a multiple of ``tile``) for a level-0 file of at least ~``target_bytes``.

    The tissue outline scales with the slide while cell-level detail does not, so the mean tile size is
    nearly independent of the slide size; a sample on a large provisional slide gives it.
    """
    probe_side = 64 * 1024
    model = TissueModel.from_seed(probe_side, probe_side, seed)
    job = _LevelJob(model, 0, tile, probe_side, probe_side, codec, quality, j2k_rate)
    per_tile = _estimate_frame_bytes(job, samples=576) + 8
    # 3% headroom: the sample mean is within a few percent, and the target is meant as a minimum.
    tiles_per_side = math.ceil(math.sqrt(1.03 * target_bytes / per_tile))
    return tiles_per_side * tile


def generate_pyramid(
    out_dir: Path,
    *,
    width: int,
    height: int,
    tile: int = 256,
    levels: int = 3,
    codec: str = "jpeg",
    seed: int = 0,
    study_uid: str | None = None,
    patient_id: str = "WSI-0001",
    quality: int = 90,
    j2k_rate: float = 15.0,
    eot: bool | None = None,
    workers: int | None = None,
    verbose: bool = False,
) -> list[Path]:
    """Write one WSI Part 10 file per pyramid level into ``out_dir``; returns the paths (level 0 first).

    ``eot``: True forces an Extended Offset Table (and an empty Basic Offset Table); False forces a
    Basic Offset Table (error if offsets exceed 32 bits); None picks the EOT only when a sample of
    tiles predicts offsets past 4 GiB (and falls back to it if the BOT overflows anyway).
    ``workers``: encoder processes (default: CPU count).
    """
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}; expected one of {sorted(CODECS)}")
    if width < 1 or height < 1 or tile < 16 or levels < 1:
        raise ValueError("width/height must be >= 1, tile >= 16 and levels >= 1")
    spec = CODECS[codec]
    workers = workers if workers is not None else (os.cpu_count() or 1)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = TissueModel.from_seed(width, height, seed)
    info = _SeriesInfo(
        study_uid=study_uid or generate_uid(),
        series_uid=generate_uid(),
        frame_of_reference_uid=generate_uid(),
        pyramid_uid=generate_uid(),
        dimension_organization_uid=generate_uid(),
        specimen_uid=generate_uid(),
        patient_id=patient_id,
        now=datetime.now(),
    )
    paths: list[Path] = []
    for level in range(levels):
        lw, lh = level_shape(width, height, level)
        job = _LevelJob(model, level, tile, lw, lh, codec, quality, j2k_rate)
        frames = job.cols * job.rows
        use_eot = bool(eot) and spec.encapsulated  # native Pixel Data has no offset tables
        if eot is None and spec.encapsulated:
            # Without a flag, predict whether offsets will pass 32 bits (with a safety margin). Levels
            # that could not get there even at 1.5x the raw size skip the (slow for J2K) tile sample.
            worst = (1.5 * tile * tile * 3 + 8) * frames
            if worst > 0.85 * _BOT_MAX_OFFSET:
                predicted = (_estimate_frame_bytes(job) + 8) * frames
                use_eot = predicted > 0.85 * _BOT_MAX_OFFSET
        path = out_dir / f"level-{level}.dcm"
        started = time.perf_counter()
        try:
            header = _build_header(info, spec, job, width, height, use_eot)
            size = _write_level(path, header, job, spec, use_eot, workers)
        except _BotOverflow:
            if eot is False:
                path.unlink(missing_ok=True)
                raise ValueError(
                    f"level {level} exceeds 4 GiB of fragments; a Basic Offset Table cannot address it "
                    "(use eot=True / --eot)"
                ) from None
            use_eot = True
            header = _build_header(info, spec, job, width, height, True)
            size = _write_level(path, header, job, spec, True, workers)
        if verbose:
            elapsed = time.perf_counter() - started
            print(
                f"{path}\t{size} bytes ({size / 2**20:.1f} MiB)\t{lw}x{lh}\t{frames} frames\t"
                f"{'EOT' if use_eot else 'BOT' if spec.encapsulated else 'native'}\t{elapsed:.1f} s",
                flush=True,
            )
        paths.append(path)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; prints one line per written file (path, size, dimensions, frames, time)."""
    parser = argparse.ArgumentParser(
        prog="python -m dicomweb.demo.wsi_generate",
        description="Generate a synthetic VL Whole Slide Microscopy Image pyramid (one file per level).",
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--width", type=int, default=16384, help="level-0 columns (default 16384)")
    parser.add_argument("--height", type=int, default=16384, help="level-0 rows (default 16384)")
    parser.add_argument(
        "--target-gb",
        type=float,
        default=None,
        help="square level-0 size for a level-0 file of ~this many GB (1e9 B); overrides --width/--height",
    )
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--levels", type=int, default=3)
    parser.add_argument("--codec", choices=sorted(CODECS), default="jpeg")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality (default 90)")
    parser.add_argument("--j2k-rate", type=float, default=15.0, help="lossy JPEG 2000 compression ratio")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--patient-id", default="WSI-0001")
    parser.add_argument("--study-uid", default=None)
    parser.add_argument(
        "--eot", action="store_true", help="always write an Extended Offset Table (empty Basic Offset Table)"
    )
    parser.add_argument("--workers", type=int, default=None, help="encoder processes (default: CPU count)")
    args = parser.parse_args(argv)

    width, height = args.width, args.height
    if args.target_gb is not None:
        side = size_for_target(
            args.target_gb * 1e9,
            tile=args.tile,
            codec=args.codec,
            quality=args.quality,
            j2k_rate=args.j2k_rate,
            seed=args.seed,
        )
        width = height = side
        print(f"target {args.target_gb} GB -> level 0 of {side}x{side}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    paths = generate_pyramid(
        args.out_dir,
        width=width,
        height=height,
        tile=args.tile,
        levels=args.levels,
        codec=args.codec,
        seed=args.seed,
        study_uid=args.study_uid,
        patient_id=args.patient_id,
        quality=args.quality,
        j2k_rate=args.j2k_rate,
        eot=True if args.eot else None,
        workers=args.workers,
        verbose=True,
    )
    total = sum(p.stat().st_size for p in paths)
    print(f"total\t{total} bytes ({total / 2**30:.2f} GiB)\t{time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
