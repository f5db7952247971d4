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
    min_size = ["--set", "masks.superpixel.min_size=20"]
    assert main(["masks", str(root), "--no-progress", "--preview", "2", *min_size]) == 0
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

    assert main(["masks", str(root), "--no-progress", *min_size]) == 0
    assert "3 already cached, 0 computed, 0 recomputed" in capsys.readouterr().out

    cache.entry_path(images[1]).write_bytes(b"PK\x03\x04 truncated")
    assert main(["masks", str(root), "--no-progress", *min_size]) == 0
    out = capsys.readouterr().out
    assert "2 already cached, 0 computed, 1 recomputed" in out
    assert "corrupt mask cache entry" in out and cache.entry_path(images[1]).name in out
    assert np.array_equal(cache.read(images[1]), reference.masks(images[1]))


def test_other_cache_folder_and_settings_make_new_entries(tmp_path, capsys):
    root = write_tiny_kitti(tmp_path / "ds", frames=2, h=32, w=48, semantic=False)
    cache_dir = ["--set", f"masks.cache_dir={tmp_path / 'c'}"]
    args = ["masks", str(root), "--no-progress", *cache_dir, "--preview", "1"]
    slic = ["--set", "masks.superpixel.method=slic"]
    assert main(args + slic + ["--set", "masks.superpixel.n_segments=10"]) == 0
    assert main(args + slic + ["--set", "masks.superpixel.n_segments=20"]) == 0
    assert capsys.readouterr().out.count("0 already cached, 2 computed") == 2
    folders = sorted(p for p in (tmp_path / "c").iterdir())
    assert len(folders) == 2 and all(f.name.startswith("superpixel-") for f in folders)
    with Image.open(next((folders[0] / "preview").glob("*.png"))) as fig:
        assert fig.size == (48, 2 * (32 + 14))  # no ground truth: image and masks only


def test_sam_without_checkpoint_is_one_clear_error(tmp_path, capsys):
    root = write_tiny_kitti(tmp_path / "ds", frames=1, h=32, w=48)
    missing = tmp_path / "sam_vit_b_01ec64.pth"
    code = main(["masks", str(root), "--no-progress", "--set", "masks.source=sam",
                 "--set", "masks.sam.model_type=vit_b", "--set", f"masks.sam.checkpoint={missing}"])
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


def _write_config(path, root, extra: str = "") -> Path:
    path.write_text(
        f"data:\n  dataset: semantickitti\n  root: {root}\n  train_split: train\n"
        f"masks:\n  superpixel:\n    min_size: 20\n{extra}"
    )
    return path


def test_config_fills_the_cache_training_opens(tmp_path, capsys):
    """`nerfseg masks --config C` fills open_run_mask_cache(load_config(C)); a --set on a mask setting moves
    the cache to another folder, which training with the same override opens too."""
    from nerfseg.config import load_config
    from nerfseg.masks.config import open_run_mask_cache

    root = write_tiny_kitti(tmp_path / "ds", frames=2, h=32, w=48, semantic=False)
    config = _write_config(tmp_path / "run.yaml", root)
    assert main(["masks", "--config", str(config), "--no-progress"]) == 0
    out = capsys.readouterr().out
    run_cache = open_run_mask_cache(load_config(config))
    assert f"cache: {run_cache.folder}" in out and "0 already cached, 2 computed" in out
    reference = SuperpixelMasks(SuperpixelConfig(min_size=20))  # the config's setting, not the default
    for image in _images(root):
        assert np.array_equal(run_cache.read(image), reference.masks(image))
    assert run_cache.folder != MaskCache(default_cache_root(root), SuperpixelMasks()).folder

    override = "masks.superpixel.scale=40"
    assert main(["masks", "--config", str(config), "--set", override, "--no-progress"]) == 0
    out = capsys.readouterr().out
    changed = open_run_mask_cache(load_config(config, [override]))
    assert changed.folder != run_cache.folder and changed.folder.parent == run_cache.folder.parent
    assert f"cache: {changed.folder}" in out and "0 already cached, 2 computed" in out
    assert all(changed.read(image) is not None for image in _images(root))

    # ROOT on the command line overrides data.root; the same settings find the same entries elsewhere.
    copy = write_tiny_kitti(tmp_path / "copy", frames=2, h=32, w=48, semantic=False)
    assert main(["masks", str(copy), "--config", str(config), "--no-progress"]) == 0
    assert f"cache: {default_cache_root(copy) / run_cache.folder.name}" in capsys.readouterr().out


