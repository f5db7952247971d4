"""The bookkeeping of benchmarks/bench_train_step.py --methods: nested part timers, method specs, ratios."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_train_step.py"


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("bench_train_step", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class _Out:
    """A stand-in RenderOutput."""

    def __init__(self, rays):
        import torch

        self.depth = torch.zeros(rays)
        self.num_samples = 10 * rays
        self.num_evaluated = rays


def test_nested_timers_keep_inclusive_and_exclusive_time_per_path(monkeypatch):
    bench = _load_benchmark()
    clock = _Clock()
    monkeypatch.setattr(bench.time, "perf_counter", clock)
    timers = bench.PartTimers()

    def inner(rays):
        clock.now += 2.0
        return _Out(rays)

    inner_timed = timers.wrap("render", inner, bench._render_counts)

    def outer():
        clock.now += 1.0
        inner_timed(3)
        inner_timed(5)
        clock.now += 0.5

    timers.wrap("camera", outer)()
    inner_timed(7)  # the same function outside "camera" is another path
    snap = timers.snapshot()
    parts = snap["parts"]
    assert parts["camera"] == {"inclusive_s": 5.5, "exclusive_s": 1.5, "calls": 1}
    assert parts["camera/render"] == {"inclusive_s": 4.0, "exclusive_s": 4.0, "calls": 2}
    assert parts["render"] == {"inclusive_s": 2.0, "exclusive_s": 2.0, "calls": 1}
    assert sum(p["exclusive_s"] for p in parts.values()) == pytest.approx(clock.now)
    assert snap["counters"]["camera/render: rays"] == 8
    assert snap["counters"]["camera/render: samples"] == 80
    assert snap["counters"]["render: field evaluations"] == 7
    timers.reset()
    assert timers.snapshot() == {"parts": {}, "counters": {}}


def test_median_parts_counts_a_missing_part_as_zero():
    bench = _load_benchmark()
    steps = [
        {"parts": {"a": {"inclusive_s": 1.0, "exclusive_s": 1.0, "calls": 1}}, "counters": {"n": 4.0}},
        {"parts": {"a": {"inclusive_s": 3.0, "exclusive_s": 2.0, "calls": 1}}, "counters": {}},
        {"parts": {}, "counters": {"n": 6.0}},
    ]
    med = bench.median_parts(steps)
    assert med["parts"]["a"] == {"inclusive_s": 1.0, "exclusive_s": 1.0, "calls": 1}
    assert med["counters"]["n"] == 4.0


def test_specs_and_ratios():
    bench = _load_benchmark()
    assert bench.parse_spec("nerf@ssl.camera.stride=8@model.nerf.samples_per_ray=128") == (
        "nerf", ["ssl.camera.stride=8", "model.nerf.samples_per_ray=128"]
    )
    assert bench.parse_spec("nerf+lasermix") == ("nerf+lasermix", [])
    with pytest.raises(SystemExit, match="unknown method 'nerf_mt'"):
        bench.parse_spec("nerf_mt")
    for method, preset in bench.METHOD_PRESETS.items():
        assert (bench.REPO / preset).is_file(), method

    def record(spec, seconds, peak):
        return {
            "spec": spec, "step_seconds_median": seconds, "step_seconds_best": seconds / 2,
            "step_peak_gib": peak, "step_peak_ru_maxrss_gib": peak, "process_peak_gib": 1 + peak,
        }

    results = {"methods": [record("supervised", 2.0, 0.5), record("nerf", 5.0, 0.75)]}
    bench.add_ratios(results)
    nerf = results["methods"][1]
    assert nerf["time_ratio_median"] == 2.5 and nerf["time_ratio_best"] == 2.5
    assert nerf["step_peak_ratio"] == 1.5 and nerf["process_peak_ratio"] == pytest.approx(1.75 / 1.5)
