"""Fusion quality on simulated data, independent of any training (issue 6, item 6).

For every camera image of a simulated SemanticKITTI-layout dataset with per-pixel ground truth
(``sequences/SS/semantic_2/*.png``, raw ids mapped to the 19 train ids; pixels without a class, e.g. sky,
are left out of every figure):

1. make a noisy stand-in for the teacher's rendered class distribution from the ground truth
   (nerfseg.masks.noisy_teacher: blur, class confusion, i.i.d. and spatially smooth logit noise; seeded);
2. compute superpixel masks (Felzenszwalb defaults of nerfseg.masks.superpixel; cached like `nerfseg masks`);
3. fuse (nerfseg.ssl.fusion.fuse_pseudo_labels, opacity-gated: the stand-in's opacity is 1 on labeled
   pixels, 0 on sky) for a sweep of tau_mask;
4. measure, over ground-truth-labeled pixels:
   - argmax: pixel accuracy of argmax P (every pixel labeled);
   - fused: accuracy of the fused pseudo-labels on the pixels they label, and the share labeled;
   - pixel-threshold baseline at the same share: accuracy of argmax P on the same number of its own most
     confident pixels (what thresholding max P alone gives, without masks);
   - mean class recall (argmax vs fused, over the classes present).

Usage:
  nerfseg simulate /tmp/sim --frames 6            # or any simulated dataset
  python benchmarks/bench_fusion_quality.py --data /tmp/sim --out benchmarks/results/fusion_quality.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

import nerfseg  # noqa: F401  (before torch: sets OMP_WAIT_POLICY=PASSIVE while libgomp is not loaded yet)

# isort: split
import torch

from nerfseg.data.ground_truth import read_uint16_png
from nerfseg.data.io import read_image
from nerfseg.data.labelmaps import SEMANTICKITTI
from nerfseg.data.sample import IGNORE_INDEX
from nerfseg.engine.precision import cpu_isa
from nerfseg.io_utils import atomic_write_text
from nerfseg.masks.cache import MaskCache, default_cache_root
from nerfseg.masks.noisy_teacher import (
    TeacherNoiseConfig,
    noisy_teacher_opacity,
    noisy_teacher_probs,
)
from nerfseg.masks.superpixel import SuperpixelConfig, SuperpixelMasks
from nerfseg.ssl.fusion import fuse_pseudo_labels

TAU_MASKS = (0.3, 0.4, 0.5, 0.6)
TAU_PIX = 0.9  # unused with superpixels (every pixel lies in a mask); kept for the record


def find_images(root: Path) -> list[tuple[Path, Path]]:
    """(image, semantic ground truth) pairs of every sequence, sorted."""
    pairs = []
    for image in sorted(root.glob("sequences/*/image_2/*.png")):
        semantic = image.parent.parent / "semantic_2" / image.name
        if semantic.is_file():
            pairs.append((image, semantic))
    return pairs


def machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = next((line.split(":", 1)[1].strip() for line in out.splitlines() if "Model name" in line), "")
    except OSError:
        model = ""
    import os

    return (
        f"{model or platform.processor() or 'unknown CPU'}, {os.cpu_count()} cores, "
        f"ISA {cpu_isa().describe()}, torch {torch.__version__}"
    )


def measure(
    data: Path, noise: TeacherNoiseConfig, sp_cfg: SuperpixelConfig, max_images: int, seed: int
) -> dict:
    pairs = find_images(data)[: max_images or None]
    if not pairs:
        raise SystemExit(
            f"{data}: no sequences/SS/image_2/*.png with semantic_2 ground truth (run nerfseg simulate)"
        )
    cache = MaskCache(default_cache_root(data), SuperpixelMasks(sp_cfg))
    n_classes = SEMANTICKITTI.num_classes
    totals = {"labeled": 0, "argmax_correct": 0}
    per_tau = {t: {"fused_labeled": 0, "fused_correct": 0, "thresh_correct": 0} for t in TAU_MASKS}
    recall_hits = {"argmax": np.zeros(n_classes), **{t: np.zeros(n_classes) for t in TAU_MASKS}}
    class_count = np.zeros(n_classes)
    masks_per_image = []
    mask_status: dict[str, int] = {}
    started = time.perf_counter()
    for index, (image_path, semantic_path) in enumerate(pairs):
        image = read_image(image_path)
        gt = SEMANTICKITTI.to_train(read_uint16_png(semantic_path))
        mask_ids, status = cache.ensure(image)
        mask_status[status] = mask_status.get(status, 0) + 1
        masks_per_image.append(int(mask_ids.max()) + 1)
        probs = noisy_teacher_probs(gt, n_classes, noise, np.random.default_rng([seed, index]))
        valid = gt != IGNORE_INDEX
        probs_t, ids_t = torch.from_numpy(probs), torch.from_numpy(mask_ids)
        opacity = torch.from_numpy(noisy_teacher_opacity(gt))  # sky: transparent, no evidence, no label
        gt_v = gt[valid]
        argmax = probs.argmax(-1)[valid]
        conf = probs.max(-1)[valid]
        order = np.argsort(-conf, kind="stable")
        correct_sorted = np.cumsum((argmax == gt_v)[order])
        totals["labeled"] += int(valid.sum())
        totals["argmax_correct"] += int((argmax == gt_v).sum())
        class_count += np.bincount(gt_v, minlength=n_classes)
        recall_hits["argmax"] += np.bincount(gt_v[argmax == gt_v], minlength=n_classes)
        for tau in TAU_MASKS:
            fused, _ = fuse_pseudo_labels(probs_t, opacity, ids_t, tau, TAU_PIX)
            fused_v = fused.numpy()[valid]
            got = fused_v != IGNORE_INDEX
            n_got = int(got.sum())
            per_tau[tau]["fused_labeled"] += n_got
            per_tau[tau]["fused_correct"] += int((fused_v[got] == gt_v[got]).sum())
            per_tau[tau]["thresh_correct"] += int(correct_sorted[n_got - 1]) if n_got else 0
            recall_hits[tau] += np.bincount(gt_v[got & (fused_v == gt_v)], minlength=n_classes)
        print(
            f"[{index + 1}/{len(pairs)}] {image_path.relative_to(data)}: {masks_per_image[-1]} masks",
            flush=True,
        )
    present = class_count > 0
    n = totals["labeled"]
    rows = []
    for tau in TAU_MASKS:
        t = per_tau[tau]
        rows.append(
            {
                "tau_mask": tau,
                "share_labeled": t["fused_labeled"] / n,
                "fused_accuracy": t["fused_correct"] / max(t["fused_labeled"], 1),
                "threshold_baseline_accuracy": t["thresh_correct"] / max(t["fused_labeled"], 1),
                "fused_correct_share_of_all": t["fused_correct"] / n,
                "fused_mean_class_recall": float((recall_hits[tau][present] / class_count[present]).mean()),
            }
        )
    return {
        "images": len(pairs),
        "image_size": list(read_image(pairs[0][0]).shape[1::-1]),
        "gt_labeled_pixels": n,
        "classes_present": [SEMANTICKITTI.class_names[i] for i in np.nonzero(present)[0]],
        "masks_per_image_mean": float(np.mean(masks_per_image)),
        "argmax_accuracy": totals["argmax_correct"] / n,
        "argmax_mean_class_recall": float((recall_hits["argmax"][present] / class_count[present]).mean()),
        "fusion": rows,
        "seconds": time.perf_counter() - started,
        "mask_cache": mask_status,
    }


def to_markdown(result: dict, meta: dict) -> str:
    lines = [
        "# Fusion quality on simulated data (superpixel masks, noisy stand-in teacher)",
        "",
        f"- command: `{meta['command']}`",
        f"- dataset: `{meta['dataset']}` ({meta['dataset_note']})",
        f"- machine: {meta['machine']}",
        f"- date: {meta['date']}",
        f"- images: {result['images']} of {result['image_size'][0]}x{result['image_size'][1]}, "
        f"{result['gt_labeled_pixels']} ground-truth-labeled pixels, classes present: "
        f"{', '.join(result['classes_present'])}",
        f"- masks: superpixel {meta['superpixel']}, "
        f"{result['masks_per_image_mean']:.0f} masks per image on average",
        f"- noise model (nerfseg.masks.noisy_teacher): {meta['noise']}, seed {meta['seed']}: one-hot ground "
        "truth blurred (Gaussian, blur_sigma px), a share `confusion` of each class's probability moved to a "
        "fixed random other class, log taken (floored), i.i.d. Gaussian logit noise (pixel_noise) plus a "
        "smooth Gaussian logit field (field_noise, correlation field_scale px), softmax; pixels without "
        "ground truth render all-zero",
        f"- run time: {result['seconds']:.1f} s (masks: {result['mask_cache']} in the mask cache)",
        "",
        f"Argmax of the noisy distribution: pixel accuracy **{result['argmax_accuracy']:.3f}** on 100% "
        f"of the pixels (mean class recall {result['argmax_mean_class_recall']:.3f}).",
        "",
        "| tau_mask | share labeled | fused accuracy "
        "| argmax accuracy on its most confident pixels, same share | correct share of all pixels "
        "| fused mean class recall |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["fusion"]:
        lines.append(
            f"| {r['tau_mask']} | {r['share_labeled']:.3f} | **{r['fused_accuracy']:.3f}** | "
            f"{r['threshold_baseline_accuracy']:.3f} | {r['fused_correct_share_of_all']:.3f} | "
            f"{r['fused_mean_class_recall']:.3f} |"
        )
    lines += [
        "",
        "Accuracies are over ground-truth-labeled pixels (sky / unlabeled excluded). 'fused accuracy' counts "
        "only the pixels fusion labels; 'correct share of all pixels' counts unlabeled ones as not correct "
        "(compare with the argmax accuracy, which labels everything). Mean class recall counts ignored "
        "pixels as misses.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", required=True, type=Path, help="simulated SemanticKITTI-layout dataset root"
    )
    parser.add_argument(
        "--dataset-note", default="", help="how the dataset was made (recorded in the results)"
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/fusion_quality.md"))
    parser.add_argument("--max-images", type=int, default=0, help="0 = all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--method", default="felzenszwalb", choices=["felzenszwalb", "slic"], help="superpixels"
    )
    parser.add_argument(
        "--pixel-noise", type=float, default=TeacherNoiseConfig.pixel_noise, help="logit noise std"
    )
    parser.add_argument(
        "--field-noise", type=float, default=TeacherNoiseConfig.field_noise, help="smooth noise std"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    noise = TeacherNoiseConfig(pixel_noise=args.pixel_noise, field_noise=args.field_noise)
    sp_cfg = SuperpixelConfig(method=args.method)
    result = measure(args.data, noise, sp_cfg, args.max_images, args.seed)
    meta = {
        "command": "python " + shlex.join([Path(sys.argv[0]).as_posix()] + (argv or sys.argv[1:])),
        "dataset": str(args.data),
        "dataset_note": args.dataset_note or "simulated",
        "machine": machine(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "noise": ", ".join(f"{k}={v}" for k, v in asdict(noise).items()),
        "superpixel": ", ".join(f"{k}={v}" for k, v in asdict(sp_cfg).items()),
        "seed": args.seed,
    }
    atomic_write_text(args.out, to_markdown(result, meta))
    atomic_write_text(
        args.out.with_suffix(".json"), json.dumps({"meta": meta, "result": result}, indent=2) + "\n"
    )
    print(to_markdown(result, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
