"""evaluate_predictions on a small SemanticKITTI tree: perfect and corrupted predictions, hand-computed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kitti_testing import random_points, write_scan, write_tree
from nerfseg.data.labelmaps import SEMANTICKITTI
from nerfseg.engine.evaluate import evaluate_predictions
from nerfseg.errors import DataError

CAR, ROAD, BUILDING, FENCE = (
    SEMANTICKITTI.class_names.index(n) for n in ("car", "road", "building", "fence")
)


def _write_pred(pred_root, sample_id, raw):
    seq, frame = sample_id.split("/")
    folder = pred_root / "sequences" / seq / "predictions"
    folder.mkdir(parents=True, exist_ok=True)
    np.asarray(raw, dtype="<u4").tofile(folder / f"{frame}.label")


def test_perfect_predictions(tmp_path):
    raw = write_tree(tmp_path / "data", {"08": 3, "00": 1}, raw_ids=(0, 10, 40, 50, 70, 252, 99))
    for sample_id, labels in raw.items():
        _write_pred(tmp_path / "pred", sample_id, labels)  # the ground truth itself, instance bits included
    scores, count = evaluate_predictions(
        "semantickitti", tmp_path / "data", tmp_path / "pred", progress=False
    )
    assert count == 3  # only sequence 08 is in the val split
    present = {CAR, ROAD, BUILDING, SEMANTICKITTI.class_names.index("vegetation")}
    for c in range(19):
        assert scores.per_class_iou[c] == pytest.approx(1.0 if c in present else 0.0)
    # semantic-kitti-api rule: the mean runs over all 19 classes, absent ones counting 0.
    assert scores.miou == pytest.approx(4 / 19)
    assert scores.accuracy == pytest.approx(1.0)


def test_corrupted_predictions_hand_computed(tmp_path):
    data, pred = tmp_path / "data", tmp_path / "pred"
    folder = data / "sequences" / "08"
    rng = np.random.default_rng(0)
    gt_a = np.array([10, 10, 10, 40, 40, 40, 40, 252, 0, 99]) | (np.arange(10) << 16)
    pr_a = [10, 10, 40, 40, 40, 40, 0, 10, 10, 10]
    gt_b, pr_b = [50, 50], [50 | (9 << 16), 51]
    write_scan(folder, 0, random_points(rng, 10), gt_a)
    write_scan(folder, 1, random_points(rng, 2), np.array(gt_b))
    _write_pred(pred, "08/000000", pr_a)
    _write_pred(pred, "08/000001", pr_b)
    scores, count = evaluate_predictions("semantickitti", data, pred, split="valid", progress=False)
    assert count == 2
    # car: gt at 0,1,2,7 -> tp 3, fn 1 (road), fp 0 -> 3/4.  road: gt 3-6 -> tp 3, fn 1 (predicted
    # unlabeled), fp 1 (car point 2) -> 3/5.  building: tp 1, fn 1 -> 1/2.  fence: fp 1 -> 0.
    # Ground-truth-ignored points 8, 9 count nowhere.
    assert scores.per_class_iou[CAR] == pytest.approx(0.75)
    assert scores.per_class_iou[ROAD] == pytest.approx(0.6)
    assert scores.per_class_iou[BUILDING] == pytest.approx(0.5)
    assert scores.per_class_iou[FENCE] == 0.0
    assert scores.miou == pytest.approx((0.75 + 0.6 + 0.5) / 19)
    # accuracy = tp / (points predicted as a class on labeled ground truth) = 7 / (7 + 2).
    assert scores.accuracy == pytest.approx(7 / 9)


def test_missing_and_wrong_length_predictions(tmp_path):
    raw = write_tree(tmp_path / "data", {"08": 2}, points_per_scan=5)
    pred = tmp_path / "pred"
    _write_pred(pred, "08/000000", raw["08/000000"])
    with pytest.raises(DataError, match="prediction file not found") as err:
        evaluate_predictions("semantickitti", tmp_path / "data", pred, progress=False)
    assert err.value.path == pred / "sequences" / "08" / "predictions" / "000001.label"
    _write_pred(pred, "08/000001", raw["08/000001"][:4])
    with pytest.raises(DataError, match="has 4 labels but the scan has 5 points") as err:
        evaluate_predictions("semantickitti", tmp_path / "data", pred, progress=False)
    assert err.value.path.name == "000001.label"
    with pytest.raises(DataError, match="no label files.*labeled sequences here: 08"):
        evaluate_predictions("semantickitti", tmp_path / "data", pred, split="test", progress=False)


def test_nuscenes_real_labels_devkit_rule(tmp_path, real_data, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "data"))
    from nuscenes_tree import build_real_tree

    tree = build_real_tree(tmp_path / "nus", real_data)
    raw = np.fromfile(tree.label_file_b, dtype=np.uint8)
    # Devkit fine -> coarse for the ids present (17 car, 24 driveable, 27 terrain, 28 manmade, 30 vegetation;
    # 31 ego -> ignore); any valid class may be predicted on ignored points.
    coarse = {17: 4, 24: 11, 27: 14, 28: 15, 30: 16, 31: 1}
    perfect = np.array([coarse[r] for r in raw], dtype=np.uint8)
    folder = tmp_path / "pred" / "lidarseg" / "mini_val"
    folder.mkdir(parents=True)
    pred_file = folder / f"{tree.lidar_token_b}_lidarseg.bin"
    perfect.tofile(pred_file)
    scores, count = evaluate_predictions(
        "nuscenes", tree.root, tmp_path / "pred", split="mini_val", version="v1.0-mini", progress=False
    )
    assert count == 1 and scores.rule == "nuscenes"
    assert scores.miou == pytest.approx(1.0)  # nanmean: classes absent from both are NaN, not 0
    assert np.isnan(scores.per_class_iou).sum() == 16 - 5
    corrupted = np.where(raw == 17, 10, perfect).astype(np.uint8)  # every car point called truck
    corrupted.tofile(pred_file)
    scores, _ = evaluate_predictions(
        "nuscenes", tree.root, tmp_path / "pred", split="mini_val", version="v1.0-mini", progress=False
    )
    assert scores.per_class_iou[3] == 0.0 and scores.per_class_iou[9] == 0.0  # car, truck
    assert scores.miou == pytest.approx(4 / 6)
    valid = raw != 31
    assert scores.accuracy == pytest.approx(1 - (raw == 17).sum() / valid.sum())


def _unknown_ids_case(tmp_path):
    """5 val scans predicted perfectly except that 4 files hold raw ids outside the label map (2, 3, 1000;
    1000 with instance bits); returns (data, pred, the same predictions with those ids replaced by 0)."""
    raw = write_tree(tmp_path / "data", {"08": 5}, points_per_scan=40, raw_ids=(10, 40, 50, 70))
    pred, reference = tmp_path / "pred", tmp_path / "reference"
    for i, (sample_id, labels) in enumerate(sorted(raw.items())):
        predicted = labels.astype(np.int64).copy()
        if i < 4:
            predicted[: 3 + i] = [2, 3, 1000 | (7 << 16), 2, 3, 2, 3][: 3 + i]
        _write_pred(pred, sample_id, predicted)
        # The official evaluate_semantics.py: remap_lut[label & 0xFFFF] is 0 for ids outside learning_map.
        official = np.where(np.isin(predicted & 0xFFFF, SEMANTICKITTI.known_raw_ids), predicted, 0)
        _write_pred(reference, sample_id, official)
    return tmp_path / "data", pred, reference


def test_unknown_raw_ids_scored_as_the_official_script_with_one_warning(tmp_path):
    from nerfseg.engine.evaluate import UnmappedPredictionWarning

    data, pred, reference = _unknown_ids_case(tmp_path)
    with pytest.warns(UnmappedPredictionWarning) as caught:
        scores, count = evaluate_predictions("semantickitti", data, pred, progress=False)
    assert len(caught) == 1
    message = str(caught[0].message)
    folder = pred / "sequences" / "08" / "predictions"
    assert message.startswith("4 of 5 prediction file(s) hold raw label ids outside the SemanticKITTI label "
                              "map (2, 3, 1000), scored as unlabeled")  # fmt: skip
    for frame in ("000000", "000001", "000002"):
        assert f"{folder / frame}.label" in message
    assert "000003.label" not in message and "and 1 more file(s)" in message and "--strict" in message
    expected, _ = evaluate_predictions("semantickitti", data, reference, progress=False)
    assert count == 5 and scores.to_dict() == expected.to_dict()  # same numbers as the official mapping
    assert scores.per_class_iou[CAR] < 1.0 or scores.per_class_iou[ROAD] < 1.0  # the ids did cost points


def test_unknown_raw_ids_are_an_error_with_strict(tmp_path, recwarn):
    data, pred, _ = _unknown_ids_case(tmp_path)
    with pytest.raises(DataError, match=r"raw label ids outside the SemanticKITTI label map: \[2, 3, 1000\]"
                       r" \(--strict") as err:  # fmt: skip
        evaluate_predictions("semantickitti", data, pred, progress=False, strict=True)
    assert err.value.path == pred / "sequences" / "08" / "predictions" / "000000.label"
    # Known ids, even those the learning map ignores (0 unlabeled, 1 outlier), are no error.
    raw = write_tree(tmp_path / "d2", {"08": 1}, points_per_scan=10, raw_ids=(0, 1, 10, 252))
    _write_pred(tmp_path / "p2", "08/000000", raw["08/000000"])
    evaluate_predictions("semantickitti", tmp_path / "d2", tmp_path / "p2", progress=False, strict=True)
    assert not recwarn.list


def test_unknown_split_is_a_config_error(tmp_path):
    from nerfseg.errors import ConfigError

    write_tree(tmp_path / "data", {"08": 1})
    with pytest.raises(ConfigError, match="unknown SemanticKITTI split 'nosuch'; choose one of train, val"):
        evaluate_predictions("semantickitti", tmp_path / "data", tmp_path / "pred", split="nosuch")


@pytest.mark.parametrize("strict", [False, True])
def test_nuscenes_rejects_class_indices_outside_1_16_with_or_without_strict(tmp_path, real_data, monkeypatch,
                                                                              strict):  # fmt: skip
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "data"))
    from nuscenes_tree import build_real_tree

    tree = build_real_tree(tmp_path / "nus", real_data)
    count = np.fromfile(tree.label_file_b, dtype=np.uint8).size
    folder = tmp_path / "pred" / "lidarseg" / "mini_val"
    folder.mkdir(parents=True)
    predicted = np.full(count, 4, dtype=np.uint8)
    predicted[:2] = [0, 17]
    predicted.tofile(folder / f"{tree.lidar_token_b}_lidarseg.bin")
    with pytest.raises(DataError, match=r"2 prediction\(s\) outside the class indices 1..16: \[0, 17\]"):
        evaluate_predictions("nuscenes", tree.root, tmp_path / "pred", split="mini_val", version="v1.0-mini",
                             progress=False, strict=strict)  # fmt: skip
