"""Size and speed of the 3D scan page (`nerfseg view`) for a full-size scan, in headless chromium.

Builds a 64-beam ring scan of POINTS points (SemanticKITTI averages ~120k) with ground truth and a 10 %-wrong
prediction, writes the self-contained page and the shared-library variant, then in headless chromium
(software WebGL: SwiftShader, no GPU) measures the time from navigation to plotly's first draw and the
latency of an orbit drag (20 mouse moves through the DevTools input path, each redrawing the scene).

Each drag is measured twice: as the page opens in this browser (software WebGL: one point in k, at most
``SOFTWARE_MAX_POINTS``) and with ``?points=all`` (every point). Per move it also reports the page's
main-thread script time (DevTools ``Performance.getMetrics`` ScriptDuration: plotly's own work, what a
browser drawing with a GPU pays) and the CPU seconds of chromium's GPU process (SwiftShader rasterising the
scene, what a GPU would do instead), read from /proc.

    .venv/bin/python benchmarks/bench_scan_page.py [--points 120000] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "viz"))
from chromium_testing import Chromium  # noqa: E402

from nerfseg.data.labelmaps import SEMANTICKITTI  # noqa: E402
from nerfseg.viz.scan_page import LIBRARY_NAME, write_plotly_library, write_scan_page  # noqa: E402

DRAWN = 'document.body && document.body.getAttribute("data-draw-ms")'


def ring_scan(points: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, 3) float32 metres of a 64-beam scan over flat ground with a wall ring at 30 m; ids; prediction."""
    beams = 64
    azimuth = np.tile(np.linspace(-np.pi, np.pi, points // beams, endpoint=False), beams)
    elevation = np.repeat(np.linspace(-0.43, 0.05, beams), points // beams)
    ground = elevation < -0.06
    dist = np.where(ground, 1.73 / np.tan(np.clip(-elevation, 0.06, None)), 30.0)
    dist = np.minimum(dist, 30.0)
    xyz = np.stack([dist * np.cos(azimuth), dist * np.sin(azimuth), dist * np.sin(elevation)], 1)
    xyz[ground, 2] = -1.73
    xyz += rng.normal(0, 0.02, xyz.shape)
    truth = np.where(ground, np.where(np.abs(xyz[:, 1]) < 4, 8, 10), 12)
    truth[(xyz[:, 0] > 6) & (xyz[:, 0] < 10) & (np.abs(xyz[:, 1]) < 1) & ground] = 0
    pred = truth.copy()
    wrong = rng.random(truth.size) < 0.1
    pred[wrong] = rng.integers(0, SEMANTICKITTI.num_classes, int(wrong.sum()))
    return xyz.astype(np.float32), truth, pred


def gpu_process_cpu_s(browser_pid: int) -> float:
    """CPU seconds (user + system) so far of the chromium GPU processes under the browser ``browser_pid``."""
    tick = os.sysconf("SC_CLK_TCK")
    stats = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            gpu = b"--type=gpu-process" in Path(f"/proc/{pid}/cmdline").read_bytes()  # one string or many
        except OSError:
            continue
        # ppid, is a GPU process, utime + stime
        stats[int(pid)] = (int(fields[1]), gpu, (int(fields[11]) + int(fields[12])) / tick)

    def under_browser(pid: int) -> bool:
        while pid in stats and pid != browser_pid:
            pid = stats[pid][0]
        return pid == browser_pid

    return sum(cpu for pid, (_, gpu, cpu) in stats.items() if gpu and under_browser(pid))


def browse(page: Path, query: str = "", moves_n: int = 20) -> dict:
    """Seconds to the first draw and per-move drag cost of ``page`` (+ ``query``) in a fresh headless
    chromium: wall latency, main-thread script ms and GPU-process CPU ms per move."""
    with Chromium(width=1000, height=800, timeout_s=900) as browser:
        start = time.monotonic()
        browser.open(page.as_uri() + query)
        draw_ms = float(browser.wait_for(DRAWN, poll_s=0.05))
        drawn_wall = time.monotonic() - start
        shown = browser.evaluate('document.body.getAttribute("data-points-shown")')
        renderer = browser.evaluate('document.body.getAttribute("data-renderer")')
        browser.evaluate("new Promise(r => setTimeout(r, 1000))")
        browser.call("Performance.enable")

        def script_s() -> float:
            metrics = browser.call("Performance.getMetrics")["metrics"]
            return next(m["value"] for m in metrics if m["name"] == "ScriptDuration")

        moves = []
        press = {"x": 500, "y": 450, "button": "left", "buttons": 1, "clickCount": 1}
        script0, gpu0 = script_s(), gpu_process_cpu_s(browser.pid)
        browser.call("Input.dispatchMouseEvent", {"type": "mousePressed", **press})
        for i in range(1, moves_n + 1):
            t = time.monotonic()
            event = {"type": "mouseMoved", "x": 500 + 10 * i, "y": 450, "button": "left", "buttons": 1}
            browser.call("Input.dispatchMouseEvent", event)
            browser.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
            moves.append(time.monotonic() - t)
        browser.call("Input.dispatchMouseEvent", {**press, "type": "mouseReleased", "buttons": 0})
        script1, gpu1 = script_s(), gpu_process_cpu_s(browser.pid)
    return {
        "query": query,
        "points_shown": shown,
        "webgl_renderer": renderer,
        "draw_ms_from_navigation": draw_ms,
        "draw_wall_s": round(drawn_wall, 2),
        "drag_move_median_ms": round(1000 * float(np.median(moves))),
        "drag_move_max_ms": round(1000 * max(moves)),
        "script_ms_per_move": round(1000 * (script1 - script0) / moves_n, 1),
        "gpu_process_cpu_ms_per_move": round(1000 * (gpu1 - gpu0) / moves_n),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--points", type=int, default=120_000)
    parser.add_argument("--out", type=Path, help="also write the results as JSON")
    args = parser.parse_args()
    xyz, truth, pred = ring_scan(args.points, np.random.default_rng(0))
    results: dict = {"points": int(xyz.shape[0]), "load_average_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        inline = write_scan_page(Path(tmp) / "inline.html", xyz, SEMANTICKITTI, truth, pred, "bench")
        results["write_inline_s"] = round(time.perf_counter() - t, 2)
        shared = write_scan_page(
            Path(tmp) / "shared.html", xyz, SEMANTICKITTI, truth, pred, "bench", library_src=LIBRARY_NAME
        )
        library = write_plotly_library(Path(tmp))
        results["inline_page_mb"] = round(inline.stat().st_size / 1e6, 2)
        results["shared_page_mb"] = round(shared.stat().st_size / 1e6, 2)
        results["library_mb"] = round(library.stat().st_size / 1e6, 2)
        results["inline"] = browse(inline)
        results["shared"] = browse(shared)
        results["inline_all_points"] = browse(inline, "?points=all", moves_n=10)
    results["load_average_after"] = os.getloadavg()[0]
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
