"""Rendered camera views of the NeRF head and their figure: camera image, rendered semantics, rendered
depth and opacity beside the ground truth (the simulator's ``semantic_2`` / ``depth_2``) where it exists.

Pixels: the reduced grid of :class:`nerfseg.geometry.rays.PixelGrid` (rays through the centres of its
pixels; the camera image and the ground truth read at the same pixels with ``read_at_pixels``). Depth shown
is z-depth (metres along the camera's optical axis, as the simulator writes ``depth_2``): the rendered ray
depth ``D / A`` times the cosine between the ray and the optical axis. The depth score compares distances
along the ray (the ground truth converted with ``z_depth_to_ray_distance``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nerfseg.data.ground_truth import read_uint16_png
from nerfseg.data.sample import IGNORE_INDEX, CameraFrame
from nerfseg.geometry.rays import PixelGrid, camera_ray_bundle, read_at_pixels, z_depth_to_ray_distance
from nerfseg.io_utils import atomic_write_bytes, png_bytes

TITLE_HEIGHT = 14
OPAQUE = 0.5
"""Pixels whose rendered opacity is below this show no class / depth (black)."""


@dataclass
class RenderedView:
    """One camera rendered on a reduced pixel grid (arrays of shape (H', W') = ``grid.shape``).

    Attributes:
        labels: int64 argmax of P, IGNORE_INDEX where opacity < OPAQUE.
        depth: float32 z-depth in metres (rendered D / A times the cosine to the optical axis), 0 where
            opacity < OPAQUE.
        ray_depth: float32 rendered distance along the ray D / A, metres, 0 where opacity < OPAQUE.
        opacity: float32 A in [0, 1].
        grid: the reduced pixel grid (its ``stride`` is the pixel step).
    """

    labels: np.ndarray
    depth: np.ndarray
    ray_depth: np.ndarray
    opacity: np.ndarray
    grid: PixelGrid

    @property
    def stride(self) -> int:
        return self.grid.stride


@torch.no_grad()
def render_camera_view(
    head, grid, camera: CameraFrame, stride: int, batch_index: int = 0, camera_index: int = 0
) -> RenderedView:
    """Render the reduced pixel grid (:class:`PixelGrid` at ``stride``) of ``camera`` through the voxel grid
    of scan ``batch_index``.

    Args:
        head: a :class:`~nerfseg.models.nerf.head.NerfHead` (eval mode is set by the caller).
        grid: the scan's :class:`~nerfseg.models.nerf.field.VoxelGrid`.
        camera: the camera (K, lidar_to_cam, image_size).
        stride: pixel step (1 = full resolution); rays go through pixel centres (module rays).
        batch_index, camera_index: the scan of the grid and the camera's index (carried in the rays).
    """
    width, height = camera.image_size
    pixel_grid = PixelGrid(width, height, stride)
    device = grid.device
    pixels = pixel_grid.pixel_indices(device)
    bundle = camera_ray_bundle(camera, pixels, scan=batch_index, camera_index=camera_index, device=device)
    dirs = bundle.directions
    out = head.render_chunked(grid, bundle)
    rotation = torch.as_tensor(camera.lidar_to_cam[:3, :3], dtype=torch.float32, device=device)
    cos_axis = (dirs @ rotation.T)[:, 2]  # z of the unit ray in the camera frame
    opaque = out.opacity >= OPAQUE
    zero = torch.zeros_like(out.depth)
    ray_depth = torch.where(opaque, out.depth / out.opacity.clamp_min(1e-6), zero)
    labels = torch.where(
        opaque, out.probs.argmax(dim=1), torch.full_like(opaque, IGNORE_INDEX, dtype=torch.int64)
    )

    def image(values: torch.Tensor) -> np.ndarray:
        return pixel_grid.to_image(values).cpu().numpy()

    return RenderedView(
        labels=image(labels),
        depth=image(ray_depth * cos_axis).astype(np.float32),
        ray_depth=image(ray_depth).astype(np.float32),
        opacity=image(out.opacity).astype(np.float32),
        grid=pixel_grid,
    )


def label_colors(labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """(H, W) train ids -> (H, W, 3) uint8 colours from ``palette`` (C, 3); black for IGNORE_INDEX / out of
    range."""
    labels = np.asarray(labels)
    out = np.zeros(labels.shape + (3,), dtype=np.uint8)
    valid = (labels >= 0) & (labels < len(palette))
    out[valid] = np.asarray(palette, dtype=np.uint8)[labels[valid]]
    return out


def depth_colors(depth: np.ndarray, max_depth: float) -> np.ndarray:
    """(H, W) metres -> (H, W, 3) uint8 on a log ramp: 1 m and nearer = red, ``max_depth`` and farther = blue;
    black where depth <= 0 (no hit / not rendered)."""
    depth = np.asarray(depth, dtype=np.float64)
    valid = depth > 0
    log_max = np.log(max(max_depth, 1.0 + 1e-6))
    s = np.zeros_like(depth)  # 1 near, 0 far
    s[valid] = 1.0 - np.log(np.clip(depth[valid], 1.0, max_depth)) / log_max
    red = np.clip(2 * s - 0.5, 0, 1)
    green = np.clip(1.5 - np.abs(3 * s - 1.5), 0, 1)
    blue = np.clip(1 - 2 * s, 0, 1)
    out = (np.stack([red, green, blue], axis=-1) * 255).astype(np.uint8)
    out[~valid] = 0
    return out


def gray(values: np.ndarray) -> np.ndarray:
    """(H, W) in [0, 1] -> (H, W, 3) uint8 gray."""
    v = (np.clip(np.asarray(values, dtype=np.float64), 0, 1) * 255).astype(np.uint8)
    return np.repeat(v[..., None], 3, axis=2)


def compose_grid(rows: list[list[tuple[str, np.ndarray | None]]]) -> np.ndarray:
    """Panels (title, (H, W, 3) uint8 or None for a blank) of one size in a grid, each under a title strip,
    with a 4-pixel white gutter. Returns (H_total, W_total, 3) uint8."""
    from PIL import Image, ImageDraw

    shape = next(p.shape for row in rows for _, p in row if p is not None)
    gutter = 4
    row_images = []
    for row in rows:
        cells = []
        for title, panel in row:
            strip = Image.new("RGB", (shape[1], TITLE_HEIGHT), (255, 255, 255))
            ImageDraw.Draw(strip).text((3, 1), title, fill=(0, 0, 0))
            body = np.full(shape, 255, np.uint8) if panel is None else np.asarray(panel, dtype=np.uint8)
            spacer = np.full((shape[0] + TITLE_HEIGHT, gutter, 3), 255, np.uint8)
            cells += [np.concatenate([np.asarray(strip), body], axis=0), spacer]
        row_images += [np.concatenate(cells[:-1], axis=1)]
    width = max(r.shape[1] for r in row_images)
    padded = [
        np.pad(r, ((0, gutter), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in row_images
    ]
    return np.concatenate(padded, axis=0)[:-gutter]


@dataclass
class ViewFigure:
    """The panels of one rendered camera view (all (H', W', 3) uint8) and scores against the ground truth."""

    image: np.ndarray
    semantics: np.ndarray
    depth: np.ndarray
    opacity: np.ndarray
    gt_semantics: np.ndarray | None
    gt_depth: np.ndarray | None
    depth_abs_error_median: float | None
    pixel_accuracy: float | None

    def compose(self) -> np.ndarray:
        return compose_grid(
            [
                [("camera image", self.image), ("rendered opacity", self.opacity)],
                [("rendered semantics", self.semantics), ("ground-truth semantics", self.gt_semantics)],
                [("rendered depth", self.depth), ("ground-truth depth", self.gt_depth)],
            ]
        )


def view_figure(
    view: RenderedView,
    camera: CameraFrame,
    palette: np.ndarray,
    raw_to_train,
    max_depth: float,
) -> ViewFigure:
    """Panels of a rendered view with the camera image and the ground truth subsampled to the same pixels.

    Args:
        view: the rendering; camera: its camera (image loaded on demand, GT paths optional).
        palette: (C, 3) uint8 class colours; raw_to_train: callable mapping raw semantic ids to train ids.
        max_depth: metres at the blue end of the depth colours.
    """
    grid = view.grid
    pixels = grid.pixels.numpy()

    def on_grid(full: np.ndarray) -> np.ndarray:
        return grid.to_image(read_at_pixels(full, pixels))

    image = on_grid(camera.load_image())
    gt_semantics = gt_depth = None
    accuracy = depth_error = None
    if camera.semantic_path is not None:
        gt_labels = on_grid(np.asarray(raw_to_train(read_uint16_png(camera.semantic_path))))
        gt_semantics = label_colors(gt_labels, palette)
        scored = (gt_labels != IGNORE_INDEX) & (view.labels != IGNORE_INDEX)
        if scored.any():
            accuracy = float((gt_labels[scored] == view.labels[scored]).mean())
    if camera.depth_path is not None:
        gt = on_grid(read_uint16_png(camera.depth_path)).astype(np.float32) / 1000.0  # z-depth, metres
        gt_depth = depth_colors(gt, max_depth)
        gt_ray = z_depth_to_ray_distance(
            torch.from_numpy(gt.reshape(-1)), torch.from_numpy(np.asarray(camera.K)), torch.from_numpy(pixels)
        ).numpy().reshape(gt.shape)
        both = (gt > 0) & (view.ray_depth > 0)
        if both.any():
            depth_error = float(np.median(np.abs(gt_ray[both] - view.ray_depth[both])))
    return ViewFigure(
        image=image,
        semantics=label_colors(view.labels, palette),
        depth=depth_colors(view.depth, max_depth),
        opacity=gray(view.opacity),
        gt_semantics=gt_semantics,
        gt_depth=gt_depth,
        depth_abs_error_median=depth_error,
        pixel_accuracy=accuracy,
    )


def write_view_figure(out_dir: str | Path, stem: str, figure: ViewFigure) -> list[Path]:
    """Write ``STEM.png`` (the composed figure) and ``STEM_{image,semantics,depth,opacity,gt_semantics,
    gt_depth}.png`` atomically; returns the written paths."""
    out_dir = Path(out_dir)
    written = [atomic_write_bytes(out_dir / f"{stem}.png", png_bytes(figure.compose()))]
    for name in ("image", "semantics", "depth", "opacity", "gt_semantics", "gt_depth"):
        panel = getattr(figure, name)
        if panel is not None:
            written.append(atomic_write_bytes(out_dir / f"{stem}_{name}.png", png_bytes(panel)))
    return written