def test_config_errors_are_one_line(tmp_path, capsys):
    root = write_tiny_kitti(tmp_path / "ds", frames=1, h=32, w=48, semantic=False)
    assert main(["masks", "--no-progress"]) == 1
    assert "ROOT" in capsys.readouterr().err
    assert main(["masks", str(root), "--no-progress", "--set", "masks.source=sam2"]) == 1
    assert "masks.source" in capsys.readouterr().err
    assert main(["masks", str(root), "--no-progress", "--set", "masks.superpixel.min_sise=3"]) == 1
    assert "min_sise" in capsys.readouterr().err


def test_nuscenes_simulation_previews_use_its_ground_truth(tmp_path, capsys):
    """nuScenes-layout simulation: the preview gets the stand-in teacher and fused panels from
    samples_semantic/ (nuScenes label map), like semantic_2/ for the KITTI layout."""
    from nerfseg.sim.config import LidarConfig, NuScenesConfig, SimConfig
    from nerfseg.sim.simulate import OutputFormat, simulate

    config = SimConfig(
        frames=1,
        lidar=LidarConfig(beams=8, azimuth_steps=64, dynamic_time_slices=2),
        nuscenes=NuScenesConfig(beams=8, azimuth_steps=64, image_scale=0.05),
    )
    root = tmp_path / "nus"
    simulate(root, config, OutputFormat.NUSCENES, 1, show_progress=False)
    args = ["masks", str(root), "--dataset", "nuscenes", "--version", "v1.0-mini", "--split", "mini_train",
            "--no-progress", "--preview", "1", "--set", "masks.superpixel.min_size=5"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "6 image(s): 0 already cached, 6 computed" in out
    (preview,) = Path(out.split("preview(s) in ")[1].strip()).glob("*.png")
    assert preview.name.endswith("_CAM_FRONT.png")
    with Image.open(preview) as fig:
        assert fig.size == (80, 4 * (45 + 14))  # image, masks, stand-in teacher argmax, fused pseudo-labels


def _cache_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_two_concurrent_shards_fill_exactly_the_entries_of_one_process(tmp_path):
    """`--shard 0/2` and `--shard 1/2`, run at the same time into one cache, leave the same files with the
    same bytes as one process over the whole split (and no temporaries)."""
    frames = 7
    root = write_tiny_kitti(tmp_path / "ds", frames=frames, h=40, w=56, semantic=False)
    base = [sys.executable, "-m", "nerfseg", "masks", str(root), "--no-progress", "--set",
            "masks.superpixel.min_size=20"]
    one, shared = tmp_path / "one", tmp_path / "shared"
    single = subprocess.run(base + ["--set", f"masks.cache_dir={one}"], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert single.returncode == 0, single.stderr
    procs = [subprocess.Popen(base + ["--set", f"masks.cache_dir={shared}", "--shard", f"{i}/2"], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    assert "shard 0/2 (4 of 7 samples): 4 image(s): 0 already cached, 4 computed" in outs[0][0]
    assert "shard 1/2 (3 of 7 samples): 3 image(s): 0 already cached, 3 computed" in outs[1][0]
    expected, got = _cache_files(one), _cache_files(shared)
    assert sum(name.endswith(".npz") for name in expected) == frames  # procedural images differ per frame
    assert got.keys() == expected.keys()
    assert all(got[name] == expected[name] for name in expected)


def test_bad_shard_is_one_clear_error(tmp_path, capsys):
    root = write_tiny_kitti(tmp_path / "ds", frames=1, h=32, w=48, semantic=False)
    for bad in ("2/2", "-1/2", "x"):
        assert main(["masks", str(root), "--no-progress", f"--shard={bad}"]) == 1
        err = capsys.readouterr().err
        assert "--shard" in err and bad in err and len(err.strip().splitlines()) == 1  # no traceback
    assert not default_cache_root(root).exists()  # nothing computed
