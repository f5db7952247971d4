"""The appearance gate (``ssl.camera.appearance``): targets projected from the labeled scans, the net and the
gate (composed into the camera step in tests/ssl/test_methods.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from nerfseg.data.sample import IGNORE_INDEX, CameraFrame, Sample
from nerfseg.geometry.rays import PixelGrid
from nerfseg.models.appearance import AppearanceNet, grid_probs
from nerfseg.ssl.appearance import (
    _random_crop,
    appearance_gate,
    labeled_views,
    projected_cell_labels,
    train_appearance_net,
)
from nerfseg.ssl.config import AppearanceConfig

K = np.array([[10.0, 0.0, 20.0], [0.0, 10.0, 10.0], [0.0, 0.0, 1.0]])


def _camera(image=None, size=(40, 20)) -> CameraFrame:
    """A camera whose frame is the LiDAR frame (z forward), 40 x 20 pixels, focal 10, centre (20, 10)."""
    return CameraFrame("cam", None, K, np.eye(4), 0.0, size, image=image)


def test_projected_cell_labels_hand_computed():
    # (x, y, z) -> pixel (10 x / z + 20, 10 y / z + 10); stride-4 cells: col // 4, row // 4
    xyz = torch.tensor([
        [0.0, 0.0, 5.0],     # pixel (20, 10) -> cell (row 2, col 5), label 1, depth 5
        [0.0, 0.0, 10.0],    # same cell, deeper: hidden, label 3 loses
        [0.0, 0.0, 2.0],     # same cell, nearest, but unlabeled: ignored
        [0.0, 0.0, -5.0],    # behind the camera
        [-1.0, -0.5, 5.0],   # pixel (18, 9) -> cell (2, 4), label 4
        [30.0, 0.0, 5.0],    # pixel (80, 10): outside the image
    ])
    labels = torch.tensor([1, 3, IGNORE_INDEX, 6, 4, 7])
    grid = PixelGrid(40, 20, 4)
    out = projected_cell_labels(xyz, labels, _camera(), grid)
    expected = torch.full(grid.shape, IGNORE_INDEX, dtype=torch.int64)
    expected[2, 5] = 1
    expected[2, 4] = 4
    assert grid.shape == (5, 10)
    assert torch.equal(out, expected)
    # the nearest labeled point wins whatever the order of the points
    perm = torch.tensor([1, 5, 0, 3, 4, 2])
    assert torch.equal(projected_cell_labels(xyz[perm], labels[perm], _camera(), grid), expected)
    with pytest.raises(ValueError, match="expected xyz"):
        projected_cell_labels(xyz, labels[:2], _camera(), grid)


def test_appearance_gate_hand_computed():
    labels = torch.tensor([[0, 1, IGNORE_INDEX], [2, 2, 1]])
    probs = torch.zeros(2, 3, 3)
    probs[..., 0] = 1.0  # argmax 0 everywhere ...
    probs[1, 0] = torch.tensor([0.1, 0.2, 0.7])  # ... but class 2 at (1, 0)
    probs[1, 2] = torch.tensor([0.2, 0.5, 0.3])  # ... and class 1 at (1, 2)
    gated = appearance_gate(labels, probs)
    assert torch.equal(gated, torch.tensor([[0, IGNORE_INDEX, IGNORE_INDEX], [2, IGNORE_INDEX, 1]]))
    with pytest.raises(ValueError, match="same grid"):
        appearance_gate(labels, probs[:1])


def test_grid_probs_averages_the_stride4_cells_of_a_coarser_grid():
    torch.manual_seed(0)
    net = AppearanceNet(5, width=8).eval()
    image = torch.randint(0, 256, (36, 52, 3), dtype=torch.uint8)
    with torch.no_grad():
        raw = torch.softmax(net(image.permute(2, 0, 1).unsqueeze(0)), dim=1)[0].permute(1, 2, 0)
        fine = grid_probs(net, image, PixelGrid(52, 36, 4))
        coarse = grid_probs(net, image, PixelGrid(52, 36, 8))
    assert raw.shape[:2] == (9, 13)  # ceil(36 / 4), ceil(52 / 4)
    assert fine.shape == (9, 13, 5) and torch.allclose(fine, raw)
    assert coarse.shape == (4, 6, 5)
    assert torch.allclose(coarse.sum(-1), torch.ones(4, 6))
    for j in range(4):
        for i in range(6):
            block = raw[2 * j:2 * j + 2, 2 * i:2 * i + 2].mean(dim=(0, 1))
            assert torch.allclose(coarse[j, i], block, atol=1e-6)
    with pytest.raises(ValueError, match="multiple of 4"):
        grid_probs(net, image, PixelGrid(52, 36, 6))
    with pytest.raises(ValueError, match="does not match"):
        grid_probs(net, image[:32], PixelGrid(52, 36, 4))


def _striped_view(rng: np.random.Generator, height: int = 48, width: int = 64):
    """An image of vertical stripes, red (class 2) or green (class 5), at random places, and its stride-4
    targets: colour alone tells the classes apart (the row does not)."""
    image = np.zeros((height, width, 3), dtype=np.uint8)
    target = torch.empty(height // 4, width // 4, dtype=torch.int64)
    for c in range(width // 4):
        red = bool(rng.random() < 0.5)
        image[:, 4 * c:4 * c + 4] = (200, 30, 30) if red else (30, 200, 30)
        target[:, c] = 2 if red else 5
    image = np.clip(image.astype(np.int16) + rng.integers(-20, 20, image.shape), 0, 255).astype(np.uint8)
    return torch.as_tensor(image), target


def test_the_net_learns_a_class_that_only_colour_tells_apart(one_thread):
    rng = np.random.default_rng(0)
    views = [_striped_view(rng) for _ in range(4)]
    cfg = AppearanceConfig(steps=60, views_per_step=4, crop_height=32, crop_width=48, lr=5e-3, width=8)
    torch.manual_seed(0)
    net = AppearanceNet(6, cfg.width)
    losses = train_appearance_net(net, views, cfg, seed=0)
    assert len(losses) == 60 and losses[-1] < 0.5 * losses[0]
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    image, target = _striped_view(np.random.default_rng(1))
    with torch.no_grad():
        predicted = grid_probs(net, image, PixelGrid(64, 48, 4)).argmax(-1)
    assert float((predicted == target[:predicted.shape[0], :predicted.shape[1]]).float().mean()) > 0.9
    with pytest.raises(ValueError, match="no labeled camera view"):
        train_appearance_net(net, [], cfg, seed=0)



def test_crops_span_whole_cells_where_the_image_size_is_not_a_multiple_of_4(one_thread):
    """KITTI's images are 1242 x 375: the grid's last row of cells is partial (94 cells span 376 rows). Every
    crop must still be 4 x its cells in pixels (else the training batch cannot be stacked), the pixels inside
    the image copied and the missing ones the image's last row."""
    h_px, w_px = 47, 62
    grid = PixelGrid(w_px, h_px, 4)
    image = torch.arange(h_px * w_px * 3).remainder(251).to(torch.uint8).view(h_px, w_px, 3)
    target = torch.zeros(grid.shape, dtype=torch.int64)
    assert grid.shape == (12, 15)  # 48 > 47 rows of cells' pixels: the last row of cells is partial
    gen = torch.Generator().manual_seed(0)
    seen_last_row = False
    for _ in range(50):
        img, tgt = _random_crop(image, target, 32, 48, gen)
        assert tuple(tgt.shape) == (8, 12) and tuple(img.shape) == (32, 48, 3)
        # the crop is one of the lattice crops (flipped or not), its missing rows the image's last row
        candidates = []
        for j in range(12 - 8 + 1):
            for i in range(15 - 12 + 1):
                rows = torch.arange(4 * j, 4 * j + 32).clamp(max=h_px - 1)
                expected = image[rows][:, 4 * i:4 * i + 48]
                for flipped in (False, True):
                    if torch.equal(img, expected.flip(1) if flipped else expected):
                        candidates.append(j)
        assert len(candidates) == 1
        j = candidates[0]
        seen_last_row |= 4 * j + 32 > h_px
    assert seen_last_row
    cfg = AppearanceConfig(steps=3, views_per_step=6, crop_height=32, crop_width=48, width=8)
    torch.manual_seed(0)
    losses = train_appearance_net(AppearanceNet(3, cfg.width), [(image, target)] * 2, cfg, seed=0)
    assert len(losses) == 3

