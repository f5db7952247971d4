"""`nerfseg masks` on bad input: one clear line, exit 1, before any image, nothing written."""

from __future__ import annotations

import pytest
from masks_testing import write_tiny_kitti

from nerfseg.cli import main


@pytest.fixture
def root(tmp_path):
    return write_tiny_kitti(tmp_path / "ds", frames=3, h=32, w=48, semantic=False)


def _sam_args(checkpoint, model_type="vit_b"):
    return ["--set", "masks.source=sam", "--set", f"masks.sam.model_type={model_type}",
            "--set", f"masks.sam.checkpoint={checkpoint}"]  # fmt: skip


def _cache_entries(root):
    return sorted(p.name for p in (root / ".nerfseg_cache").rglob("*.npz"))


def _one_error(capsys, *needles):
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("nerfseg masks: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "Traceback" not in captured.err
    assert "image(s)" not in captured.out and "failed" not in captured.out  # stopped before any image
    return lines[0]


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"garbage, not a checkpoint" * 4, "not a readable SAM checkpoint: the file is corrupt or not a"),
        ("tiny", "does not match SAM model type 'vit_b'"),
        ("not-sam", "not a SAM checkpoint: none of its 1 tensors is a parameter of SAM 'vit_b'"),
    ],
)
def test_a_bad_sam_checkpoint_is_one_fatal_error_before_any_image(root, tmp_path, capsys, content, problem):
    """Garbage, a SAM of another model type (the library's own classes, random weights: checked against
    vit_b's shapes on the meta device, nothing allocated) and a state dict of another model."""
    import torch
    from masks_testing import build_tiny_sam

    checkpoint = tmp_path / "sam_weights.pth"
    if content == "tiny":
        torch.save(build_tiny_sam().state_dict(), checkpoint)
    elif content == "not-sam":
        torch.save({"backbone.weight": torch.zeros(3)}, checkpoint)
    else:
        checkpoint.write_bytes(content)
    assert main(["masks", str(root), "--no-progress", *_sam_args(checkpoint)]) == 1
    line = _one_error(capsys, str(checkpoint), problem)
    assert "weights_only" not in line
    assert _cache_entries(root) == []


def test_superpixel_setting_out_of_range_is_named(root, capsys):
    for override, needle in [
        ("masks.superpixel.n_segments=0", "masks.superpixel.n_segments must be >= 1, got 0"),
        ("masks.superpixel.min_size=0", "masks.superpixel.min_size must be >= 1, got 0"),
        ("masks.superpixel.sigma=-1", "masks.superpixel.sigma must be >= 0, got -1"),
    ]:
        slic = ["--set", "masks.superpixel.method=slic"]
        argv = ["masks", str(root), "--no-progress", *slic, "--set", override]
        assert main(argv) == 1
        _one_error(capsys, needle)
    assert _cache_entries(root) == []


def test_unknown_split_and_unusable_output_folders(root, tmp_path, capsys):
    assert main(["masks", str(root), "--no-progress", "--split", "nosuch"]) == 1
    _one_error(capsys, "unknown SemanticKITTI split 'nosuch'; choose one of train, val, test")
    afile = tmp_path / "afile"
    afile.write_text("keep")
    assert main(["masks", str(root), "--no-progress", "--set", f"masks.cache_dir={afile}"]) == 1
    _one_error(capsys, "masks.cache_dir: cannot create this folder", f"{afile} is a file")
    argv = ["masks", str(root), "--no-progress", "--preview", "1", "--preview-dir", str(afile)]
    assert main(argv) == 1
    _one_error(capsys, f"{afile}: --preview-dir must be a folder, but this is a file")
    assert afile.read_text() == "keep" and _cache_entries(root) == []
