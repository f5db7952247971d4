"""Procedural street scenes in the `world` frame (x along the road, y to the left, z up, ground z = 0).

A scene is a static TriMesh (road, lane markings, parking, kerbs and sidewalks, terrain, other ground,
buildings, fences, vegetation, trees, poles, signs, parked cars, trucks, bicycles, standing people) plus
moving objects (cars, pedestrians, cyclists) that translate at constant velocity. Everything is drawn
from one numpy Generator, so a scene is a pure function of its seed and config."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nerfseg.sim.classes import CLASS_BY_RAW_ID
from nerfseg.sim.config import SceneConfig
from nerfseg.sim.mesh import TriMesh, box, cylinder, ellipsoid, labeled, place, quad, sloped_quad

ROAD, PARKING, SIDEWALK, OTHER_GROUND, BUILDING, FENCE, LANE = 40, 44, 48, 49, 50, 51, 60
VEGETATION, TRUNK, TERRAIN, POLE, SIGN = 70, 71, 72, 80, 81
CAR, BICYCLE, TRUCK, PERSON, BICYCLIST = 10, 11, 18, 30, 31
MOVING_CAR, MOVING_BICYCLIST, MOVING_PERSON = 252, 253, 254


@dataclass
class MovingObject:
    """A rigid object translating at constant velocity: world position at time t is
    ``position + velocity * t`` (metres, seconds); ``local`` holds its triangles in its own frame."""

    local: TriMesh
    position: np.ndarray
    yaw: float
    velocity: np.ndarray

    @property
    def radius(self) -> float:
        """Horizontal radius (metres) of a circle around ``position`` holding the whole object."""
        return float(np.linalg.norm(self.local.vertices[..., :2].reshape(-1, 2), axis=1).max(initial=0.0))

    def at(self, time: float) -> TriMesh:
        """The object's TriMesh in the world frame at ``time`` seconds."""
        where = self.position + self.velocity * time
        return TriMesh(
            place(self.local.vertices, where, self.yaw),
            self.local.colors,
            self.local.semantic,
            self.local.instance,
        )


@dataclass
class Scene:
    """A street: ``static`` mesh, ``moving`` objects, the ego lane centre ``ego_y`` (metres) and the x range
    [x_min, x_max] the street covers."""

    static: TriMesh
    moving: list[MovingObject] = field(default_factory=list)
    ego_y: float = 0.0
    x_min: float = 0.0
    x_max: float = 0.0

    def dynamic_at(self, time: float, center: np.ndarray | None = None, radius: float = np.inf) -> TriMesh:
        """The moving objects at ``time`` seconds (those within ``radius`` metres of ``center`` (3,) in the
        xy plane, or all), as one world-frame TriMesh."""
        chosen = self.moving
        if center is not None and np.isfinite(radius):
            chosen = [
                m
                for m in self.moving
                if np.hypot(*(m.position[:2] + m.velocity[:2] * time - center[:2])) <= radius
            ]
        return TriMesh.concat([m.at(time) for m in chosen])


def _albedo(raw_id: int, rng: np.random.Generator, spread: float = 0.08) -> np.ndarray:
    base = np.asarray(CLASS_BY_RAW_ID[raw_id].albedo, np.float64)
    return np.clip(base * (1.0 + rng.normal(0.0, spread)) + rng.normal(0.0, spread / 2, 3), 0.02, 1.0)


CAR_PAINTS = np.array(
    [
        [0.55, 0.08, 0.08],
        [0.12, 0.18, 0.45],
        [0.85, 0.85, 0.85],
        [0.08, 0.08, 0.09],
        [0.45, 0.47, 0.50],
        [0.15, 0.35, 0.20],
        [0.70, 0.55, 0.20],
        [0.35, 0.10, 0.30],
    ]
)
FACADES = np.array(
    [
        [0.72, 0.62, 0.50],
        [0.60, 0.35, 0.28],
        [0.80, 0.78, 0.72],
        [0.55, 0.55, 0.58],
        [0.78, 0.70, 0.45],
        [0.45, 0.40, 0.38],
    ]
)


