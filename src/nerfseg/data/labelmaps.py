"""One label-map table per dataset: raw label ids -> train ids (with IGNORE_INDEX) and the inverse used
for benchmark submission files.

SemanticKITTI: the official learning map of semantic-kitti-api ``config/semantic-kitti.yaml`` (19 classes;
moving classes map to their static class; unlabeled, outlier, other-structure and other-object are
ignored). Train id ``t`` is the api's cross-entropy id ``t + 1`` (the api's id 0 is our IGNORE_INDEX).

nuScenes-lidarseg: the devkit's ``LidarsegClassMapper`` (32 fine classes -> 16 challenge classes, 0 =
ignore). Train id ``t`` is the challenge class index ``t + 1``, which is also what submission files hold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nerfseg.data.sample import IGNORE_INDEX


@dataclass(frozen=True)
class LabelMap:
    """Label conventions of one dataset.

    Attributes:
        name: dataset name.
        class_names: the C train class names; train id i is ``class_names[i]``.
        raw_to_train: (R,) int64 lookup table, raw id -> train id or IGNORE_INDEX (raw ids >= R and raw ids
            the dataset does not define map to IGNORE_INDEX too).
        train_to_submission: (C,) int64, the id a benchmark submission file holds for each train id
            (SemanticKITTI: canonical raw id; nuScenes: challenge class index 1..16).
        colors: (C, 3) uint8 RGB colour per train class.
        raw_names: raw id -> name of every raw id the dataset defines.
    """

    name: str
    class_names: tuple[str, ...]
    raw_to_train: np.ndarray
    train_to_submission: np.ndarray
    colors: np.ndarray
    raw_names: dict[int, str]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def known_raw_ids(self) -> np.ndarray:
        """(K,) int64 sorted raw ids the dataset defines (anything else in a label file is an error)."""
        return np.array(sorted(self.raw_names), dtype=np.int64)

    def to_train(self, raw: np.ndarray) -> np.ndarray:
        """Map raw ids (any integer array) to (same shape) int64 train ids; unknown ids -> IGNORE_INDEX.

        One table lookup (``take`` with ids past the table clipped onto an appended IGNORE_INDEX entry):
        about 20x faster than a boolean-masked assignment on a 1242 x 375 semantic image."""
        raw = np.asarray(raw)
        if raw.dtype.kind not in "iu":
            raw = raw.astype(np.int64)
        if raw.size and raw.dtype.kind == "i" and int(raw.min()) < 0:  # rare: negative ids are unknown
            raw = np.where(raw < 0, self.raw_to_train.size, raw)
        table = np.append(self.raw_to_train.astype(np.int64), np.int64(IGNORE_INDEX))
        return np.take(table, raw, mode="clip")

    def to_submission(self, train: np.ndarray) -> np.ndarray:
        """Map train ids (values in [0, C)) to submission ids; raises ValueError for other values."""
        train = np.asarray(train).astype(np.int64)
        if train.size and (train.min() < 0 or train.max() >= self.num_classes):
            raise ValueError(f"train ids must lie in [0, {self.num_classes}) to be written to a submission")
        return self.train_to_submission[train]

    def unknown_raw_ids(self, raw: np.ndarray) -> np.ndarray:
        """Sorted unique raw ids present in ``raw`` that the dataset does not define."""
        raw = np.asarray(raw)
        if raw.size and raw.dtype.kind in "iu" and int(raw.min()) >= 0 and int(raw.max()) < 1 << 20:
            present = np.flatnonzero(np.bincount(raw.ravel())).astype(np.int64)  # ~5x np.unique's speed
        else:  # uint64 stays unsigned: ids >= 2**63 would wrap negative as int64
            present = np.unique(raw.astype(np.uint64 if raw.dtype == np.uint64 else np.int64))
        return present[~np.isin(present, self.known_raw_ids.astype(present.dtype))]


def _build(
    name: str,
    raw_names: dict[int, str],
    learning_map: dict[int, int],
    class_names: tuple[str, ...],
    train_to_submission: list[int],
    colors: list[tuple[int, int, int]],
) -> LabelMap:
    lut = np.full(max(learning_map) + 1, IGNORE_INDEX, dtype=np.int64)
    for raw, train in learning_map.items():
        lut[raw] = train
    lut.setflags(write=False)
    submission = np.array(train_to_submission, dtype=np.int64)
    submission.setflags(write=False)
    color_array = np.array(colors, dtype=np.uint8)
    color_array.setflags(write=False)
    assert len(class_names) == submission.size == color_array.shape[0]
    return LabelMap(name, class_names, lut, submission, color_array, dict(raw_names))


_I = IGNORE_INDEX

SEMANTICKITTI_RAW_NAMES = {
    0: "unlabeled", 1: "outlier", 10: "car", 11: "bicycle", 13: "bus", 15: "motorcycle", 16: "on-rails",
    18: "truck", 20: "other-vehicle", 30: "person", 31: "bicyclist", 32: "motorcyclist", 40: "road",
    44: "parking", 48: "sidewalk", 49: "other-ground", 50: "building", 51: "fence", 52: "other-structure",
    60: "lane-marking", 70: "vegetation", 71: "trunk", 72: "terrain", 80: "pole", 81: "traffic-sign",
    99: "other-object", 252: "moving-car", 253: "moving-bicyclist", 254: "moving-person",
    255: "moving-motorcyclist", 256: "moving-on-rails", 257: "moving-bus", 258: "moving-truck",
    259: "moving-other-vehicle",
}  # fmt: skip

# semantic-kitti.yaml learning_map, with the api's xentropy id shifted down by one (api 0 -> IGNORE_INDEX).
SEMANTICKITTI_LEARNING_MAP = {
    0: _I, 1: _I, 10: 0, 11: 1, 13: 4, 15: 2, 16: 4, 18: 3, 20: 4, 30: 5, 31: 6, 32: 7, 40: 8, 44: 9,
    48: 10, 49: 11, 50: 12, 51: 13, 52: _I, 60: 8, 70: 14, 71: 15, 72: 16, 80: 17, 81: 18, 99: _I,
    252: 0, 253: 6, 254: 5, 255: 7, 256: 4, 257: 4, 258: 3, 259: 4,
}  # fmt: skip

SEMANTICKITTI = _build(
    "semantickitti",
    SEMANTICKITTI_RAW_NAMES,
    SEMANTICKITTI_LEARNING_MAP,
    class_names=(
        "car",
        "bicycle",
        "motorcycle",
        "truck",
        "other-vehicle",
        "person",
        "bicyclist",
        "motorcyclist",
        "road",
        "parking",
        "sidewalk",
        "other-ground",
        "building",
        "fence",
        "vegetation",
        "trunk",
        "terrain",
        "pole",
        "traffic-sign",
    ),  # fmt: skip
    # semantic-kitti.yaml learning_map_inv (xentropy 1..19 -> canonical raw id).
    train_to_submission=[10, 11, 15, 18, 20, 30, 31, 32, 40, 44, 48, 49, 50, 51, 70, 71, 72, 80, 81],
    # semantic-kitti.yaml color_map of the canonical raw ids (stored there as BGR), here as RGB.
    colors=[
        (100, 150, 245),
        (100, 230, 245),
        (30, 60, 150),
        (80, 30, 180),
        (0, 0, 255),
        (255, 30, 30),
        (255, 40, 200),
        (150, 30, 90),
        (255, 0, 255),
        (255, 150, 255),
        (75, 0, 75),
        (175, 0, 75),
        (255, 200, 0),
        (255, 120, 50),
        (0, 175, 0),
        (135, 60, 0),
        (150, 240, 80),
        (255, 240, 150),
        (255, 0, 0),
    ],  # fmt: skip
)

NUSCENES_RAW_NAMES = {
    0: "noise", 1: "animal", 2: "human.pedestrian.adult", 3: "human.pedestrian.child",
    4: "human.pedestrian.construction_worker", 5: "human.pedestrian.personal_mobility",
    6: "human.pedestrian.police_officer", 7: "human.pedestrian.stroller", 8: "human.pedestrian.wheelchair",
    9: "movable_object.barrier", 10: "movable_object.debris", 11: "movable_object.pushable_pullable",
    12: "movable_object.trafficcone", 13: "static_object.bicycle_rack", 14: "vehicle.bicycle",
    15: "vehicle.bus.bendy", 16: "vehicle.bus.rigid", 17: "vehicle.car", 18: "vehicle.construction",
    19: "vehicle.emergency.ambulance", 20: "vehicle.emergency.police", 21: "vehicle.motorcycle",
    22: "vehicle.trailer", 23: "vehicle.truck", 24: "flat.driveable_surface", 25: "flat.other",
    26: "flat.sidewalk", 27: "flat.terrain", 28: "static.manmade", 29: "static.other",
    30: "static.vegetation", 31: "vehicle.ego",
}  # fmt: skip

# nuscenes-devkit LidarsegClassMapper fine -> coarse, with coarse index c shifted to train id c - 1.
NUSCENES_LEARNING_MAP = {
    0: _I, 1: _I, 2: 6, 3: 6, 4: 6, 5: _I, 6: 6, 7: _I, 8: _I, 9: 0, 10: _I, 11: _I, 12: 7, 13: _I,
    14: 1, 15: 2, 16: 2, 17: 3, 18: 4, 19: _I, 20: _I, 21: 5, 22: 8, 23: 9, 24: 10, 25: 11, 26: 12,
    27: 13, 28: 14, 29: _I, 30: 15, 31: _I,
}  # fmt: skip

NUSCENES = _build(
    "nuscenes",
    NUSCENES_RAW_NAMES,
    NUSCENES_LEARNING_MAP,
    class_names=(
        "barrier",
        "bicycle",
        "bus",
        "car",
        "construction_vehicle",
        "motorcycle",
        "pedestrian",
        "traffic_cone",
        "trailer",
        "truck",
        "driveable_surface",
        "other_flat",
        "sidewalk",
        "terrain",
        "manmade",
        "vegetation",
    ),  # fmt: skip
    train_to_submission=list(range(1, 17)),
    # the devkit's coarse colour map (RGB).
    colors=[
        (112, 128, 144),
        (220, 20, 60),
        (255, 127, 80),
        (255, 158, 0),
        (233, 150, 70),
        (255, 61, 99),
        (0, 0, 230),
        (47, 79, 79),
        (255, 140, 0),
        (255, 99, 71),
        (0, 207, 191),
        (175, 0, 75),
        (75, 0, 75),
        (112, 180, 60),
        (222, 184, 135),
        (0, 175, 0),
    ],  # fmt: skip
)


def semantickitti_raw_to_train(label: np.ndarray) -> np.ndarray:
    """(N,) uint32 SemanticKITTI labels (instance << 16 | semantic) -> (N,) int64 train ids."""
    return SEMANTICKITTI.to_train(np.asarray(label).astype(np.int64) & 0xFFFF)
