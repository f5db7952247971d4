"""The camera-ray self-supervision path composed end to end on an analytic scene with known classes:

rays through ``pixel_grid`` -> teacher render (``render_chunked``) -> ``fuse_pseudo_labels`` with a mask-id
image read by ``read_at_pixels`` -> ``sample_rays`` -> student render of exactly the drawn rays
(``bundle[idx]``). Each pseudo-label must land on the pixel whose ray was rendered: checked against the
analytic class, depth and ray of the full-resolution pixel computed here independently of the library
(reduced pixel (i, j) = full-res pixel (stride * i + stride // 2, stride * j + stride // 2), ray through its
centre). Mutations checked by hand to make it fail: (row, col) from the sampler, rays without the + 0.5,
the grid without the stride // 2 offset, fusion without the opacity gate (the faint fog box), a
(row, col) flat index for ``bundle[idx]``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from nerfseg.data.sample import IGNORE_INDEX, CameraFrame
from nerfseg.geometry.rays import PixelGrid, camera_ray_bundle, read_at_pixels
from nerfseg.models.nerf import NerfConfig, NerfHead
from nerfseg.models.nerf.field import VoxelGrid
from nerfseg.ssl.fusion import fuse_pseudo_labels
from nerfseg.ssl.ray_sampler import pixel_flat_index, sample_rays

VOXEL = 0.2
NUM_CLASSES = 4
WIDTH, HEIGHT, STRIDE = 48, 30, 3
# Axis-aligned boxes in the LiDAR frame (x forward, y left, z up), metres: (min corner, max corner, class).
BOXES = [
    (np.array([6.0, 0.2, -0.2]), np.array([6.6, 4.0, 3.0]), 1),  # near box, upper left of the image
    (np.array([10.0, -12.0, -6.0]), np.array([10.6, 12.0, 2.4]), 3),  # far wall; sky above it
]
# A faint "fog" box of class 2 in front of the sky, upper right: its rays stay transparent (opacity ~0.2)
# although their normalised class distribution is confidently class 2. Not a surface: no label belongs there.
FOG = (np.array([4.0, -3.0, 1.6]), np.array([4.4, -0.4, 2.8]), 2)
FOG_OCCUPANCY = 0.0005  # density 1000 * 0.0005 = 0.5 / m
CAM_CENTRE = np.array([0.3, -0.1, 0.2])  # camera centre in the LiDAR frame


class OneHotField(nn.Module):
    """Stub field: density 1000 / m times the interpolated occupancy channel, logits from the one-hot class
    channels normalised by the occupancy (sharp classes where any voxel is near)."""

    def forward(self, features, positions):
        occupancy = features[:, :1]
        return 1000.0 * occupancy[:, 0].float(), 10.0 * features[:, 1:] / occupancy.clamp_min(1e-6)


def _scene_grid() -> VoxelGrid:
    coords, feats = [], []
    for lo, hi, cls in [*BOXES, FOG]:
        lo_i, hi_i = np.round(lo / VOXEL).astype(int), np.round(hi / VOXEL).astype(int)
        axes = [torch.arange(a, b) for a, b in zip(lo_i, hi_i, strict=True)]
        i, j, k = torch.meshgrid(*axes, indexing="ij")
        c = torch.stack([torch.zeros_like(i), i, j, k], dim=-1).reshape(-1, 4)
        f = torch.zeros(c.shape[0], 1 + NUM_CLASSES)
        occupancy = FOG_OCCUPANCY if cls == FOG[2] else 1.0
        f[:, 0] = occupancy
        f[:, 1 + cls] = occupancy
        coords.append(c)
        feats.append(f)
    return VoxelGrid(torch.cat(coords), torch.cat(feats), VOXEL)


def _camera() -> CameraFrame:
    rotation = np.array([[0.0, -1, 0], [0, 0, -1], [1, 0, 0]])  # LiDAR x forward -> camera z
    lidar_to_cam = np.eye(4)
    lidar_to_cam[:3, :3] = rotation
    lidar_to_cam[:3, 3] = -rotation @ CAM_CENTRE
    K = np.array([[20.0, 0, WIDTH / 2], [0, 20.0, HEIGHT / 2], [0, 0, 1]])
    return CameraFrame("cam", None, K, lidar_to_cam, 0.0, (WIDTH, HEIGHT))


def _analytic(camera: CameraFrame, uv: np.ndarray):
    """First box hit by the ray through continuous pixel coordinates uv (P, 2): (object index or -1, class or
    IGNORE_INDEX, distance in metres or inf, unit direction (P, 3) in the LiDAR frame)."""
    dirs_cam = np.concatenate([uv, np.ones((len(uv), 1))], axis=1) @ np.linalg.inv(camera.K).T
    dirs = dirs_cam @ camera.lidar_to_cam[:3, :3]  # R^T d
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    best_t = np.full(len(uv), np.inf)
    best_obj = np.full(len(uv), -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        for index, (lo, hi, _) in enumerate(BOXES):
            t1, t2 = (lo - CAM_CENTRE) / dirs, (hi - CAM_CENTRE) / dirs
            enter = np.nanmax(np.minimum(t1, t2), axis=1)
            leave = np.nanmin(np.maximum(t1, t2), axis=1)
            hit = (enter <= leave) & (enter > 0) & (enter < best_t)
            best_t[hit], best_obj[hit] = enter[hit], index
    classes = np.array([cls for _, _, cls in BOXES] + [IGNORE_INDEX])[best_obj]
    return best_obj, classes, best_t, dirs


def test_pseudo_labels_land_on_the_pixel_whose_ray_was_rendered():
    camera = _camera()
    head = NerfHead(NerfConfig(near=0.5, far=20.0, samples_per_ray=384), 1 + NUM_CLASSES, NUM_CLASSES)
    head.field = OneHotField()
    volume = _scene_grid()

    # Full-resolution analytic object ids = the "masks" (one mask per object, sky in no mask).
    cols, rows = np.meshgrid(np.arange(WIDTH), np.arange(HEIGHT))
    full_uv = np.stack([cols.reshape(-1), rows.reshape(-1)], axis=1) + 0.5
    objects, _, _, _ = _analytic(camera, full_uv)
    mask_image = torch.from_numpy(objects.reshape(HEIGHT, WIDTH))

    # Teacher: render the reduced grid, no gradients.
    grid = PixelGrid(WIDTH, HEIGHT, STRIDE)
    h, w = grid.shape
    assert (h, w) == (10, 16)
    bundle = camera_ray_bundle(camera, grid.pixels, scan=0, camera_index=0, device="cpu")
    head.eval()
    teacher = head.render_chunked(volume, bundle, chunk_rays=97)
    ids = read_at_pixels(mask_image, grid.pixels).view(h, w)
    labels, confidence = fuse_pseudo_labels(
        teacher.probs.view(h, w, -1), teacher.opacity.view(h, w), ids, tau_mask=0.5, tau_pix=0.9
    )
    # Draw every labeled pixel (budget above their number), weighted, without replacement.
    drawn, drawn_labels = sample_rays(labels, confidence, 10_000, torch.Generator().manual_seed(0))
    num_labeled = int((labels != IGNORE_INDEX).sum())
    assert drawn.shape == (num_labeled, 2) and num_labeled > 0.6 * h * w

    # Student: render exactly the drawn rays, in training mode (perturbed samples).
    flat = pixel_flat_index(drawn, w)
    student_bundle = bundle[flat]
    head.train()
    student = head.render(volume, student_bundle, generator=torch.Generator().manual_seed(1))

    # Independently: drawn reduced pixel (i, j) is full-res pixel (3 i + 1, 3 j + 1); its ray through the
    # pixel centre; its analytic class and first-surface distance, and whether the 1-pixel neighbourhood
    # sees the same object (edge pixels: rendered depth may blend two surfaces).
    full = drawn.numpy() * STRIDE + STRIDE // 2
    _, classes, distance, dirs = _analytic(camera, full + 0.5)
    neighbours = [_analytic(camera, full + 0.5 + np.array(o))[0] for o in ((1, 0), (-1, 0), (0, 1), (0, -1))]
    centre_objects = _analytic(camera, full + 0.5)[0]
    interior = np.all([n == centre_objects for n in neighbours], axis=0)
    assert interior.sum() > 0.7 * len(full)

    # 1. Each pseudo-label is the analytic class of the pixel whose ray was drawn.
    assert (classes != IGNORE_INDEX).all()  # no label on sky (transparent rays)
    assert set(classes.tolist()) == {1, 3}
    sky = _analytic(camera, grid.pixels.numpy() + 0.5)[1] == IGNORE_INDEX
    assert sky.sum() >= 2 * w and (labels.reshape(-1)[torch.from_numpy(sky)] == IGNORE_INDEX).all()
    fogged = sky & (teacher.opacity.numpy() > 0.05)
    assert fogged.sum() >= 10 and (teacher.probs.max(1).values.numpy()[fogged] > 0.9).all()
    assert (teacher.opacity.numpy()[fogged] < 0.5).all()
    assert np.array_equal(drawn_labels.numpy(), classes)
    assert torch.equal(student_bundle.pixels, torch.from_numpy(full))
    # 2. The student's ray is the ray through that pixel's centre, from the camera centre.
    np.testing.assert_allclose(student_bundle.directions.numpy(), dirs, atol=1e-5)
    origins = np.broadcast_to(CAM_CENTRE, dirs.shape)
    np.testing.assert_allclose(student_bundle.origins.numpy(), origins, atol=1e-5)
    # 3. It hits the surface the teacher's ray hit: same depth (within the stratification jitter) and the
    #    analytic first surface on interior pixels (within a voxel, along the ray).
    teacher_depth = teacher.depth[flat] / teacher.opacity[flat]
    student_depth = (student.depth / student.opacity.clamp_min(1e-6)).detach()
    assert (student.opacity.detach() > 0.99).all()
    assert float((student_depth - teacher_depth).abs().max()) < VOXEL
    error = np.abs(student_depth.numpy() - distance)[interior]
    assert error.max() < 1.5 * VOXEL, error.max()
    # 4. The student's rendered class is the pseudo-label it is trained towards, on interior pixels.
    assert np.array_equal(student.probs.detach().argmax(1).numpy()[interior], classes[interior])