class _Builder:
    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.parts: list[TriMesh] = []
        self.moving: list[MovingObject] = []
        self.next_instance = 1

    def instance(self) -> int:
        self.next_instance += 1
        return self.next_instance - 1

    def add(self, tris: np.ndarray, raw_id: int, color=None, instance: int = 0) -> None:
        color = _albedo(raw_id, self.rng) if color is None else color
        self.parts.append(labeled(tris, raw_id, instance, color))


def car_mesh(rng: np.random.Generator, raw_id: int, instance: int) -> TriMesh:
    """A car in its own frame (x forward, base on z = 0): body, cabin, four dark wheels."""
    length, width = rng.uniform(3.9, 4.8), rng.uniform(1.7, 1.9)
    paint = np.clip(CAR_PAINTS[rng.integers(len(CAR_PAINTS))] + rng.normal(0, 0.03, 3), 0.02, 1)
    body = box((length, width, 0.75), (0.0, 0.0, 0.3 + 0.375))
    cabin = box((length * 0.55, width * 0.9, 0.55), (-0.1 * length, 0.0, 1.05 + 0.275))
    glass = np.clip(paint * 0.35 + 0.05, 0, 1)
    parts = [labeled(body, raw_id, instance, paint), labeled(cabin, raw_id, instance, glass)]
    for sx in (-0.32, 0.32):
        for sy in (-0.5, 0.5):
            wheel = cylinder(0.32, 0.22, 8, axis="y", center=(sx * length, sy * (width - 0.2), 0.32))
            parts.append(labeled(wheel, raw_id, instance, (0.05, 0.05, 0.05)))
    return TriMesh.concat(parts)


def truck_mesh(rng: np.random.Generator, instance: int) -> TriMesh:
    """A box truck: cab and a tall cargo box, on z = 0, x forward."""
    length = rng.uniform(6.5, 9.0)
    cargo_color = np.clip(np.asarray(CLASS_BY_RAW_ID[TRUCK].albedo) + rng.normal(0, 0.06, 3), 0.02, 1)
    cab_color = np.clip(CAR_PAINTS[rng.integers(len(CAR_PAINTS))], 0.02, 1)
    cargo = box((length * 0.72, 2.4, 2.8), (-length * 0.14, 0.0, 0.6 + 1.4))
    cab = box((length * 0.25, 2.3, 2.2), (length * 0.36, 0.0, 0.5 + 1.1))
    wheels = [
        labeled(cylinder(0.5, 0.3, 8, axis="y", center=(sx * length, sy, 0.5)), TRUCK, instance, (0.05,) * 3)
        for sx in (-0.35, 0.35)
        for sy in (-1.0, 1.0)
    ]
    return TriMesh.concat(
        [labeled(cargo, TRUCK, instance, cargo_color), labeled(cab, TRUCK, instance, cab_color), *wheels]
    )


def person_mesh(rng: np.random.Generator, raw_id: int, instance: int) -> TriMesh:
    """A pedestrian on z = 0: legs, torso, head."""
    height = rng.uniform(1.55, 1.9)
    shirt = np.clip(rng.uniform(0.1, 0.9, 3), 0.02, 1)
    trousers = np.clip(rng.uniform(0.05, 0.4, 3), 0.02, 1)
    skin = np.asarray(CLASS_BY_RAW_ID[PERSON].albedo) * rng.uniform(0.5, 1.1)
    legs = box((0.25, 0.35, 0.47 * height), (0.0, 0.0, 0.235 * height))
    torso = ellipsoid((0.16, 0.24, 0.2 * height), (0.0, 0.0, 0.66 * height), 4, 8)
    head = ellipsoid((0.11, 0.1, 0.12), (0.0, 0.0, height - 0.12), 4, 8)
    return TriMesh.concat(
        [
            labeled(legs, raw_id, instance, trousers),
            labeled(torso, raw_id, instance, shirt),
            labeled(head, raw_id, instance, np.clip(skin, 0.02, 1)),
        ]
    )


