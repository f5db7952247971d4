"""`nerfseg render` on the wrong checkpoint or output: one line saying what to pass instead, checked before
any rendering."""

from __future__ import annotations

import pytest
import torch

from nerfseg.cli import main
from nerfseg.config import Config, dataclass_to_dict
from nerfseg.data.labelmaps import SEMANTICKITTI
from nerfseg.engine.checkpoint import MODEL_KIND, TRAIN_KIND, capture_rng_state, save_checkpoint
from nerfseg.models.nerf import NerfHead
from nerfseg.models.segmentor import LidarSegmentor
from nerfseg.ssl.config import Method


def _checkpoint(path, kind: str, method: Method, with_head: bool):
    cfg = Config()
    cfg.model.segmentor.preset = "tiny"
    cfg.model.segmentor.voxel_size = 0.3
    cfg.method = method
    torch.manual_seed(0)
    model = LidarSegmentor(cfg.model.segmentor, SEMANTICKITTI.num_classes)
    payload = {"kind": kind, "config": dataclass_to_dict(cfg), "num_classes": SEMANTICKITTI.num_classes,
               "class_names": list(SEMANTICKITTI.class_names), "model": model.state_dict()}  # fmt: skip
    if kind == TRAIN_KIND:
        payload.update(step=1, optimizer={}, scheduler={}, rng=capture_rng_state())
    if with_head:
        head = NerfHead(cfg.model.nerf, model.voxel_feature_channels, SEMANTICKITTI.num_classes)
        payload["nerf_head"] = head.state_dict()
    return save_checkpoint(path, payload)


def _one_error(capsys, *needles):
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("nerfseg render: error: "), captured.err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _render(checkpoint, out, data="nowhere", *extra):
    return main(["render", str(checkpoint), "--data", str(data), "--frame", "08/000000", "--out", str(out),
                 *extra])  # fmt: skip


def test_inference_export_names_the_training_checkpoint(tmp_path, capsys):
    export = _checkpoint(tmp_path / "model.pt", MODEL_KIND, Method.NERF, with_head=False)
    assert _render(export, tmp_path / "r") == 1
    line = _one_error(capsys, f"{export}: holds no NeRF head", "LiDAR-only inference export",
                      "pass the run's training checkpoint RUN/checkpoints/last.pt")  # fmt: skip
    assert "train with" not in line and "enable" not in line  # the run did train one: nothing to enable
    assert not (tmp_path / "r").exists()


def test_runs_without_a_head_say_so(tmp_path, capsys):
    export = _checkpoint(tmp_path / "model.pt", MODEL_KIND, Method.SUPERVISED, with_head=False)
    assert _render(export, tmp_path / "r") == 1
    _one_error(capsys, "LiDAR-only inference export", "method 'supervised' trains no NeRF head",
               "geometry or a nerf method")  # fmt: skip
    last = _checkpoint(tmp_path / "last.pt", TRAIN_KIND, Method.MEAN_TEACHER, with_head=False)
    assert _render(last, tmp_path / "r") == 1
    line = _one_error(capsys, f"{last}: holds no NeRF head: its run's method 'mean-teacher' trains no NeRF")
    assert "inference export" not in line


def test_output_and_options_checked_before_the_work(tmp_path, capsys):
    """--out is checked before the scan is read or rendered (the data folder here does not even exist)."""
    last = _checkpoint(tmp_path / "last.pt", TRAIN_KIND, Method.GEOMETRY, with_head=True)
    afile = tmp_path / "afile"
    afile.write_text("keep")
    assert _render(last, afile) == 1
    _one_error(capsys, f"{afile}: --out must be a folder, but this is a file")
    assert _render(last, afile / "sub") == 1
    _one_error(capsys, "--out: cannot create this folder", f"{afile} is a file")
    assert _render(last, tmp_path / "r", "nowhere", "--stride", "0") == 1
    _one_error(capsys, "--stride must be >= 1, got 0")
    assert _render(last, tmp_path / "r", "nowhere", "--max-depth", "0") == 1
    _one_error(capsys, "--max-depth must be > 0 metres, got 0.0")
    assert afile.read_text() == "keep"
    assert _render(last, tmp_path / "r", tmp_path / "nowhere") == 1  # a good output: now the data fails
    assert "nowhere" in _one_error(capsys)


@pytest.mark.parametrize("content", [b"", b"garbage" * 20])
def test_corrupt_checkpoint(tmp_path, capsys, content):
    bad = tmp_path / "last.pt"
    bad.write_bytes(content)
    assert _render(bad, tmp_path / "r") == 1
    line = _one_error(capsys, f"{bad}: not a readable checkpoint: the file is corrupt")
    assert "weights_only" not in line
