"""Checkpoints: weights_only round trip, clear errors, inference export, RNG capture."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nerfseg.engine import checkpoint as ckpt
from nerfseg.errors import DataError


def _payload():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 3))
    head = torch.nn.Linear(8, 2)
    opt = torch.optim.AdamW(list(model.parameters()) + list(head.parameters()), lr=1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=10)
    model(torch.randn(5, 4)).sum().backward()
    opt.step()
    sched.step()
    gen = torch.Generator().manual_seed(3)
    return {
        "kind": ckpt.TRAIN_KIND,
        "step": 1,
        "config": {"train": {"seed": 0, "lr": 0.01}, "model": {"segmentor": {"widths": [8, 16]}}},
        "num_classes": 3,
        "class_names": ["a", "b", "c"],
        "model": model.state_dict(),
        "nerf_head": head.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "rng": ckpt.capture_rng_state({"nerf": gen}),
    }


def test_round_trip_with_weights_only(tmp_path):
    payload = _payload()
    path = ckpt.save_checkpoint(tmp_path / "c" / "last.pt", payload)
    loaded = ckpt.load_checkpoint(path)
    assert loaded["format"] == ckpt.FORMAT and loaded["step"] == 1 and loaded["config"] == payload["config"]
    for key, value in payload["model"].items():
        assert torch.equal(loaded["model"][key], value)
    assert loaded["scheduler"] == payload["scheduler"]
    assert torch.equal(
        loaded["optimizer"]["state"][0]["exp_avg"], payload["optimizer"]["state"][0]["exp_avg"]
    )
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temporary left behind


def test_inference_export_drops_training_state(tmp_path):
    ckpt.save_checkpoint(tmp_path / "last.pt", _payload())
    ckpt.export_inference(tmp_path / "last.pt", tmp_path / "model.pt")
    exported = ckpt.load_checkpoint(tmp_path / "model.pt")
    assert exported["kind"] == ckpt.MODEL_KIND
    assert not {"nerf_head", "optimizer", "scheduler", "rng"} & exported.keys()
    assert exported["model"].keys() == _payload()["model"].keys()


def test_rng_capture_restores_every_stream():
    gen = torch.Generator().manual_seed(11)
    torch.manual_seed(5)
    state = ckpt.capture_rng_state({"nerf": gen})
    first = (torch.rand(3), torch.rand(3, generator=gen))
    torch.rand(7)
    torch.rand(2, generator=gen)
    ckpt.restore_rng_state(state, {"nerf": gen})
    again = (torch.rand(3), torch.rand(3, generator=gen))
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])


class _Evil:
    def __reduce__(self):
        return (print, ("executed",))


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"", "not a readable checkpoint"),
        (b"garbage" * 10, "not a readable checkpoint"),
        ("pickle-evil", "not a readable checkpoint: it holds a Python object (print)"),
        ("plain-tensor", "not a nerfseg checkpoint"),
        ("truncated", "not a readable checkpoint: the file is corrupt or truncated"),
    ],
)
def test_bad_files_give_clear_errors(tmp_path, content, problem):
    path = tmp_path / "bad.pt"
    if content == "pickle-evil":
        torch.save({"format": ckpt.FORMAT, "x": _Evil()}, path)
    elif content == "plain-tensor":
        torch.save({"weights": torch.zeros(3)}, path)
    elif content == "truncated":
        ckpt.save_checkpoint(path, _payload())
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(content)
    with pytest.raises(DataError) as err:
        ckpt.load_checkpoint(path)
    assert str(path) in str(err.value) and problem in str(err.value)
    # torch's own text advises loading with weights_only=False (runs code from the file): never passed on.
    assert "weights_only" not in str(err.value) and "trust" not in str(err.value)
    assert len(str(err.value).splitlines()) == 1


def test_missing_file_and_missing_entries(tmp_path):
    with pytest.raises(DataError, match="checkpoint file not found"):
        ckpt.load_checkpoint(tmp_path / "nope.pt")
    payload = _payload()
    del payload["optimizer"]
    ckpt.save_checkpoint(tmp_path / "x.pt", payload)
    with pytest.raises(DataError, match="lacks entries"):
        ckpt.load_checkpoint(tmp_path / "x.pt")


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=1, max_size=64))
def test_any_garbage_bytes_are_a_data_error(tmp_path, data):
    """The weights_only unpickler raises many exception types on garbage (struct.error, KeyError, ...)."""
    path = tmp_path / "garbage.pt"
    path.write_bytes(data)
    with pytest.raises(DataError, match="not a readable checkpoint|not a nerfseg checkpoint") as err:
        ckpt.load_checkpoint(path)
    assert "weights_only" not in str(err.value)