def bicycle_mesh(rng: np.random.Generator, raw_id: int, instance: int, rider: bool) -> TriMesh:
    """A bicycle on z = 0 (x forward), optionally with its rider (one label, as SemanticKITTI's bicyclist)."""
    frame_color = np.clip(rng.uniform(0.1, 0.9, 3), 0.02, 1)
    parts = [
        labeled(cylinder(0.34, 0.05, 10, axis="y", center=(sx, 0.0, 0.34)), raw_id, instance, (0.05,) * 3)
        for sx in (-0.52, 0.52)
    ]
    parts.append(labeled(box((1.0, 0.06, 0.08), (0.0, 0.0, 0.6)), raw_id, instance, frame_color))
    parts.append(labeled(box((0.06, 0.06, 0.5), (-0.15, 0.0, 0.6)), raw_id, instance, frame_color))
    if rider:
        person = person_mesh(rng, raw_id, instance)
        person.vertices = (person.vertices * np.float32(0.8) + np.float32([[-0.1, 0.0, 0.55]])).astype(
            np.float32
        )
        parts.append(person)
    return TriMesh.concat(parts)


def generate_scene(
    config: SceneConfig, rng: np.random.Generator, x_start: float, x_end: float, ego_speed: float
) -> Scene:
    """A street covering x in [x_start - margin, x_end + margin] (metres). The ego drives in the right
    lane (y < 0) towards +x at ``ego_speed`` m/s starting at x = x_start at time 0."""
    b = _Builder(rng)
    x0, x1 = x_start - config.margin_m, x_end + config.margin_m
    length = x1 - x0
    per_100 = length / 100.0
    lane = config.lane_width_m * rng.uniform(0.92, 1.08)
    road_half = lane  # two lanes, one each way
    park_w = 2.3
    side_w = config.sidewalk_width_m * rng.uniform(0.8, 1.3)
    kerb = config.kerb_height_m

    # Road surface and lane markings.
    b.add(quad(x0, x1, -road_half, road_half, 0.0), ROAD, (0.33, 0.33, 0.35))
    for y in (-road_half + 0.25, road_half - 0.25):
        b.add(quad(x0, x1, y - 0.07, y + 0.07, 0.01), LANE, (0.92, 0.92, 0.9))
    dash_x = np.arange(x0, x1, 9.0)
    dashes = np.concatenate([quad(x, x + 3.0, -0.08, 0.08, 0.01) for x in dash_x])
    b.add(dashes, LANE, (0.92, 0.92, 0.9))

    for side in (-1.0, 1.0):
        # Parking strip: alternating parking bays and plain road surface.
        x = x0
        bays = []
        while x < x1:
            seg = rng.uniform(12.0, 35.0)
            is_bay = rng.random() < 0.55
            raw = PARKING if is_bay else ROAD
            y_a, y_b = sorted((side * road_half, side * (road_half + park_w)))
            b.add(
                quad(x, min(x + seg, x1), y_a, y_b, 0.0),
                raw,
                (0.45, 0.42, 0.40) if is_bay else (0.33, 0.33, 0.35),
            )
            if is_bay:
                bays.append((x, min(x + seg, x1)))
            x += seg
        kerb_y = side * (road_half + park_w)
        walk_y = side * (road_half + park_w + side_w)
        # Sidewalk with its kerb (a low box).
        b.add(box((length, side_w, kerb), ((x0 + x1) / 2, (kerb_y + walk_y) / 2, kerb / 2)), SIDEWALK)
        # Verge: a bank of terrain rising away from the sidewalk, with patches of other ground (gravel).
        verge_w = rng.uniform(3.0, 7.0)
        verge_y = side * (abs(walk_y) + verge_w)
        rise = verge_w * rng.uniform(0.02, 0.1)
        x = x0
        while x < x1:
            seg = rng.uniform(8.0, 30.0)
            raw = OTHER_GROUND if rng.random() < 0.25 else TERRAIN
            b.add(sloped_quad(x, min(x + seg, x1), walk_y, verge_y, kerb, kerb + rise), raw)
            x += seg
        # Far ground behind the building line.
        b.add(quad(x0, x1, *sorted((verge_y, side * 70.0)), kerb + rise), TERRAIN)

        # Buildings with gaps; fences and bushes in the gaps.
        x = x0
        while x < x1:
            width = rng.uniform(8.0, 26.0)
            if rng.random() < 0.75:
                depth, height = rng.uniform(8.0, 15.0), rng.uniform(5.0, 20.0)
                face = np.clip(FACADES[rng.integers(len(FACADES))] + rng.normal(0, 0.04, 3), 0.02, 1)
                cy = side * (abs(verge_y) + depth / 2)
                b.add(box((width, depth, height), (x + width / 2, cy, height / 2)), BUILDING, face)
            else:
                fh = rng.uniform(1.0, 2.2)
                b.add(box((width, 0.08, fh), (x + width / 2, verge_y - side * 0.3, fh / 2)), FENCE)
                for _ in range(rng.integers(0, 3)):
                    r = rng.uniform(0.6, 1.4, 3)
                    b.add(
                        ellipsoid(r, (x + rng.uniform(0, width), verge_y - side * 1.2, r[2] * 0.7)),
                        VEGETATION,
                    )
            x += width + rng.uniform(0.0, 6.0)

        # Trees (trunk + crown) and bushes on the verge.
        for xt in rng.uniform(x0, x1, rng.poisson(config.trees * per_100 / 2)):
            yt = side * (abs(walk_y) + rng.uniform(0.8, verge_w - 0.5))
            h, r = rng.uniform(2.0, 3.5), rng.uniform(0.12, 0.3)
            b.add(cylinder(r, h + 0.5, 8, center=(xt, yt, 0.0)), TRUNK)
            cr = rng.uniform(1.4, 2.8)
            b.add(ellipsoid((cr, cr, cr * rng.uniform(0.8, 1.3)), (xt, yt, h + cr * 0.8), 6, 10), VEGETATION)
        for xt in rng.uniform(x0, x1, rng.poisson(config.bushes * per_100 / 2)):
            yt = side * (abs(walk_y) + rng.uniform(0.8, verge_w))
            r = rng.uniform(0.5, 1.3, 3)
            b.add(ellipsoid(r, (xt, yt, r[2] * 0.6), 5, 8), VEGETATION)

        # Poles near the kerb; some carry a traffic sign facing the traffic.
        pole_y = kerb_y + side * 0.4
        for xp in rng.uniform(x0, x1, rng.poisson(config.poles * per_100 / 2)):
            h = rng.uniform(4.0, 8.0)
            b.add(cylinder(rng.uniform(0.07, 0.13), h, 8, center=(xp, pole_y, kerb)), POLE)
        for xp in rng.uniform(x0, x1, rng.poisson(config.signs * per_100 / 2)):
            h = rng.uniform(2.0, 2.6)
            b.add(cylinder(0.05, h, 6, center=(xp, pole_y, kerb)), POLE)
            plate = box((0.05, rng.uniform(0.5, 0.8), rng.uniform(0.5, 0.8)), (xp, pole_y, kerb + h + 0.3))
            b.add(
                plate,
                SIGN,
                np.clip(
                    np.asarray([[0.1, 0.25, 0.8], [0.8, 0.1, 0.1], [0.95, 0.85, 0.1]])[rng.integers(3)], 0, 1
                ),
            )

        # Parked cars and trucks in the bays.
        car_y = side * (road_half + park_w / 2)
        for xa, xb in bays:
            x = xa + rng.uniform(0.5, 3.0)
            while x < xb - 5.0:
                if rng.random() < config.parked_cars / (config.parked_cars + 1e-9) * 0.8:
                    inst = b.instance()
                    if rng.random() < config.trucks / max(config.parked_cars, 1e-9):
                        mesh, L = truck_mesh(rng, inst), 9.0
                    else:
                        mesh, L = car_mesh(rng, CAR, inst), 5.0
                    yaw = 0.0 if rng.random() < 0.5 else np.pi
                    b.parts.append(
                        TriMesh(
                            place(mesh.vertices, (x + L / 2, car_y, 0.0), yaw),
                            mesh.colors,
                            mesh.semantic,
                            mesh.instance,
                        )
                    )
                    x += L + rng.uniform(0.8, 3.0)
                else:
                    x += rng.uniform(3.0, 8.0)

        # Pedestrians on the sidewalk (standing or walking), parked bicycles.
        walk_mid = (kerb_y + walk_y) / 2
        for xp in rng.uniform(x0, x1, rng.poisson(config.pedestrians * per_100 / 2)):
            yp = walk_mid + rng.uniform(-0.3, 0.3) * side_w
            if rng.random() < 0.5:
                inst = b.instance()
                mesh = person_mesh(rng, PERSON, inst)
                b.parts.append(
                    TriMesh(
                        place(mesh.vertices, (xp, yp, kerb), rng.uniform(0, 2 * np.pi)),
                        mesh.colors,
                        mesh.semantic,
                        mesh.instance,
                    )
                )
            else:
                inst = b.instance()
                heading = 0.0 if rng.random() < 0.5 else np.pi
                speed = rng.uniform(0.8, 1.6)
                b.moving.append(
                    MovingObject(
                        person_mesh(rng, MOVING_PERSON, inst),
                        np.array([xp, yp, kerb]),
                        heading,
                        np.array([np.cos(heading) * speed, 0.0, 0.0]),
                    )
                )
        for xp in rng.uniform(x0, x1, rng.poisson(config.bicycles * per_100 / 2)):
            inst = b.instance()
            mesh = bicycle_mesh(rng, BICYCLE, inst, rider=False)
            yb = walk_y - side * 0.6
            b.parts.append(
                TriMesh(
                    place(mesh.vertices, (xp, yb, kerb), rng.uniform(-0.3, 0.3)),
                    mesh.colors,
                    mesh.semantic,
                    mesh.instance,
                )
            )

    # Moving traffic: same direction as the ego ahead of / behind it (never reaching it), oncoming in the
    # left lane; cyclists along the edge lines.
    ego_y = -lane / 2
    duration = (x_end - x_start) / max(ego_speed, 1e-3)
    for _ in range(rng.poisson(config.moving_cars * per_100)):
        inst = b.instance()
        mesh = car_mesh(rng, MOVING_CAR, inst)
        if rng.random() < 0.5:  # oncoming
            speed = rng.uniform(5.0, 12.0)
            xs = rng.uniform(x0, x1 + speed * duration)
            b.moving.append(
                MovingObject(mesh, np.array([xs, lane / 2, 0.0]), np.pi, np.array([-speed, 0, 0]))
            )
        elif rng.random() < 0.7:  # ahead, a little faster than the ego
            speed = ego_speed + rng.uniform(0.3, 2.5)
            xs = x_start + rng.uniform(12.0, 60.0)
            b.moving.append(MovingObject(mesh, np.array([xs, ego_y, 0.0]), 0.0, np.array([speed, 0, 0])))
        else:  # behind, a little slower
            speed = max(ego_speed - rng.uniform(0.3, 2.0), 0.0)
            xs = x_start - rng.uniform(12.0, 40.0)
            b.moving.append(MovingObject(mesh, np.array([xs, ego_y, 0.0]), 0.0, np.array([speed, 0, 0])))
    for _ in range(rng.poisson(config.cyclists * per_100)):
        inst = b.instance()
        mesh = bicycle_mesh(rng, MOVING_BICYCLIST, inst, rider=True)
        side = -1.0 if rng.random() < 0.5 else 1.0
        speed = rng.uniform(3.0, 6.0)
        heading = 0.0 if side < 0 else np.pi
        xs = rng.uniform(x0, x1)
        b.moving.append(
            MovingObject(
                mesh,
                np.array([xs, side * (road_half - 0.45), 0.0]),
                heading,
                np.array([np.cos(heading) * speed, 0.0, 0.0]),
            )
        )
    return Scene(TriMesh.concat(b.parts), b.moving, ego_y, x0, x1)
