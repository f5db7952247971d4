"""Run logs: metrics.jsonl lines flushed per step, resume truncation, TensorBoard events."""

from __future__ import annotations

import json

from nerfseg.engine.logging import RunLogger, read_metrics


def test_lines_are_flushed_and_resume_drops_later_steps(tmp_path):
    logger = RunLogger(tmp_path, tensorboard=True)
    for step in (1, 2, 3, 4):
        logger.log(step, {"loss": 1.0 / step}, prefix="train")
        # readable before close: every line is flushed
        assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == list(range(1, step + 1))
    # a killed run may leave a torn last line
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write('{"step": 5, "train/lo')
    logger.close()
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "tensorboard").iterdir())

    with RunLogger(tmp_path, resume_step=2, tensorboard=False) as resumed:
        resumed.log(3, {"loss": 0.5}, prefix="train")
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3]
    assert records[-1]["train/loss"] == 0.5 and records[0]["train/loss"] == 1.0
    assert all(json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines())


def test_fresh_run_replaces_old_file(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 9}\n')
    with RunLogger(tmp_path, tensorboard=False) as logger:
        logger.log(1, {"x": float("nan")})
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert records == [{"step": 1, "time": records[0]["time"], "x": "nan"}]
