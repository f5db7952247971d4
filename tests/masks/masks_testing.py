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
