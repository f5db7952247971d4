"""How large the CPU sparse conv's work units should be: buffer bytes per gather/matmul/scatter step
(``nerfseg.sparse.conv.CPU_CHUNK_BYTES``) and output rows per block of a submanifold map
(``nerfseg.sparse.kernel_map.DEFAULT_BLOCK_ROWS``), measured side by side in one process (settings
alternate, best of the repeats), on the performance report's scan (64 x 2048 beams, ~82k voxels of 0.05 m):

- one 64 -> 64 submanifold conv, forward and forward + backward;
- ``full``-preset segmentor inference, float32 and bf16 autocast (where the CPU has native bf16).

    .venv/bin/python benchmarks/bench_conv_chunking.py [--repeats 3] [--out benchmarks/results/conv_chunking]

Writes OUT.json and OUT.md. Run it on a quiet machine (it reports the load average).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

import nerfseg  # noqa: F401  (before torch: sets OMP_WAIT_POLICY=PASSIVE while libgomp is not loaded yet)

# isort: split
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_hot_paths import NUM_CLASSES, git_commit, load_inputs, machine, simulate_scan  # noqa: E402
from report_io import write_report  # noqa: E402

import nerfseg.sparse.conv as conv  # noqa: E402
import nerfseg.sparse.kernel_map as kernel_map  # noqa: E402
from nerfseg.engine.precision import cpu_has_native_bf16  # noqa: E402
from nerfseg.models.segmentor import LidarSegmentor, SegmentorConfig  # noqa: E402
from nerfseg.sparse import sparse_conv, submanifold_map, voxelize  # noqa: E402

SETTINGS = {  # name -> (CPU_CHUNK_BYTES, DEFAULT_BLOCK_ROWS)
    "4 MiB / 8192 rows (until 2026-12-08)": (4 << 20, 8192),
    "16 MiB / 16384 rows": (16 << 20, 16384),
    "32 MiB / 32768 rows": (32 << 20, 32768),
    "32 MiB / one block": (32 << 20, 1 << 40),
}


def best(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(batch, repeats: int, bf16: bool) -> dict[str, dict[str, float]]:
    vox = voxelize(batch.points[:, :3], batch.batch_index, batch.points, 0.05)
    coords = vox.tensor.coords
    torch.manual_seed(0)
    feats = torch.randn(coords.shape[0], 64, requires_grad=True)
    weight = (torch.randn(27, 64, 64) / 40).requires_grad_(True)
    upstream = torch.randn(coords.shape[0], 64)
    model = LidarSegmentor(SegmentorConfig(preset="full", voxel_size=0.05), NUM_CLASSES).eval()
    results: dict[str, dict[str, list[float]]] = {name: {} for name in SETTINGS}
    for _ in range(repeats):  # alternate the settings, so that a change of the machine's speed hits them all
        for name, (chunk_bytes, block_rows) in SETTINGS.items():
            conv.CPU_CHUNK_BYTES, kernel_map.DEFAULT_BLOCK_ROWS = chunk_bytes, block_rows
            kmap = submanifold_map(coords)

            def forward(kmap=kmap):
                with torch.no_grad():
                    sparse_conv(feats, weight, kmap)

            def forward_backward(kmap=kmap):
                feats.grad = weight.grad = None
                sparse_conv(feats, weight, kmap).backward(upstream)

            row = results[name]
            row.setdefault("conv 64->64 forward", []).append(best(forward, 3))
            row.setdefault("conv 64->64 forward + backward", []).append(best(forward_backward, 2))
            casts = [("full inference float32", contextlib.nullcontext)]
            if bf16:
                casts.append(("full inference bf16", lambda: torch.autocast("cpu", dtype=torch.bfloat16)))
            for label, cast in casts:
                with torch.inference_mode(), cast():
                    row.setdefault(label, []).append(best(lambda: model(batch), 1))
    return {name: {k: min(v) for k, v in row.items()} for name, row in results.items()}


def markdown(report: dict) -> str:
    names = list(report["seconds"])
    paths = list(report["seconds"][names[0]])
    lines = [
        "# CPU sparse conv work units (benchmarks/bench_conv_chunking.py)", "",
        f"{report['date']}, commit {report['commit']}, {report['machine']['cpu']} "
        f"({report['machine']['isa']}), {report['machine']['threads']} threads, torch "
        f"{report['machine']['torch']}; load average before {report['load_before']}, after "
        f"{report['load_after']}. Scan: {report['voxels']} voxels of 0.05 m. Best of {report['repeats']} "
        "alternating rounds, ms.", "",
        "| buffers / block rows | " + " | ".join(paths) + " |",
        "|---|" + "---|" * len(paths),
    ]
    base = report["seconds"][names[0]]
    for name in names:
        cells = [f"{1e3 * report['seconds'][name][p]:.0f} ({base[p] / report['seconds'][name][p]:.2f}x)"
                 for p in paths]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/conv_chunking"))
    args = parser.parse_args()
    info = machine()
    load_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        simulate_scan(root, 2048)
        batch = load_inputs(root)[2]
        seconds = measure(batch, args.repeats, cpu_has_native_bf16())
        vox = voxelize(batch.points[:, :3], batch.batch_index, batch.points, 0.05)
        voxels = int(vox.tensor.coords.shape[0])
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": git_commit(),
        "machine": info, "command": " ".join(sys.argv), "repeats": args.repeats, "voxels": voxels,
        "load_before": load_before, "load_after": [round(x, 2) for x in os.getloadavg()],
        "settings": {k: list(v) for k, v in SETTINGS.items()}, "seconds": seconds,
    }
    write_report(args.out, report, markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
