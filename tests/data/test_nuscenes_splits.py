"""The official nuScenes scene split stored as data (nuscenes-devkit ``utils/splits.py``)."""

from __future__ import annotations

from nerfseg.data.nuscenes_splits import SCENE_SPLITS, SPLIT_VERSIONS


def test_sizes_and_disjointness():
    sizes = {name: len(scenes) for name, scenes in SCENE_SPLITS.items()}
    assert sizes == {"train": 700, "val": 150, "test": 150, "mini_train": 8, "mini_val": 2}
    for scenes in SCENE_SPLITS.values():
        assert len(set(scenes)) == len(scenes)
    train, val, test = (set(SCENE_SPLITS[name]) for name in ("train", "val", "test"))
    assert not (train & val) and not (train & test) and not (val & test)
    # the devkit asserts the three together are the 1000 scenes of nuScenes
    assert len(train | val | test) == 1000
    # the mini scenes come from trainval (two of mini_train are val scenes there)
    mini = set(SCENE_SPLITS["mini_train"]) | set(SCENE_SPLITS["mini_val"])
    assert mini <= train | val
    assert set(SCENE_SPLITS["mini_train"]) & val == {"scene-0553", "scene-0796"}


def test_known_entries():
    assert SCENE_SPLITS["train"][:3] == ("scene-0001", "scene-0002", "scene-0004")
    assert SCENE_SPLITS["train"][-1] == "scene-1110"
    assert SCENE_SPLITS["val"][:2] == ("scene-0003", "scene-0012") and SCENE_SPLITS["val"][-1] == "scene-1073"
    assert SCENE_SPLITS["test"][0] == "scene-0077" and SCENE_SPLITS["test"][-1] == "scene-1043"
    assert SCENE_SPLITS["mini_val"] == ("scene-0103", "scene-0916")
    assert SCENE_SPLITS["mini_train"] == (
        "scene-0061", "scene-0553", "scene-0655", "scene-0757", "scene-0796", "scene-1077", "scene-1094",
        "scene-1100",
    )  # fmt: skip
    for scenes in SCENE_SPLITS.values():
        assert list(scenes) == sorted(scenes)  # the devkit lists are sorted by number


def test_versions():
    assert SPLIT_VERSIONS == {
        "train": "v1.0-trainval",
        "val": "v1.0-trainval",
        "test": "v1.0-test",
        "mini_train": "v1.0-mini",
        "mini_val": "v1.0-mini",
    }
