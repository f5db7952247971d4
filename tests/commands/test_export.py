"""`nerfseg export` (student / teacher / auto, clear errors) and LiDAR-only inference: an exported tiny
model predicts and is evaluated on SemanticKITTI copies with no calib.txt, image_2/, poses.txt or times.txt
(a tiny simulated copy stripped to velodyne/ + labels/, and the real 50-point scan)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from nerfseg.cli import main
from nerfseg.config import load_config
from nerfseg.data.collate import collate_samples
from nerfseg.data.labelmaps import SEMANTICKITTI
from nerfseg.data.sample import IGNORE_INDEX
from nerfseg.data.semantickitti import SemanticKittiDataset
from nerfseg.engine import checkpoint as ckpt
from nerfseg.models.segmentor import LidarSegmentor
from nerfseg.typed_config import dataclass_to_dict
from train_testing import TINY_SEGMENTOR_OVERRIDES


def _tiny_config():
    return load_config(None, TINY_SEGMENTOR_OVERRIDES)


def _segmentor(seed: int) -> LidarSegmentor:
    torch.manual_seed(seed)
    return LidarSegmentor(_tiny_config().model.segmentor, SEMANTICKITTI.num_classes)


def _training_checkpoint(path: Path, student: torch.nn.Module, teacher: torch.nn.Module | None) -> Path:
    """A training checkpoint as the trainer writes it (optimiser, scheduler, rng, a NeRF head)."""
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-3)
    payload = {
        "kind": ckpt.TRAIN_KIND,
        "step": 7,
        "config": dataclass_to_dict(_tiny_config()),
        "num_classes": SEMANTICKITTI.num_classes,
        "class_names": list(SEMANTICKITTI.class_names),
        "model": student.state_dict(),
        "nerf_head": torch.nn.Linear(3, 2).state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": {},
        "rng": ckpt.capture_rng_state(),
    }
    if teacher is not None:
        payload["teacher"] = teacher.state_dict()
    return ckpt.save_checkpoint(path, payload)


@pytest.fixture(scope="module")
def nets():
    return _segmentor(0), _segmentor(1)


def _assert_weights(state: dict, module: torch.nn.Module) -> None:
    reference = module.state_dict()
    assert state.keys() == reference.keys()
    assert all(torch.equal(state[k], reference[k]) for k in reference)


@pytest.mark.parametrize(
    "choice, expected",
    [(None, "student"), ("auto", "teacher"), ("teacher", "teacher"), ("student", "student")],
)
def test_export_takes_the_chosen_weights(tmp_path, nets, choice, expected, capsys):
    student, teacher = nets
    source = _training_checkpoint(tmp_path / "last.pt", student, teacher)
    argv = ["export", str(source), "--out", str(tmp_path / "m" / "model.pt")]
    assert main(argv + ([] if choice is None else ["--weights", choice])) == 0
    assert f"{expected} weights, step 7" in capsys.readouterr().out
    exported = ckpt.load_checkpoint(tmp_path / "m" / "model.pt")
    assert exported["kind"] == ckpt.MODEL_KIND and exported["weights"] == expected and exported["step"] == 7
    assert not {"nerf_head", "optimizer", "scheduler", "rng", "teacher"} & exported.keys()
    _assert_weights(exported["model"], teacher if expected == "teacher" else student)
    model, _ = ckpt.build_segmentor(exported)  # loads into the stored tiny config
    _assert_weights(model.state_dict(), teacher if expected == "teacher" else student)
    assert [p.name for p in (tmp_path / "m").iterdir()] == ["model.pt"]


def test_auto_without_teacher_is_student_and_teacher_is_an_error(tmp_path, nets, capsys):
    student, _ = nets
    source = _training_checkpoint(tmp_path / "last.pt", student, None)
    assert main(["export", str(source), "--out", str(tmp_path / "a.pt"), "--weights", "auto"]) == 0
    assert ckpt.load_checkpoint(tmp_path / "a.pt")["weights"] == "student"
    capsys.readouterr()
    assert main(["export", str(source), "--out", str(tmp_path / "t.pt"), "--weights", "teacher"]) == 1
    err = capsys.readouterr().err
    assert f"{source}: has no EMA teacher weights" in err and "Traceback" not in err
    assert not (tmp_path / "t.pt").exists()


def test_run_model_pt_path_is_the_same_payload(tmp_path, nets):
    """The trainer's model.pt (inference_payload with its default) is the student export."""
    student, teacher = nets
    state = ckpt.load_checkpoint(_training_checkpoint(tmp_path / "last.pt", student, teacher))
    payload = ckpt.inference_payload(state)
    assert payload["weights"] == "student"
    _assert_weights(payload["model"], student)


def test_export_errors_are_one_line(tmp_path, nets, capsys):
    student, teacher = nets
    source = _training_checkpoint(tmp_path / "last.pt", student, teacher)
    ckpt.export_inference(source, tmp_path / "model.pt")
    (tmp_path / "folder").mkdir()
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    before = source.read_bytes()
    cases = [
        ([str(tmp_path / "model.pt"), "--out", str(tmp_path / "x.pt")], "already an inference export"),
        ([str(tmp_path / "junk.pt"), "--out", str(tmp_path / "x.pt")], "not a readable checkpoint"),
        ([str(tmp_path / "none.pt"), "--out", str(tmp_path / "x.pt")], "checkpoint file not found"),
        ([str(source), "--out", str(tmp_path / "folder")], "is a folder"),
        ([str(source), "--out", str(tmp_path / "a_file" / "m.pt")], "cannot write"),
        ([str(source), "--out", str(source)], "is the checkpoint being exported"),
    ]
    for argv, message in cases:
        assert main(["export", *argv]) == 1, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and err.count("\n") == 1, err
    assert source.read_bytes() == before
    assert not (tmp_path / "x.pt").exists()


