"""Helpers of the mask tests: a tiny Segment-Anything model built from the library's own classes (random
weights) that runs the SAM path for real on a 64 x 64 image in well under a second on the CPU, and a
procedural test image."""

from __future__ import annotations

from functools import partial

import numpy as np
import torch

TINY_IMG = 64


def build_tiny_sam(embed_dim: int = 32, depth: int = 1):
    """SAM with a 1-block, 32-wide image encoder for 64 x 64 inputs (4 x 4 patches of 16 pixels)."""
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    prompt_dim = 32
    grid = TINY_IMG // 16
    return Sam(
        image_encoder=ImageEncoderViT(
            img_size=TINY_IMG, patch_size=16, embed_dim=embed_dim, depth=depth, num_heads=2, mlp_ratio=2,
            out_chans=prompt_dim, qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True, window_size=2, global_attn_indexes=(depth - 1,),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=prompt_dim, image_embedding_size=(grid, grid), input_image_size=(TINY_IMG, TINY_IMG),
            mask_in_chans=4,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=1, embedding_dim=prompt_dim, mlp_dim=64, num_heads=2),
            transformer_dim=prompt_dim, iou_head_depth=2, iou_head_hidden_dim=32,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    ).eval()


TINY_BUILDERS = {"tiny": build_tiny_sam, "tiny_wide": partial(build_tiny_sam, embed_dim=48)}


def scene_image(h: int = 64, w: int = 64, seed: int = 0) -> np.ndarray:
    """A procedural (H, W, 3) uint8 test image: sky, road, a red box and a green disc, with mild noise."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), dtype=np.float64)
    img[: h // 3] = (120, 170, 230)
    img[h // 3 :] = (90, 90, 95)
    img[h // 2 : 3 * h // 4, w // 8 : w // 2] = (200, 30, 30)
    yy, xx = np.mgrid[:h, :w]
    img[(yy - h // 2) ** 2 + (xx - 3 * w // 4) ** 2 < (min(h, w) // 6) ** 2] = (40, 160, 50)
    img += rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


CALIB = "\n".join(
    [f"P{i}: 60 0 32 {-30.0 * (i % 2)} 0 60 24 0 0 0 1 0" for i in range(4)]
    + ["Tr: 0 -1 0 0 0 0 -1 0 1 0 0 0"]
) + "\n"


def write_tiny_kitti(root, frames: int = 3, h: int = 48, w: int = 64, sequence: str = "00", semantic=True):
    """A minimal SemanticKITTI-layout sequence: a few points per scan, one camera image per scan (procedural,
    different per frame), calib.txt, and (optionally) 16-bit raw semantic ground truth per image."""
    from pathlib import Path

    from PIL import Image

    folder = Path(root) / "sequences" / sequence
    for sub in ("velodyne", "image_2", "semantic_2"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    (folder / "calib.txt").write_text(CALIB)
    for f in range(frames):
        name = f"{f:06d}"
        pts = np.array([[5.0, 0.0, 0.0, 0.5], [8.0, 1.0, -1.0, 0.2]], dtype=np.float32)
        (folder / "velodyne" / f"{name}.bin").write_bytes(pts.tobytes())
        Image.fromarray(scene_image(h, w, seed=f)).save(folder / "image_2" / f"{name}.png")
        if semantic:
            raw = np.full((h, w), 40, dtype=np.uint16)  # road
            raw[: h // 3] = 0  # sky: unlabeled
            raw[h // 2 : 3 * h // 4, w // 8 : w // 2] = 10  # car
            yy, xx = np.mgrid[:h, :w]
            raw[(yy - h // 2) ** 2 + (xx - 3 * w // 4) ** 2 < (min(h, w) // 6) ** 2] = 70  # vegetation
            Image.fromarray(raw).save(folder / "semantic_2" / f"{name}.png")
    return Path(root)
