"""`nerfseg render` end to end on a one-frame simulated scan with a checkpoint built in the test (untrained
weights: the command's plumbing, outputs and errors are checked, not the picture)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from nerfseg.cli import main
from nerfseg.config import Config, dataclass_to_dict
from nerfseg.data.labelmaps import SEMANTICKITTI
from nerfseg.engine.checkpoint import MODEL_KIND, save_checkpoint
from nerfseg.geometry.rays import PixelGrid
from nerfseg.models.nerf import NerfHead
from nerfseg.models.segmentor import LidarSegmentor
from nerfseg.ssl.config import Method


@pytest.fixture(scope="module")
def sim_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim")
    code = main(
        ["simulate", str(root), "--frames", "1", "--sequences", "08", "--no-progress",
         "--set", "lidar.azimuth_steps=128", "--set", "camera.image_scale=0.125"]
    )  # fmt: skip
    assert code == 0
    return root


def _checkpoint(path, with_head: bool = True):
    cfg = Config()
    cfg.model.segmentor.preset = "tiny"
    cfg.model.segmentor.voxel_size = 0.3
    cfg.method = Method.GEOMETRY
    cfg.model.nerf.samples_per_ray = 64
    torch.manual_seed(0)
    model = LidarSegmentor(cfg.model.segmentor, SEMANTICKITTI.num_classes)
    payload = {
        "kind": MODEL_KIND,
        "config": dataclass_to_dict(cfg),
        "num_classes": SEMANTICKITTI.num_classes,
        "class_names": list(SEMANTICKITTI.class_names),
        "model": model.state_dict(),
    }
    if with_head:
        head = NerfHead(cfg.model.nerf, model.voxel_feature_channels, SEMANTICKITTI.num_classes)
        payload["nerf_head"] = head.state_dict()
    save_checkpoint(path, payload)
    return path


def test_render_writes_figure_and_panels(sim_root, tmp_path, capsys, one_thread):
    ckpt = _checkpoint(tmp_path / "ckpt.pt")
    out = tmp_path / "render"
    args = ["render", str(ckpt), "--data", str(sim_root), "--frame", "08/000000", "--out", str(out)]
    assert main([*args, "--stride", "2", "--chunk", "100"]) == 0
    printed = capsys.readouterr().out
    assert "image_2: mean opacity" in printed and "pixel accuracy" in printed
    names = sorted(p.name for p in out.iterdir())
    stem = "08_000000_image_2"
    expected = [f"{stem}.png"] + [
        f"{stem}_{n}.png" for n in ("depth", "gt_depth", "gt_semantics", "image", "opacity", "semantics")
    ]
    assert names == sorted(expected)
    camera_image = np.asarray(Image.open(sim_root / "sequences/08/image_2/000000.png"))
    panel = np.asarray(Image.open(out / f"{stem}_depth.png"))
    # The reduced grid: one pixel per 2 x 2 block whose centre pixel lies inside the image.
    assert panel.shape == (*PixelGrid(camera_image.shape[1], camera_image.shape[0], 2).shape, 3)
    assert panel.shape == (camera_image.shape[0] // 2, camera_image.shape[1] // 2, 3)  # ceil((n - 1) / 2)


def test_render_errors_name_the_problem(sim_root, tmp_path, capsys):
    no_head = _checkpoint(tmp_path / "no_head.pt", with_head=False)
    args = ["--data", str(sim_root), "--frame", "08/000000", "--out", str(tmp_path / "o")]
    assert main(["render", str(no_head), *args]) == 1
    assert "no_head.pt: holds no NeRF head" in capsys.readouterr().err
    ckpt = _checkpoint(tmp_path / "ckpt.pt")
    assert main(["render", str(ckpt), "--data", str(sim_root), "--frame", "08/000999", "--out", "x"]) == 1
    assert "frame '08/000999' not found" in capsys.readouterr().err