def test_mismatched_teacher_is_a_data_error(tmp_path, nets):
    student, _ = nets
    other = torch.nn.Linear(2, 2)
    source = _training_checkpoint(tmp_path / "last.pt", student, other)
    with pytest.raises(ckpt.DataError, match="teacher's weights do not name the same tensors"):
        ckpt.export_inference(source, tmp_path / "m.pt", weights="teacher")


# ------------------------------------------------------------------------------------ LiDAR-only inference


def _lidar_only_copy(tmp_path: Path) -> Path:
    """A tiny simulated SemanticKITTI copy (train 00, val 08, 2 scans each) stripped to velodyne/ and
    labels/: no calib.txt, image_2/, poses.txt, times.txt, times_image_2.txt, scribbles, depth, semantic."""
    root = tmp_path / "lidar_only"
    argv = ["simulate", str(root), "--frames", "2", "--sequences", "00,08", "--no-progress"]
    argv += [
        "--set",
        "lidar.beams=16",
        "--set",
        "lidar.azimuth_steps=256",
        "--set",
        "camera.image_scale=0.25",
    ]
    assert main(argv) == 0
    for folder in root.glob("sequences/*"):
        assert (folder / "calib.txt").is_file() and (folder / "image_2").is_dir()
        for entry in folder.iterdir():
            if entry.name not in ("velodyne", "labels"):
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    return root


def _train_from_scratch(root: Path, steps: int = 25) -> LidarSegmentor:
    model = _segmentor(0)
    scans = SemanticKittiDataset(root, "train")
    batch = collate_samples([scans[i] for i in range(len(scans))])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(
            model(batch).point_logits, batch.labels, ignore_index=IGNORE_INDEX
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def test_predict_and_evaluate_need_lidar_only(tmp_path, capsys):
    root = _lidar_only_copy(tmp_path)
    val = SemanticKittiDataset(root, "val")
    assert all(val[i].cameras == [] for i in range(len(val)))
    model = _train_from_scratch(root)
    source = _training_checkpoint(tmp_path / "last.pt", model, None)
    assert main(["export", str(source), "--out", str(tmp_path / "model.pt")]) == 0

    pred = tmp_path / "pred"
    argv = ["predict", str(tmp_path / "model.pt"), "--data", str(root), "--out", str(pred), "--no-progress"]
    assert main(argv) == 0
    # Independent reference: the trained module's own argmax on each val scan, as raw SemanticKITTI ids.
    correct = labeled = 0
    with torch.inference_mode():
        for i in range(len(val)):
            sample = val[i]
            expected = SEMANTICKITTI.to_submission(
                model(collate_samples([sample])).point_logits.argmax(1).numpy()
            )
            seq, frame = sample.sample_id.split("/")
            written = np.fromfile(pred / "sequences" / seq / "predictions" / f"{frame}.label", dtype="<u4")
            assert written.shape == (sample.num_points,)
            assert (written == expected).mean() > 0.99  # batch-of-one float noise may flip a tie
            keep = sample.labels != IGNORE_INDEX
            correct += int(
                (SEMANTICKITTI.to_train(written.astype(np.int64))[keep] == sample.labels[keep]).sum()
            )
            labeled += int(keep.sum())
    capsys.readouterr()
    scores_path = tmp_path / "scores.json"
    argv = ["evaluate", "--dataset", "semantickitti", "--data", str(root), "--predictions", str(pred)]
    assert main([*argv, "--json", str(scores_path), "--no-progress"]) == 0
    scores = json.loads(scores_path.read_text())
    assert scores["num_scans"] == 2
    assert scores["accuracy"] == pytest.approx(correct / labeled, abs=1e-6)
    assert scores["accuracy"] > 0.5  # measured 0.64 after 25 steps; the majority class covers 0.34


def test_predict_on_the_real_scan_without_calib_or_images(tmp_path, real_data, capsys):
    """The real 50-point SemanticKITTI scan (velodyne/ + labels/ only) as a val sequence."""
    root = tmp_path / "real"
    shutil.copytree(real_data / "semantickitti_50pt" / "sequences" / "00", root / "sequences" / "08")
    source = _training_checkpoint(tmp_path / "last.pt", _segmentor(0), None)
    ckpt.export_inference(source, tmp_path / "model.pt")
    argv = ["predict", str(tmp_path / "model.pt"), "--data", str(root), "--out", str(tmp_path / "p")]
    assert main([*argv, "--no-progress"]) == 0
    assert "predicted 1 scans (50 points)" in capsys.readouterr().out
    written = np.fromfile(tmp_path / "p" / "sequences" / "08" / "predictions" / "000000.label", dtype="<u4")
    assert written.shape == (50,) and set(written.tolist()) <= set(SEMANTICKITTI.train_to_submission.tolist())
    argv = [
        "evaluate",
        "--dataset",
        "semantickitti",
        "--data",
        str(root),
        "--predictions",
        str(tmp_path / "p"),
    ]
    assert main([*argv, "--no-progress"]) == 0
    assert "1 scans" in capsys.readouterr().out
