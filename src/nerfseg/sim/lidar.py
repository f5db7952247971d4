"""A rotating multi-beam LiDAR sweeping a scene while the ego moves.

Firing j of an A-step sweep with reference time t_ref happens at
``t_ref + period * ((j + 0.5) / A - 0.5)`` with azimuth ``-pi + 2 pi (j + 0.5) / A`` (counter-clockwise
from behind, pointing forward (+x) at t_ref). Each firing is cast from the LiDAR pose at its own time
against the static scene and the moving objects at (a slice of) that time. With ``deskew`` the returns
are expressed exactly in the LiDAR frame at t_ref; without it each return keeps its sensor-frame
coordinates at its firing time (a raw, motion-distorted scan)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nerfseg.sim.camera import texture
from nerfseg.sim.classes import ALBEDO_LUT, REMISSION_LUT
from nerfseg.sim.config import LidarConfig
from nerfseg.sim.mesh import TriMesh
from nerfseg.sim.raycast import Hits, RayCaster, combine
from nerfseg.sim.scene import Scene


@dataclass
class Scan:
    """One simulated sweep (N returns).

    Attributes:
        points: (N, 4) float32 x, y, z (metres, LiDAR frame at the reference time) and remission in [0, 1].
        semantic: (N,) int32 SemanticKITTI raw id. instance: (N,) int32 instance id (0 = stuff).
        ring: (N,) int32 beam index (0 = top beam). time: (N,) float64 firing time, seconds.
    """

    points: np.ndarray
    semantic: np.ndarray
    instance: np.ndarray
    ring: np.ndarray
    time: np.ndarray


def beam_directions(config: LidarConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit directions (A, B, 3) in the LiDAR frame, azimuth index (A, B) and beam index (A, B) of every
    firing, azimuth-major (all beams of firing 0 first)."""
    elevation = np.deg2rad(np.linspace(config.fov_up_deg, config.fov_down_deg, config.beams))
    azimuth = -np.pi + 2 * np.pi * (np.arange(config.azimuth_steps) + 0.5) / config.azimuth_steps
    az, el = np.meshgrid(azimuth, elevation, indexing="ij")
    dirs = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1)
    a_idx, b_idx = np.meshgrid(np.arange(config.azimuth_steps), np.arange(config.beams), indexing="ij")
    return dirs, a_idx, b_idx


def _cast_sweep(
    scene: Scene,
    static_caster: RayCaster,
    origins: np.ndarray,
    world_dirs: np.ndarray,
    a_idx: np.ndarray,
    world_T_lidar,
    t_ref: float,
    config: LidarConfig,
) -> tuple[Hits, TriMesh]:
    """Cast a sweep's rays against the static scene, then, per azimuth slice (``dynamic_time_slices``
    equal parts of the sweep), against the moving objects placed at the slice's middle time, keeping only
    objects whose bounding circle overlaps the slice's azimuth range."""
    hits = static_caster.cast(origins, world_dirs)
    meshes = [static_caster.mesh]
    offset = static_caster.mesh.num_triangles
    steps = config.azimuth_steps
    slices = max(1, min(config.dynamic_time_slices, steps))
    slice_idx = (a_idx * slices) // steps
    ref = world_T_lidar(np.array([t_ref]))[0]
    radii = np.array([m.radius for m in scene.moving]) + 0.5 + config.sweep_period_s * 20.0
    half_width = np.pi / slices
    for k in range(slices):
        t_k = t_ref + config.sweep_period_s * ((k + 0.5) / slices - 0.5)
        az_mid = -np.pi + 2 * np.pi * (k + 0.5) / slices
        chosen = []
        for m, r in zip(scene.moving, radii, strict=True):
            rel = ref[:3, :3].T @ (m.position + m.velocity * t_k - ref[:3, 3])
            d = float(np.hypot(rel[0], rel[1]))
            if d > config.max_range_m + r:
                continue
            if d > r:
                gap = abs((np.arctan2(rel[1], rel[0]) - az_mid + np.pi) % (2 * np.pi) - np.pi)
                if gap > half_width + np.arcsin(r / d):
                    continue
            chosen.append(m)
        if not chosen:
            continue
        sel = np.nonzero(slice_idx == k)[0]
        dyn = TriMesh.concat([m.at(t_k) for m in chosen])
        part = RayCaster(dyn).cast(origins[sel], world_dirs[sel])
        merged = combine(Hits(hits.distance[sel], hits.triangle[sel], hits.normal[sel]), part, offset)
        hits.distance[sel], hits.triangle[sel], hits.normal[sel] = (
            merged.distance,
            merged.triangle,
            merged.normal,
        )
        meshes.append(dyn)
        offset += dyn.num_triangles
    return hits, TriMesh.concat(meshes)


