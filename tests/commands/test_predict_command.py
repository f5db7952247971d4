"""`nerfseg predict` on bad input: one clear line, exit 1, checked before the model runs, nothing written."""

from __future__ import annotations

import pytest
import torch

from kitti_testing import write_tree
from nerfseg.cli import main
from nerfseg.config import load_config
from nerfseg.data.labelmaps import SEMANTICKITTI
from nerfseg.engine.checkpoint import MODEL_KIND, save_checkpoint
from nerfseg.models.segmentor import LidarSegmentor
from nerfseg.typed_config import dataclass_to_dict
from train_testing import TINY_SEGMENTOR_OVERRIDES


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(data root with sequence 08, an inference export model.pt of a tiny untrained segmentor)."""
    tmp = tmp_path_factory.mktemp("predict")
    write_tree(tmp / "data", {"08": 2}, points_per_scan=50)
    cfg = load_config(None, TINY_SEGMENTOR_OVERRIDES)
    torch.manual_seed(0)
    model = LidarSegmentor(cfg.model.segmentor, SEMANTICKITTI.num_classes)
    path = save_checkpoint(tmp / "model.pt", {
        "kind": MODEL_KIND, "config": dataclass_to_dict(cfg), "num_classes": SEMANTICKITTI.num_classes,
        "class_names": list(SEMANTICKITTI.class_names), "model": model.state_dict(),
    })  # fmt: skip
    return tmp / "data", path


def _one_error(capsys, *needles):
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("nerfseg predict: error: "), captured.err
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "predicted" not in captured.out
    return lines[0]


def test_predicts_and_the_options_are_checked(setup, tmp_path, capsys):
    data, model = setup
    out = tmp_path / "pred"
    base = ["predict", str(model), "--data", str(data), "--no-progress"]
    assert main([*base, "--out", str(out)]) == 0
    assert sorted(p.name for p in (out / "sequences" / "08" / "predictions").iterdir()) == [
        "000000.label", "000001.label"]  # fmt: skip
    capsys.readouterr()
    for option, value, message in [
        ("--batch-size", "0", "--batch-size must be >= 1, got 0"),
        ("--workers", "-1", "--workers must be >= 0, got -1"),
        ("--threads", "-2", "--threads must be >= 0, got -2"),
        ("--split", "nosuch", "unknown SemanticKITTI split 'nosuch'; choose one of train, val, test"),
    ]:
        assert main([*base, "--out", str(tmp_path / "other"), option, value]) == 1
        _one_error(capsys, message)
    assert not (tmp_path / "other" / "sequences").exists()


def test_an_output_that_is_a_file(setup, tmp_path, capsys):
    data, model = setup
    afile = tmp_path / "afile"
    afile.write_text("keep")
    base = ["predict", str(model), "--data", str(data), "--no-progress"]
    assert main([*base, "--out", str(afile)]) == 1
    _one_error(capsys, f"{afile}: --out must be a folder, but this is a file")
    assert main([*base, "--out", str(afile / "pred")]) == 1
    _one_error(capsys, "--out: cannot create this folder", f"{afile} is a file")
    assert afile.read_text() == "keep"


def test_a_corrupt_checkpoint_says_so_without_torch_advice(setup, tmp_path, capsys):
    data, model = setup
    truncated = tmp_path / "model.pt"
    truncated.write_bytes(model.read_bytes()[:4000])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all\n" * 10)
    for path, problem in [(truncated, "the file is corrupt or truncated"),
                          (garbage, "the file is corrupt or not a PyTorch file")]:  # fmt: skip
        argv = ["predict", str(path), "--data", str(data), "--no-progress", "--out", str(tmp_path / "p")]
        assert main(argv) == 1
        line = _one_error(capsys, f"{path}: not a readable checkpoint: {problem}")
        assert "weights_only" not in line and "trust" not in line
