"""Preprocessing contract of the chest-xray-pneumonia model, as pure functions.

This file is the reference implementation of the `preprocessing` list in
models/chest-xray-pneumonia/1/config.yaml; radflow's Go package
internal/transform implements the same steps and is checked against
internal/transform/testdata/parity/images.json, written from these functions.

Steps (8-bit JPEG/PNG path; DICOM steps modality_lut/voi/invert_monochrome1
are done in Go before step 1 and yield the same [0,1] float image):

1. grayscale: PIL ``Image.open(p).convert("L")``. For RGB input Pillow computes
   ``L = (R*19595 + G*38470 + B*7471 + 0x8000) >> 16`` (ITU-R 601-2 luma
   299/587/114 in 16-bit fixed point, rounded). Then ``float32(L) / 255``.
2. resize to 224x224: Pillow ``Image.resize((W, H), Image.BILINEAR)`` on a mode
   "F" image: separable triangle filter (support 1), support and kernel width
   scaled by the downscale factor when shrinking (antialias), pixel centres at
   (i + 0.5) * scale, weights normalised per output pixel, double-precision
   accumulation, result stored as float32. Identity when already HxW.
3. normalize: ``(x - MEAN) / STD`` with MEAN=0.5, STD=0.25, float32.
4. layout: float32 [N, 1, H, W] (NCHW, row-major, one channel).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

HEIGHT = 224
WIDTH = 224
MEAN = 0.5
STD = 0.25


def load_gray_u8(path: str) -> np.ndarray:
    """Decode an 8-bit JPEG/PNG to uint8 luma [H, W] with Pillow's convert("L")."""
    with Image.open(path) as im:
        return np.asarray(im.convert("L"), dtype=np.uint8).copy()


def to_unit(gray_u8: np.ndarray) -> np.ndarray:
    """uint8 [H, W] -> float32 [H, W] in [0, 1] (x / 255)."""
    return gray_u8.astype(np.float32) / np.float32(255.0)


def load_gray(path: str) -> np.ndarray:
    """Step 1: file -> float32 [H, W] in [0, 1]."""
    return to_unit(load_gray_u8(path))


def resize(img: np.ndarray, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """Step 2: float32 [H, W] -> float32 [height, width], Pillow antialiased bilinear on mode "F".

    Identity (a copy) when the size already matches.
    """
    img = np.ascontiguousarray(img, dtype=np.float32)
    if img.shape == (height, width):
        return img.copy()
    out = Image.fromarray(img, mode="F").resize((width, height), Image.BILINEAR)
    return np.asarray(out, dtype=np.float32).copy()


def normalize(img: np.ndarray, mean: float = MEAN, std: float = STD) -> np.ndarray:
    """Step 3: (x - mean) / std in float32."""
    return ((img.astype(np.float32) - np.float32(mean)) / np.float32(std)).astype(np.float32)


def layout(img: np.ndarray) -> np.ndarray:
    """Step 4: float32 [H, W] -> float32 [1, 1, H, W]."""
    return np.ascontiguousarray(img, dtype=np.float32)[None, None, :, :]


def preprocess_file(path: str) -> np.ndarray:
    """Whole pipeline for one 8-bit image file: returns float32 [1, 1, 224, 224]."""
    return layout(normalize(resize(load_gray(path))))
