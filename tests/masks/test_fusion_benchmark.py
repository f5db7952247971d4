"""The fusion quality benchmark's measurement on a tiny procedural dataset: fusion must beat the argmax."""

import importlib.util
from pathlib import Path

from masks_testing import write_tiny_kitti

from nerfseg.masks.noisy_teacher import TeacherNoiseConfig
from nerfseg.masks.superpixel import SuperpixelConfig

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_fusion_quality.py"


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("bench_fusion_quality", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fusion_raises_accuracy_on_a_tiny_scene(tmp_path):
    bench = _load_benchmark()
    root = write_tiny_kitti(tmp_path / "ds", frames=2, h=64, w=96)
    result = bench.measure(root, TeacherNoiseConfig(), SuperpixelConfig(min_size=20), max_images=0, seed=0)
    assert result["images"] == 2 and result["image_size"] == [96, 64]
    assert 0.4 < result["argmax_accuracy"] < 0.85  # the noise model really is noisy
    by_tau = {row["tau_mask"]: row for row in result["fusion"]}
    assert by_tau[0.3]["share_labeled"] > 0.8
    assert by_tau[0.3]["fused_accuracy"] > result["argmax_accuracy"] + 0.1
    shares = [row["share_labeled"] for row in result["fusion"]]
    assert shares == sorted(shares, reverse=True)  # higher tau_mask never labels more
    keys = ("command", "dataset", "dataset_note", "machine", "date", "noise", "superpixel", "seed")
    text = bench.to_markdown(result, dict.fromkeys(keys, "x"))
    assert "| 0.3 |" in text
