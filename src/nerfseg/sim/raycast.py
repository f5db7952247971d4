"""First-hit ray casting against triangle meshes.

`RayCaster` wraps Intel Embree (through the `embreex` binding): it measured about 0.3 s for 466k rays
against 40k triangles on the 2-core development machine, where a vectorised numpy test of every ray against
every analytic primitive would cost (rays x primitives) work per frame. `cast_reference` is a dense
numpy Möller-Trumbore implementation used to test it (and usable for tiny scenes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nerfseg.sim.mesh import TriMesh


@dataclass
class Hits:
    """First hits of R rays.

    Attributes:
        distance: (R,) float64 ray parameter t of the hit (metres for unit directions); inf on a miss.
        triangle: (R,) int64 index of the hit triangle in the mesh; -1 on a miss.
        normal: (R, 3) float64 unit geometric normal facing the ray origin; zero on a miss.
    """

    distance: np.ndarray
    triangle: np.ndarray
    normal: np.ndarray

    @property
    def hit(self) -> np.ndarray:
        return self.triangle >= 0


def _face_ray(normals: np.ndarray, directions: np.ndarray) -> np.ndarray:
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = normals / np.maximum(length, 1e-12)
    flip = np.sum(normals * directions, axis=1) > 0
    normals[flip] *= -1
    return normals


class RayCaster:
    """Embree scene of one TriMesh; ``cast`` returns the first hit of each ray."""

    def __init__(self, mesh: TriMesh):
        try:
            from embreex import rtcore_scene
            from embreex.mesh_construction import TriangleMesh
        except ImportError as err:
            from nerfseg.errors import UserFacingError

            raise UserFacingError(
                f"the simulator's ray caster needs the Embree binding: pip install embreex ({err})"
            ) from err

        self.mesh = mesh
        self._scene = rtcore_scene.EmbreeScene()
        if mesh.num_triangles:
            TriangleMesh(self._scene, np.ascontiguousarray(mesh.vertices, np.float32))

    def cast(self, origins: np.ndarray, directions: np.ndarray, chunk: int = 1 << 20) -> Hits:
        """origins (R, 3), directions (R, 3) unit vectors, both in the mesh frame (metres)."""
        r = origins.shape[0]
        distance = np.full(r, np.inf)
        triangle = np.full(r, -1, np.int64)
        normal = np.zeros((r, 3))
        if self.mesh.num_triangles == 0 or r == 0:
            return Hits(distance, triangle, normal)
        for start in range(0, r, chunk):
            sl = slice(start, min(start + chunk, r))
            out = self._scene.run(
                np.ascontiguousarray(origins[sl], np.float32),
                np.ascontiguousarray(directions[sl], np.float32),
                output=1,
            )
            hit = out["geomID"] >= 0
            idx = np.nonzero(hit)[0] + start
            distance[idx] = out["tfar"][hit]
            triangle[idx] = out["primID"][hit]
            normal[idx] = _face_ray(out["Ng"][hit].astype(np.float64), directions[idx])
        return Hits(distance, triangle, normal)


def cast_reference(mesh: TriMesh, origins: np.ndarray, directions: np.ndarray, eps: float = 1e-9) -> Hits:
    """Dense Möller-Trumbore reference: every ray against every triangle ((R x T) memory: small scenes)."""
    v0, v1, v2 = (mesh.vertices[:, i].astype(np.float64) for i in range(3))
    e1, e2 = v1 - v0, v2 - v0  # (T, 3)
    d = directions[:, None, :]  # (R, 1, 3)
    p = np.cross(d, e2[None])  # (R, T, 3)
    det = np.sum(e1[None] * p, -1)  # (R, T)
    ok = np.abs(det) > eps
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    s = origins[:, None, :] - v0[None]
    u = np.sum(s * p, -1) * inv
    q = np.cross(s, e1[None])
    v = np.sum(d * q, -1) * inv
    t = np.sum(e2[None] * q, -1) * inv
    valid = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 1e-6)
    t = np.where(valid, t, np.inf)
    best = np.argmin(t, axis=1)
    distance = t[np.arange(t.shape[0]), best]
    triangle = np.where(np.isfinite(distance), best, -1)
    normal = np.zeros((t.shape[0], 3))
    hit = triangle >= 0
    normal[hit] = _face_ray(np.cross(e1, e2)[triangle[hit]], directions[hit])
    return Hits(distance, triangle, normal)


def combine(first: Hits, second: Hits, offset: int) -> Hits:
    """Nearest of two hit sets for the same rays; ``second``'s triangle ids are shifted by ``offset``."""
    take = second.distance < first.distance
    triangle = np.where(take, np.where(second.triangle >= 0, second.triangle + offset, -1), first.triangle)
    return Hits(
        np.where(take, second.distance, first.distance),
        triangle,
        np.where(take[:, None], second.normal, first.normal),
    )