@dataclass
class _Source:
    """Labeled scans of one point in front of each of their cameras; counts the scans it reads."""

    scans: int
    cameras: int
    reads: list[int] = field(default_factory=list)

    def __len__(self):
        return self.scans

    def __getitem__(self, index):
        self.reads.append(index)
        image = np.full((20, 40, 3), index, dtype=np.uint8)
        cameras = [_camera(image) for _ in range(self.cameras)]
        return Sample(f"s{index}", np.array([[0.0, 0.0, 5.0, 0.0]], dtype=np.float32),
                      np.array([index % 3], dtype=np.int64), 0.0, cameras)


def test_labeled_views_read_only_the_labeled_scans_and_stop_at_max_views():
    source = _Source(scans=10, cameras=2)
    views = labeled_views(source, [1, 4, 7], max_views=64, seed=0)
    assert sorted(set(source.reads)) == [1, 4, 7] and len(views) == 6
    for image, target in views:
        assert image.shape == (20, 40, 3) and target.shape == (5, 10)
        assert int((target != IGNORE_INDEX).sum()) == 1 and int(target[2, 5]) == int(image[0, 0, 0]) % 3
    source = _Source(scans=10, cameras=2)
    views = labeled_views(source, [1, 4, 7], max_views=3, seed=0)
    assert len(views) == 3 and len(source.reads) == 2  # two scans give the three views
    again = labeled_views(_Source(scans=10, cameras=2), [1, 4, 7], max_views=3, seed=0)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(views, again, strict=True))


