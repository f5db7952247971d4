"""Label maps against the official tables, written here independently by class *name*."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from nerfseg.data import io
from nerfseg.data.labelmaps import NUSCENES, SEMANTICKITTI, semantickitti_raw_to_train
from nerfseg.data.sample import IGNORE_INDEX

# semantic-kitti.yaml: raw name -> learned class name (None = ignored), by name.
KITTI_BY_NAME = {
    "unlabeled": None, "outlier": None, "car": "car", "bicycle": "bicycle", "bus": "other-vehicle",
    "motorcycle": "motorcycle", "on-rails": "other-vehicle", "truck": "truck",
    "other-vehicle": "other-vehicle",
    "person": "person", "bicyclist": "bicyclist", "motorcyclist": "motorcyclist", "road": "road",
    "parking": "parking", "sidewalk": "sidewalk", "other-ground": "other-ground", "building": "building",
    "fence": "fence", "other-structure": None, "lane-marking": "road", "vegetation": "vegetation",
    "trunk": "trunk", "terrain": "terrain", "pole": "pole", "traffic-sign": "traffic-sign",
    "other-object": None, "moving-car": "car", "moving-bicyclist": "bicyclist", "moving-person": "person",
    "moving-motorcyclist": "motorcyclist", "moving-on-rails": "other-vehicle", "moving-bus": "other-vehicle",
    "moving-truck": "truck", "moving-other-vehicle": "other-vehicle",
}  # fmt: skip

# nuscenes-devkit LidarsegClassMapper.get_fine2coarse, by name.
NUSCENES_BY_NAME = {
    "noise": None, "human.pedestrian.adult": "pedestrian", "human.pedestrian.child": "pedestrian",
    "human.pedestrian.wheelchair": None, "human.pedestrian.stroller": None,
    "human.pedestrian.personal_mobility": None, "human.pedestrian.police_officer": "pedestrian",
    "human.pedestrian.construction_worker": "pedestrian", "animal": None, "vehicle.car": "car",
    "vehicle.motorcycle": "motorcycle", "vehicle.bicycle": "bicycle", "vehicle.bus.bendy": "bus",
    "vehicle.bus.rigid": "bus", "vehicle.truck": "truck", "vehicle.construction": "construction_vehicle",
    "vehicle.emergency.ambulance": None, "vehicle.emergency.police": None, "vehicle.trailer": "trailer",
    "movable_object.barrier": "barrier", "movable_object.trafficcone": "traffic_cone",
    "movable_object.pushable_pullable": None, "movable_object.debris": None,
    "static_object.bicycle_rack": None, "flat.driveable_surface": "driveable_surface",
    "flat.sidewalk": "sidewalk", "flat.terrain": "terrain", "flat.other": "other_flat",
    "static.manmade": "manmade", "static.vegetation": "vegetation", "static.other": None, "vehicle.ego": None,
}  # fmt: skip


def _check_by_name(label_map, by_name):
    assert set(label_map.raw_names.values()) == set(by_name)
    for raw, name in label_map.raw_names.items():
        target = by_name[name]
        expected = IGNORE_INDEX if target is None else label_map.class_names.index(target)
        assert label_map.to_train(np.array([raw]))[0] == expected, name


def test_semantickitti_map_matches_official_by_name():
    m = SEMANTICKITTI
    assert m.num_classes == 19 and m.colors.shape == (19, 3)
    _check_by_name(m, KITTI_BY_NAME)
    # The official learning_map_inv: train id -> canonical raw id, in this order.
    canonical = [10, 11, 15, 18, 20, 30, 31, 32, 40, 44, 48, 49, 50, 51, 70, 71, 72, 80, 81]
    np.testing.assert_array_equal(m.to_submission(np.arange(19)), canonical)
    np.testing.assert_array_equal(m.to_train(m.to_submission(np.arange(19))), np.arange(19))
    assert m.class_names[0] == "car" and m.class_names[-1] == "traffic-sign"


def test_nuscenes_map_matches_devkit_by_name():
    m = NUSCENES
    assert m.num_classes == 16 and len(m.raw_names) == 32
    _check_by_name(m, NUSCENES_BY_NAME)
    # devkit coarse indices 1..16 in this order; submission id = train id + 1.
    devkit = ["barrier", "bicycle", "bus", "car", "construction_vehicle", "motorcycle", "pedestrian",
              "traffic_cone", "trailer", "truck", "driveable_surface", "other_flat", "sidewalk", "terrain",
              "manmade", "vegetation"]  # fmt: skip
    assert list(m.class_names) == devkit
    np.testing.assert_array_equal(m.to_submission(np.arange(16)), np.arange(1, 17))


def test_unknown_ids_ignored_and_reported():
    raw = np.array([10, 5, 300, 70000, -1, 259])
    np.testing.assert_array_equal(SEMANTICKITTI.to_train(raw), [0, 255, 255, 255, 255, 4])
    np.testing.assert_array_equal(SEMANTICKITTI.unknown_raw_ids(raw), [-1, 5, 300, 70000])


@given(st.lists(st.sampled_from(sorted(SEMANTICKITTI.raw_names)), min_size=1), st.integers(0, 0xFFFF))
def test_instance_bits_do_not_change_semantics(raws, instance):
    raw = np.array(raws, dtype=np.uint32)
    with_instance = raw | np.uint32(instance << 16)
    np.testing.assert_array_equal(semantickitti_raw_to_train(with_instance), SEMANTICKITTI.to_train(raw))


def test_real_semantickitti_labels(real_data):
    path = real_data / "semantickitti_50pt" / "sequences" / "00" / "labels" / "000000.label"
    raw = io.read_label_file(path, 50)
    train = semantickitti_raw_to_train(raw)
    names = {SEMANTICKITTI.class_names[t] for t in np.unique(train) if t != IGNORE_INDEX}
    # README: raw ids present 0, 50, 52, 70, 71, 80 -> unlabeled, building, (other-structure), vegetation...
    assert names == {"building", "vegetation", "trunk", "pole"}
    np.testing.assert_array_equal(train[(raw & 0xFFFF) == 52], IGNORE_INDEX)
    np.testing.assert_array_equal(train[(raw & 0xFFFF) == 0], IGNORE_INDEX)
    assert SEMANTICKITTI.unknown_raw_ids(raw & 0xFFFF).size == 0


def test_real_nuscenes_lidarseg_labels(real_data):
    folder = real_data / "nuscenes_lidarseg_40pt"
    raw = np.fromfile(next(folder.glob("*_lidarseg.bin")), dtype=np.uint8)
    assert raw.size == 40
    train = NUSCENES.to_train(raw)
    expected = {17: "car", 24: "driveable_surface", 27: "terrain", 28: "manmade", 30: "vegetation"}
    for raw_id, name in expected.items():
        np.testing.assert_array_equal(train[raw == raw_id], NUSCENES.class_names.index(name))
    np.testing.assert_array_equal(train[raw == 31], IGNORE_INDEX)  # vehicle.ego
