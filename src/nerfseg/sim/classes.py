"""The simulator's class table: SemanticKITTI raw ids with their look (albedo, texture) and LiDAR
remission, and the map to nuScenes-lidarseg's 32 raw class indices."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SimClass:
    """One simulated surface class.

    Attributes:
        raw_id: SemanticKITTI raw semantic id (written to ``labels/`` and ``semantic_2/``).
        name: SemanticKITTI class name.
        albedo: (r, g, b) base colour in [0, 1].
        texture: strength in [0, 1] of the procedural texture (0 = flat colour).
        texture_scale: size of the texture cells, metres.
        remission: mean LiDAR remission in [0, 1] (reflectivity at normal incidence).
        nuscenes_index: nuScenes-lidarseg raw class index (0..31) the class is written as.
    """

    raw_id: int
    name: str
    albedo: tuple[float, float, float]
    texture: float
    texture_scale: float
    remission: float
    nuscenes_index: int


# nuScenes-lidarseg raw indices used below: 2 human.pedestrian.adult, 14 vehicle.bicycle, 17 vehicle.car,
# 23 vehicle.truck, 24 flat.driveable_surface, 25 flat.other, 26 flat.sidewalk, 27 flat.terrain,
# 28 static.manmade, 30 static.vegetation.
SIM_CLASSES: tuple[SimClass, ...] = (
    SimClass(10, "car", (0.55, 0.10, 0.10), 0.05, 0.3, 0.45, 17),
    SimClass(11, "bicycle", (0.10, 0.30, 0.60), 0.05, 0.1, 0.30, 14),
    SimClass(18, "truck", (0.85, 0.85, 0.80), 0.10, 0.5, 0.55, 23),
    SimClass(30, "person", (0.80, 0.55, 0.40), 0.20, 0.1, 0.20, 2),
    SimClass(31, "bicyclist", (0.95, 0.75, 0.10), 0.15, 0.1, 0.25, 14),
    SimClass(40, "road", (0.33, 0.33, 0.35), 0.35, 0.25, 0.12, 24),
    SimClass(44, "parking", (0.45, 0.42, 0.40), 0.35, 0.4, 0.18, 24),
    SimClass(48, "sidewalk", (0.70, 0.66, 0.60), 0.30, 0.5, 0.30, 26),
    SimClass(49, "other-ground", (0.50, 0.45, 0.30), 0.50, 0.3, 0.22, 25),
    SimClass(50, "building", (0.72, 0.62, 0.50), 0.25, 1.0, 0.40, 28),
    SimClass(51, "fence", (0.45, 0.30, 0.18), 0.45, 0.15, 0.35, 28),
    SimClass(60, "lane-marking", (0.95, 0.95, 0.92), 0.05, 0.2, 0.85, 24),
    SimClass(70, "vegetation", (0.18, 0.45, 0.15), 0.70, 0.25, 0.50, 30),
    SimClass(71, "trunk", (0.35, 0.22, 0.12), 0.40, 0.08, 0.28, 30),
    SimClass(72, "terrain", (0.45, 0.55, 0.22), 0.60, 0.35, 0.60, 27),
    SimClass(80, "pole", (0.60, 0.62, 0.65), 0.05, 0.2, 0.65, 28),
    SimClass(81, "traffic-sign", (0.10, 0.25, 0.80), 0.05, 0.2, 0.95, 28),
    SimClass(252, "moving-car", (0.20, 0.25, 0.55), 0.05, 0.3, 0.45, 17),
    SimClass(253, "moving-bicyclist", (0.95, 0.75, 0.10), 0.15, 0.1, 0.25, 14),
    SimClass(254, "moving-person", (0.30, 0.35, 0.60), 0.20, 0.1, 0.20, 2),
)

CLASS_BY_RAW_ID: dict[int, SimClass] = {c.raw_id: c for c in SIM_CLASSES}

# nuScenes-lidarseg's 32 raw classes in index order (the category table's names).
NUSCENES_CATEGORIES: tuple[str, ...] = (
    "noise",
    "animal",
    "human.pedestrian.adult",
    "human.pedestrian.child",
    "human.pedestrian.construction_worker",
    "human.pedestrian.personal_mobility",
    "human.pedestrian.police_officer",
    "human.pedestrian.stroller",
    "human.pedestrian.wheelchair",
    "movable_object.barrier",
    "movable_object.debris",
    "movable_object.pushable_pullable",
    "movable_object.trafficcone",
    "static_object.bicycle_rack",
    "vehicle.bicycle",
    "vehicle.bus.bendy",
    "vehicle.bus.rigid",
    "vehicle.car",
    "vehicle.construction",
    "vehicle.emergency.ambulance",
    "vehicle.emergency.police",
    "vehicle.motorcycle",
    "vehicle.trailer",
    "vehicle.truck",
    "flat.driveable_surface",
    "flat.other",
    "flat.sidewalk",
    "flat.terrain",
    "static.manmade",
    "static.other",
    "static.vegetation",
    "vehicle.ego",
)


def _lookup(values: dict[int, object], fill, dtype) -> np.ndarray:
    table = np.full((65536,) + np.shape(fill), fill, dtype=dtype)
    for raw_id, value in values.items():
        table[raw_id] = value
    return table


ALBEDO_LUT = _lookup({c.raw_id: c.albedo for c in SIM_CLASSES}, (0.0, 0.0, 0.0), np.float32)
"""(65536, 3) float32 albedo per raw id (black for ids the simulator does not use)."""
TEXTURE_LUT = _lookup({c.raw_id: c.texture for c in SIM_CLASSES}, 0.0, np.float32)
TEXTURE_SCALE_LUT = _lookup({c.raw_id: c.texture_scale for c in SIM_CLASSES}, 1.0, np.float32)
REMISSION_LUT = _lookup({c.raw_id: c.remission for c in SIM_CLASSES}, 0.0, np.float32)
NUSCENES_INDEX_LUT = _lookup({c.raw_id: c.nuscenes_index for c in SIM_CLASSES}, 0, np.uint8)
"""(65536,) uint8 nuScenes-lidarseg raw index per SemanticKITTI raw id (0 = noise for unknown ids)."""