def test_the_gate_path_on_a_real_kitti_frame(real_data, one_thread):
    """Composed on KITTI object 000008 (1242 x 375, the size of every SemanticKITTI image): the labeled view's
    targets from its real scan and calibration, a few training steps on crops that reach the partial last row
    of cells, and the net's probabilities on the stride-4 and stride-8 grids the presets use, each of the
    grid's shape. KITTI object frames have no point labels: a height band stands in for the classes (ground
    below -1.4 m, 0; else 1)."""
    import json

    folder = real_data / "kitti_object_000008"
    info = json.loads((folder / "000008.calib.json").read_text())["data_list"][0]
    velo_to_cam = np.array(info["lidar_points"]["Tr_velo_to_cam"], dtype=np.float64)
    rect = np.array(info["images"]["R0_rect"], dtype=np.float64)
    p2 = np.array(info["images"]["CAM2"]["cam2img"], dtype=np.float64)[:3]
    shift = np.eye(4)
    shift[:3, 3] = np.linalg.solve(p2[:, :3], p2[:, 3])
    lidar_to_cam = shift @ rect @ velo_to_cam
    camera = CameraFrame("image_2", folder / "000008.png", p2[:, :3], lidar_to_cam, 0.0, (1242, 375))
    points = np.fromfile(folder / "000008.bin", dtype=np.float32).reshape(-1, 4)
    labels = (points[:, 2] > -1.4).astype(np.int64)

    class _One:
        def __len__(self):
            return 1

        def __getitem__(self, index):
            return Sample("000008", points, labels, 0.0, [camera])

    views = labeled_views(_One(), [0], max_views=4, seed=0)
    assert len(views) == 1
    image, target = views[0]
    assert tuple(image.shape) == (375, 1242, 3) and tuple(target.shape) == PixelGrid(1242, 375, 4).shape
    labeled = target[target != IGNORE_INDEX]
    assert labeled.numel() > 1000 and set(labeled.tolist()) == {0, 1}
    cfg = AppearanceConfig(steps=4, views_per_step=6, crop_height=256, crop_width=384, width=8)
    torch.manual_seed(0)
    net = AppearanceNet(2, cfg.width)
    assert len(train_appearance_net(net, views, cfg, seed=0)) == 4
    with torch.no_grad():
        for stride in (4, 8):
            grid = PixelGrid(1242, 375, stride)
            probs = grid_probs(net, image, grid)
            assert tuple(probs.shape) == (*grid.shape, 2)
            assert torch.allclose(probs.sum(-1), torch.ones(grid.shape), atol=1e-5)
