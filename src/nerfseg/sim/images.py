"""Image encoders for the simulator's outputs (bytes, written atomically by the callers); PNG is
``nerfseg.io_utils.png_bytes``."""

from __future__ import annotations

import io

import numpy as np


def jpeg_bytes(image: np.ndarray, quality: int = 90) -> bytes:
    """JPEG of an (H, W, 3) uint8 RGB image."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, np.uint8)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def depth_to_mm(depth_m: np.ndarray) -> np.ndarray:
    """(H, W) float depth in metres (0 = no hit) to uint16 millimetres, clipped to 65535."""
    return np.clip(np.round(depth_m * 1000.0), 0, 65535).astype(np.uint16)
