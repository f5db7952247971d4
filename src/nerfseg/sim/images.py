"""Image encoders for the simulator's outputs (bytes, written atomically by the callers)."""

from __future__ import annotations

import io

import numpy as np


def png_bytes(image: np.ndarray, compress_level: int = 1) -> bytes:
    """PNG of an (H, W, 3) uint8 RGB image or an (H, W) uint16 single-channel image (16-bit PNG)."""
    from PIL import Image

    if image.dtype == np.uint16:
        pil = Image.fromarray(image.astype(np.uint16))
    else:
        pil = Image.fromarray(np.ascontiguousarray(image, np.uint8))
    buf = io.BytesIO()
    pil.save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def jpeg_bytes(image: np.ndarray, quality: int = 90) -> bytes:
    """JPEG of an (H, W, 3) uint8 RGB image."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, np.uint8)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def depth_to_mm(depth_m: np.ndarray) -> np.ndarray:
    """(H, W) float depth in metres (0 = no hit) to uint16 millimetres, clipped to 65535."""
    return np.clip(np.round(depth_m * 1000.0), 0, 65535).astype(np.uint16)
