"""Rendering a camera view through the head: an analytic wall gives its z-depth and class at every pixel;
the figure scores it against ground-truth PNGs and writes the panels."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import nn

from nerfseg.data.labelmaps import SEMANTICKITTI
from nerfseg.data.sample import CameraFrame
from nerfseg.models.nerf import NerfConfig, NerfHead
from nerfseg.models.nerf.field import VoxelGrid
from nerfseg.viz.render_figure import render_camera_view, view_figure, write_view_figure

VOXEL = 0.2
WALL_X = 10.0  # voxels i = 50..52 cover x in [10.0, 10.6)
CLASS = 2  # motorcycle, raw id 15


class WallField(nn.Module):
    def forward(self, features, positions):
        occupancy = features[:, :1]
        return 1000.0 * occupancy[:, 0], 10.0 * features[:, 1:] / occupancy.clamp_min(1e-6)


def _wall_grid(num_classes: int) -> VoxelGrid:
    i, j, k = torch.meshgrid(
        torch.arange(50, 53), torch.arange(-40, 40), torch.arange(-40, 40), indexing="ij"
    )
    coords = torch.stack([torch.zeros_like(i), i, j, k], dim=-1).reshape(-1, 4)
    feats = torch.zeros(coords.shape[0], 1 + num_classes)
    feats[:, 0] = 1.0
    feats[:, 1 + CLASS] = 1.0
    return VoxelGrid(coords, feats, VOXEL)


def _camera(tmp_path, width=64, height=48) -> CameraFrame:
    lidar_to_cam = np.eye(4)
    lidar_to_cam[:3, :3] = [[0, -1, 0], [0, 0, -1], [1, 0, 0]]  # LiDAR x forward -> camera z
    lidar_to_cam[:3, 3] = [0.0, 0.1, -0.3]  # camera centre 0.3 m ahead of the LiDAR, 0.1 m above
    image_path = tmp_path / "image.png"
    Image.fromarray(np.full((height, width, 3), 128, np.uint8)).save(image_path)
    semantic = np.full((height, width), 15, np.uint16)  # raw 15 = motorcycle = train id 2
    semantic[:, : width // 4] = 10  # car: wrong on a quarter of the image
    Image.fromarray(semantic).save(tmp_path / "semantic.png")
    depth_mm = np.full((height, width), int((WALL_X - 0.3) * 1000), np.uint16)
    Image.fromarray(depth_mm).save(tmp_path / "depth.png")
    K = np.array([[40.0, 0, width / 2], [0, 40.0, height / 2], [0, 0, 1]])
    return CameraFrame(
        "image_2",
        image_path,
        K,
        lidar_to_cam,
        0.0,
        (width, height),
        semantic_path=tmp_path / "semantic.png",
        depth_path=tmp_path / "depth.png",
    )


def test_wall_renders_its_z_depth_and_class(tmp_path):
    num_classes = SEMANTICKITTI.num_classes
    head = NerfHead(
        NerfConfig(near=0.5, far=30.0, samples_per_ray=256, chunk_rays=500), 1 + num_classes, num_classes
    )
    head.field = WallField()
    head.eval()
    camera = _camera(tmp_path)
    view = render_camera_view(head, _wall_grid(num_classes), camera, stride=2)
    assert view.labels.shape == (24, 32)
    assert (view.opacity > 0.999).all()
    # The wall is perpendicular to the optical axis: z-depth = 10 m - 0.3 m everywhere (within a voxel).
    assert np.abs(view.depth - (WALL_X - 0.3)).max() < VOXEL
    assert (view.labels == CLASS).all()
    figure = view_figure(view, camera, SEMANTICKITTI.colors, SEMANTICKITTI.to_train, max_depth=50.0)
    assert abs(figure.pixel_accuracy - 0.75) < 1e-9
    assert figure.depth_abs_error_median < VOXEL
    paths = write_view_figure(tmp_path / "out", "08_000001_image_2", figure)
    assert [p.name for p in paths][:2] == ["08_000001_image_2.png", "08_000001_image_2_image.png"]
    composed = np.asarray(Image.open(paths[0]))
    assert composed.shape[1] == 2 * 32 + 4 and composed.shape[0] > 3 * 24
    semantics = np.asarray(Image.open(tmp_path / "out" / "08_000001_image_2_semantics.png"))
    assert (semantics == SEMANTICKITTI.colors[CLASS]).all()
