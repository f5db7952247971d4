"""Ray-cast camera images with per-class albedo, procedural texture and Lambert shading, plus the
ground-truth semantic (raw ids) and depth (metres along the camera z axis) images."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nerfseg.geometry.rays import image_pixel_rays
from nerfseg.sim.classes import TEXTURE_LUT, TEXTURE_SCALE_LUT
from nerfseg.sim.mesh import TriMesh
from nerfseg.sim.raycast import RayCaster
from nerfseg.sim.rig import rotate
from nerfseg.sim.scene import BUILDING, Scene

SUN_DIRECTION = np.array([0.45, -0.35, 0.82]) / np.linalg.norm([0.45, -0.35, 0.82])
SKY_TOP = np.array([0.38, 0.58, 0.88])
SKY_HORIZON = np.array([0.80, 0.86, 0.93])


@dataclass
class Rendering:
    """One rendered camera frame: ``rgb`` (H, W, 3) uint8, ``semantic`` (H, W) uint16 raw ids (0 = sky),
    ``depth`` (H, W) float32 metres along the camera z axis (0 = no hit), ``instance`` (H, W) int32."""

    rgb: np.ndarray
    semantic: np.ndarray
    depth: np.ndarray
    instance: np.ndarray


def _hash_noise(cells: np.ndarray, salt: int) -> np.ndarray:
    """Deterministic pseudo-random values in [0, 1) for integer cells (N, 3) (a cheap integer hash)."""
    c = cells.astype(np.int64) & 0xFFFFF
    h = (c[:, 0] * 73856093) ^ (c[:, 1] * 19349663) ^ (c[:, 2] * 83492791) ^ (salt * 2654435761)
    h = (h ^ (h >> 13)) * 1274126177
    h = h ^ (h >> 16)
    return (h & 0xFFFF).astype(np.float64) / 65536.0


def texture(points: np.ndarray, semantic: np.ndarray) -> np.ndarray:
    """(N,) brightness factor around 1 for world points (N, 3) of classes (N,): two octaves of cell noise
    at the class's texture scale, scaled by its texture strength; windows on building facades."""
    scale = TEXTURE_SCALE_LUT[semantic][:, None].astype(np.float64)
    coarse = _hash_noise(np.floor(points / scale), 1)
    fine = _hash_noise(np.floor(points / (scale * 0.25)), 2)
    factor = 1.0 + TEXTURE_LUT[semantic] * ((coarse - 0.5) + 0.5 * (fine - 0.5))
    facade = semantic == BUILDING
    if np.any(facade):
        p = points[facade]
        along = p[:, 0] + p[:, 1]
        window = ((along / 3.0) % 1.0 > 0.35) & ((along / 3.0) % 1.0 < 0.75)
        window &= ((p[:, 2] / 3.2) % 1.0 > 0.35) & ((p[:, 2] / 3.2) % 1.0 < 0.8) & (p[:, 2] > 1.0)
        factor[np.nonzero(facade)[0][window]] *= 0.35
    return factor


def render(
    scene: Scene,
    static_caster: RayCaster,
    world_T_cam: np.ndarray,
    K: np.ndarray,
    width: int,
    height: int,
    time: float,
    cam_dirs: np.ndarray | None = None,
) -> Rendering:
    """Render the scene at ``time`` seconds from the camera with pose ``world_T_cam`` (4, 4) and
    intrinsics ``K`` (3, 3) for a ``width`` x ``height`` image (pixel centres at (u + 0.5, v + 0.5)).
    ``cam_dirs``: the (H*W, 3) result of ``image_pixel_rays(K, width, height)`` when the caller caches it."""
    if cam_dirs is None:
        cam_dirs = image_pixel_rays(K, width, height)
    world_dirs = rotate(cam_dirs, world_T_cam[:3, :3])
    origins = np.broadcast_to(world_T_cam[:3, 3], world_dirs.shape)
    # One Embree scene with the moving objects at the capture time: cheaper than casting every pixel twice.
    moving = scene.dynamic_at(time, world_T_cam[:3, 3], 250.0)
    mesh = TriMesh.concat([static_caster.mesh, moving]) if moving.num_triangles else static_caster.mesh
    caster = RayCaster(mesh) if moving.num_triangles else static_caster
    hits = caster.cast(origins, world_dirs)
    idx = np.nonzero(hits.hit)[0]
    sky = np.nonzero(~hits.hit)[0]
    tri = hits.triangle[idx]
    color = np.empty((width * height, 3), np.float32)
    up = np.clip(world_dirs[sky, 2], 0.0, 1.0)[:, None] ** 0.6
    color[sky] = SKY_HORIZON * (1 - up) + SKY_TOP * up
    distance = hits.distance[idx]
    points = origins[idx] + world_dirs[idx] * distance[:, None]
    semantic = mesh.semantic[tri]
    normal = hits.normal[idx]
    lambert = np.clip(rotate(normal, SUN_DIRECTION[None, :])[:, 0], 0.0, 1.0)
    shade = (0.45 + 0.075 * normal[:, 2] + 0.7 * lambert) * texture(points, semantic)
    haze = (1.0 - np.exp(-distance / 300.0))[:, None]
    lit = np.minimum(mesh.colors[tri] * shade[:, None].astype(np.float32), 1.0)
    color[idx] = lit * (1 - haze) + SKY_HORIZON * haze
    rgb = (np.clip(color, 0, 1) ** np.float32(1 / 1.6) * 255 + 0.5).astype(np.uint8).reshape(height, width, 3)
    sem = np.zeros(width * height, np.uint16)
    sem[idx] = semantic
    depth = np.zeros(width * height, np.float32)
    depth[idx] = distance * cam_dirs[idx, 2]
    inst = np.zeros(width * height, np.int32)
    inst[idx] = mesh.instance[tri]
    return Rendering(
        rgb, sem.reshape(height, width), depth.reshape(height, width), inst.reshape(height, width)
    )