def simulate_scan(
    scene: Scene,
    static_caster: RayCaster,
    world_T_lidar,
    t_ref: float,
    config: LidarConfig,
    rng: np.random.Generator,
) -> Scan:
    """Sweep the scene around reference time ``t_ref`` (seconds). ``world_T_lidar(times (K,)) -> (K, 4, 4)``
    gives the LiDAR pose at any time."""
    dirs, a_idx, b_idx = beam_directions(config)
    dirs, a_idx, b_idx = dirs.reshape(-1, 3), a_idx.ravel(), b_idx.ravel()
    steps = config.azimuth_steps
    fire_time = t_ref + config.sweep_period_s * ((a_idx + 0.5) / steps - 0.5)
    poses = world_T_lidar(fire_time)  # (R, 4, 4)
    origins = poses[:, :3, 3]
    world_dirs = np.einsum("rij,rj->ri", poses[:, :3, :3], dirs)
    hits, mesh = _cast_sweep(scene, static_caster, origins, world_dirs, a_idx, world_T_lidar, t_ref, config)

    rng_range = hits.distance + rng.normal(0.0, config.range_noise_m, hits.distance.shape)
    keep = hits.hit & (rng_range >= config.min_range_m) & (rng_range <= config.max_range_m)
    keep &= rng.random(keep.shape) >= config.dropout
    idx = np.nonzero(keep)[0]
    tri = hits.triangle[idx]
    rng_kept = rng_range[idx]
    if config.deskew:
        world_pts = origins[idx] + world_dirs[idx] * rng_kept[:, None]
        ref = np.linalg.inv(world_T_lidar(np.array([t_ref]))[0])
        xyz = world_pts @ ref[:3, :3].T + ref[:3, 3]
    else:
        xyz = dirs[idx] * rng_kept[:, None]
    semantic = mesh.semantic[tri]
    cos_inc = np.abs(np.sum(hits.normal[idx] * world_dirs[idx], axis=1))
    remission = REMISSION_LUT[semantic] * (0.55 + 0.45 * cos_inc) * np.exp(-rng_kept / 250.0)
    # Surface variation: brighter / darker paint than the class's albedo reflects more / less, and the same
    # procedural texture the camera shows modulates it spatially.
    luminance = mesh.colors[tri] @ np.float32([0.3, 0.59, 0.11])
    class_luminance = ALBEDO_LUT[semantic] @ np.float32([0.3, 0.59, 0.11])
    remission *= np.clip(luminance / np.maximum(class_luminance, 1e-3), 0.5, 1.5)
    world_hits = origins[idx] + world_dirs[idx] * hits.distance[idx, None]
    remission *= texture(world_hits, semantic)
    remission = np.clip(remission + rng.normal(0.0, config.remission_noise, remission.shape), 0.0, 1.0)
    points = np.concatenate([xyz, remission[:, None]], 1).astype(np.float32)
    return Scan(
        points,
        semantic.astype(np.int32),
        mesh.instance[tri].astype(np.int32),
        b_idx[idx].astype(np.int32),
        fire_time[idx],
    )
