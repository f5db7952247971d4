"""`nerfseg masks` end to end on a tiny SemanticKITTI-layout dataset: cache, resume, corruption, previews."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from masks_testing import write_tiny_kitti
from PIL import Image

from nerfseg.cli import main
from nerfseg.data.io import read_image
from nerfseg.masks.cache import MaskCache, default_cache_root
from nerfseg.masks.superpixel import SuperpixelConfig, SuperpixelMasks

REPO = Path(__file__).resolve().parents[2]


def _images(root):
    return [read_image(p) for p in sorted((root / "sequences" / "00" / "image_2").glob("*.png"))]


def test_cache_previews_rerun_and_corruption(tmp_path, capsys):
    root = write_tiny_kitti(tmp_path / "ds", frames=3, h=48, w=64)
    assert main(["masks", str(root), "--no-progress", "--preview", "2", "--min-size", "20"]) == 0
    out = capsys.readouterr().out
    assert "3 image(s): 0 already cached, 3 computed, 0 recomputed" in out
    cache = MaskCache(default_cache_root(root), SuperpixelMasks(SuperpixelConfig(min_size=20)))
    images = _images(root)
    reference = SuperpixelMasks(SuperpixelConfig(min_size=20))
    for image in images:
        assert np.array_equal(cache.read(image), reference.masks(image))
    previews = sorted((cache.folder / "preview").glob("*.png"))
    assert [p.name for p in previews] == ["00_000000_image_2.png", "00_000001_image_2.png"]
    with Image.open(previews[0]) as fig:
        assert fig.size == (64, 4 * (48 + 14))  # image, masks, stand-in teacher argmax, fused pseudo-labels

    assert main(["masks", str(root), "--no-progress", "--min-size", "20"]) == 0
    assert "3 already cached, 0 computed, 0 recomputed" in capsys.readouterr().out

    cache.entry_path(images[1]).write_bytes(b"PK\x03\x04 truncated")
    assert main(["masks", str(root), "--no-progress", "--min-size", "20"]) == 0
    out = capsys.readouterr().out
    assert "2 already cached, 0 computed, 1 recomputed" in out
    assert "corrupt mask cache entry" in out and cache.entry_path(images[1]).name in out
    assert np.array_equal(cache.read(images[1]), reference.masks(images[1]))


def test_other_cache_folder_and_settings_make_new_entries(tmp_path, capsys):
    root = write_tiny_kitti(tmp_path / "ds", frames=2, h=32, w=48, semantic=False)
    args = ["masks", str(root), "--no-progress", "--cache", str(tmp_path / "c"), "--preview", "1"]
    assert main(args + ["--method", "slic", "--n-segments", "10"]) == 0
    assert main(args + ["--method", "slic", "--n-segments", "20"]) == 0
    assert capsys.readouterr().out.count("0 already cached, 2 computed") == 2
    folders = sorted(p for p in (tmp_path / "c").iterdir())
    assert len(folders) == 2 and all(f.name.startswith("superpixel-") for f in folders)
    with Image.open(next((folders[0] / "preview").glob("*.png"))) as fig:
        assert fig.size == (48, 2 * (32 + 14))  # no ground truth: image and masks only


def test_sam_without_checkpoint_is_one_clear_error(tmp_path, capsys):
    root = write_tiny_kitti(tmp_path / "ds", frames=1, h=32, w=48)
    missing = tmp_path / "sam_vit_b_01ec64.pth"
    code = main(["masks", str(root), "--no-progress", "--source", "sam", "--model-type", "vit_b",
                 "--checkpoint", str(missing)])
    err = capsys.readouterr().err
    assert code == 1 and str(missing) in err and "not found" in err


def test_killed_run_resumes(tmp_path):
    frames = 16
    root = write_tiny_kitti(tmp_path / "ds", frames=frames, h=120, w=320, semantic=False)
    cmd = [sys.executable, "-m", "nerfseg", "masks", str(root), "--no-progress"]
    cache = MaskCache(default_cache_root(root), SuperpixelMasks())
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if cache.folder.is_dir() and any(cache.folder.glob("*.npz")):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait(timeout=60)
    images = _images(root)
    done = [image for image in images if cache.entry_path(image).exists()]
    assert 1 <= len(done) < frames, "the run was expected to be killed part-way"
    for image in done:  # every entry a killed run left behind is complete and valid
        assert cache.read(image) is not None
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"{len(done)} already cached, {frames - len(done)} computed, 0 recomputed" in result.stdout
    assert all(cache.read(image) is not None for image in images)


def test_a_bad_image_is_reported_and_the_rest_cached(tmp_path, capsys):
    root = write_tiny_kitti(tmp_path / "ds", frames=3, h=32, w=48, semantic=False)
    bad = root / "sequences" / "00" / "image_2" / "000001.png"
    bad.write_bytes(b"not a png")
    assert main(["masks", str(root), "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert "2 image(s): 0 already cached, 2 computed" in captured.out
    assert "1 sample(s) failed" in captured.out and str(bad) in captured.out
