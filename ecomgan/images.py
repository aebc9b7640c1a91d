"""Image conversions shared by training (sample grids) and the service (PNG in and out)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Map model-range images in [-1, 1] to uint8 pixels, dropping a singleton channel axis."""
    arr = np.asarray(images, dtype=np.float32)
    if arr.ndim == 4 and arr.shape[1] == 1:
        arr = arr[:, 0]
    return np.clip(np.rint((arr + 1.0) * 127.5), 0, 255).astype(np.uint8)


def to_model_range(pixels: np.ndarray) -> np.ndarray:
    """Map uint8-range pixels (0..255) to the models' float32 range [-1, 1]."""
    return np.asarray(pixels, dtype=np.float32) / 127.5 - 1.0


def grid(pixels: np.ndarray, nrow: int, pad: int = 2, pad_value: int = 0) -> Image.Image:
    """Tile uint8 images (N, H, W) into a grayscale grid with `nrow` images per row."""
    n, h, w = pixels.shape
    rows = -(-n // nrow)
    canvas = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad), pad_value, np.uint8)
    for i, img in enumerate(pixels):
        r, c = divmod(i, nrow)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        canvas[y : y + h, x : x + w] = img
    return Image.fromarray(canvas, mode="L")


def png_bytes(image: Image.Image) -> bytes:
    """Encode a PIL image as PNG."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()
