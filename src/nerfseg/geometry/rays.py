"""Camera rays and LiDAR rays in the LiDAR frame of a scan (pure, batched torch functions).

Pixel convention (the same as ``nerfseg.geometry.transforms.project_points``): a point ``x_cam`` projects
to the continuous pixel coordinates ``(u, v) = (fx x/z + cx, fy y/z + cy)`` (u right, v down), and the pixel
at column ``i``, row ``j`` of the stored image COVERS ``[i, i + 1) x [j, j + 1)``: its centre is
``(i + 0.5, j + 0.5)`` and a projected point belongs to pixel ``(floor(u), floor(v))`` (project_points calls
a point visible when ``0 <= u < W`` and ``0 <= v < H``). :func:`camera_rays` takes continuous (u, v);
:func:`pixel_rays` takes integer pixel indices and casts through their centres.

Camera origin: ``CameraFrame.lidar_to_cam`` already maps the LiDAR frame at the sweep time to the camera at
its own capture time (lidar -> ego(t_lidar) -> world -> ego(t_cam) -> camera, where the dataset gives poses),
so the camera centre at capture time, in the LiDAR frame, is the translation of ``inv(lidar_to_cam)``.
"""

from __future__ import annotations

import torch


def camera_rays(
    K: torch.Tensor, lidar_to_cam: torch.Tensor, uv: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays through continuous pixel coordinates of one camera (or one camera per ray), in the LiDAR frame.

    Args:
        K: (3, 3) or (R, 3, 3) intrinsics in pixels.
        lidar_to_cam: (4, 4) or (R, 4, 4) rigid transform LiDAR frame (sweep time) -> camera frame (capture
            time), ``x_cam = lidar_to_cam @ x_lidar``.
        uv: (R, 2) continuous pixel coordinates (u right, v down) as project_points gives them; the centre of
            integer pixel (col i, row j) is (i + 0.5, j + 0.5) (module docstring).

    Returns:
        origins (R, 3): camera centre in the LiDAR frame, metres.
        dirs (R, 3): unit directions in the LiDAR frame; ``origin + t * dir`` is the point at distance t
            metres from the camera centre.
        All in the dtype of ``uv`` promoted with the matrices' dtype.
    """
    dtype = torch.promote_types(torch.promote_types(K.dtype, lidar_to_cam.dtype), uv.dtype)
    if not dtype.is_floating_point:
        dtype = torch.get_default_dtype()
    K = K.to(dtype)
    uv = uv.to(dtype)
    cam_to_lidar = torch.linalg.inv(
        lidar_to_cam.to(dtype)
    )  # general inverse: exact for near-rigid calibrations
    pixels_h = torch.cat([uv, torch.ones_like(uv[:, :1])], dim=1).unsqueeze(-1)  # (R, 3, 1)
    dirs_cam = torch.linalg.inv(K) @ pixels_h  # broadcasts (3, 3) or (R, 3, 3) -> (R, 3, 1)
    dirs = (cam_to_lidar[..., :3, :3] @ dirs_cam).squeeze(-1)
    dirs = dirs / torch.linalg.vector_norm(dirs, dim=-1, keepdim=True)
    origins = cam_to_lidar[..., :3, 3].expand(uv.shape[0], 3)
    return origins.contiguous(), dirs


def pixel_rays(
    K: torch.Tensor, lidar_to_cam: torch.Tensor, cols: torch.Tensor, rows: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays through the CENTRES of integer pixels: column ``cols`` (R,) and row ``rows`` (R,) (any int or
    float dtype) cast through ``(cols + 0.5, rows + 0.5)``. Same outputs as :func:`camera_rays`."""
    dtype = torch.promote_types(K.dtype, torch.float32)
    uv = torch.stack([cols.to(dtype) + 0.5, rows.to(dtype) + 0.5], dim=1)
    return camera_rays(K, lidar_to_cam, uv)


def camera_frame_rays(
    camera, cols: torch.Tensor, rows: torch.Tensor, device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays through the centres of pixels (cols, rows) (R,) of a :class:`~nerfseg.data.sample.CameraFrame`
    (its K and ego-motion compensated lidar_to_cam), computed in float64 and returned as float32 (R, 3)
    origins and unit directions in the scan's LiDAR frame on ``device`` (default: the device of ``cols``)."""
    device = cols.device if device is None else torch.device(device)
    K = torch.as_tensor(camera.K, dtype=torch.float64, device=device)
    lidar_to_cam = torch.as_tensor(camera.lidar_to_cam, dtype=torch.float64, device=device)
    origins, dirs = pixel_rays(K, lidar_to_cam, cols.to(device), rows.to(device))
    return origins.float(), dirs.float()


def pixel_grid(
    width: int, height: int, stride: int = 1, device: torch.device | str | None = None
) -> torch.Tensor:
    """Integer pixel indices of every ``stride``-th pixel of a (width x height) image.

    Returns (H' * W', 2) int64 ``(col, row)`` in row-major order: rows 0, s, 2s, ... each holding the columns
    0, s, 2s, ... (``W' = ceil(width / s)``, ``H' = ceil(height / s)``), so a rendered vector reshapes to
    (H', W'). Cast with :func:`pixel_rays` (through the pixel centres).
    """
    cols = torch.arange(0, width, stride, dtype=torch.int64, device=device)
    rows = torch.arange(0, height, stride, dtype=torch.int64, device=device)
    rr, cc = torch.meshgrid(rows, cols, indexing="ij")
    return torch.stack([cc.reshape(-1), rr.reshape(-1)], dim=1)


def lidar_rays(
    points: torch.Tensor, min_range: float = 1e-6
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rays from the LiDAR sensor origin (0, 0, 0 of the LiDAR frame) to each measured point.

    Args:
        points: (N, 3) x, y, z in the LiDAR frame, metres.
        min_range: ranges below this (metres) are clamped when normalising so no NaN appears.

    Returns:
        origins (N, 3) zeros, dirs (N, 3) unit vectors, ranges (N,) metres (``points = dirs * ranges``).
    """
    ranges = torch.linalg.vector_norm(points, dim=1)
    dirs = points / ranges.clamp_min(min_range).unsqueeze(1)
    return torch.zeros_like(points), dirs, ranges
