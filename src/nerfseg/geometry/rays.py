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

from dataclasses import dataclass

import numpy as np
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


def image_pixel_rays(K: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H*W, 3) float64 unit ray directions in the CAMERA frame through the centres of every pixel of a
    ``width`` x ``height`` image, row-major (row outer, column inner): :func:`pixel_rays` with the identity
    transform, as numpy (the simulator casts whole images with it)."""
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    _, dirs = pixel_rays(
        torch.as_tensor(np.asarray(K), dtype=torch.float64), torch.eye(4, dtype=torch.float64),
        cols.reshape(-1), rows.reshape(-1),
    )
    return dirs.numpy()


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


@dataclass(frozen=True)
class PixelGrid:
    """The reduced pixel grid of a (width x height) image at ``stride``: THE definition of which
    full-resolution pixels a reduced rendering covers (rays, mask ids, ``semantic_2/`` and ``depth_2/``).

    Reduced pixel (i, j) (column i, row j) is the full-resolution pixel
    ``(col, row) = (stride * i + stride // 2, stride * j + stride // 2)``: the centre pixel of its
    ``stride x stride`` block (for even strides the pixel right / below the block's geometric centre; at
    stride 1 every pixel itself). The last block of a row / column may be partial: it counts while its
    centre pixel lies inside the image, so ``W' = ceil((width - stride // 2) / stride)`` and
    ``H' = ceil((height - stride // 2) / stride)``.
    """

    width: int
    height: int
    stride: int = 1

    def __post_init__(self):
        if self.stride < 1 or self.width < 1 or self.height < 1:
            raise ValueError(
                f"PixelGrid needs width, height, stride >= 1, got {self.width}, {self.height}, {self.stride}"
            )

    @property
    def offset(self) -> int:
        """Full-resolution offset of reduced pixel 0 in each axis (``stride // 2``)."""
        return self.stride // 2

    @property
    def shape(self) -> tuple[int, int]:
        """(H', W'): the reduced image shape; a rendered (H' * W',) vector reshapes to it."""
        s, o = self.stride, self.offset
        return (self.height - o + s - 1) // s, (self.width - o + s - 1) // s

    def __len__(self) -> int:
        h, w = self.shape
        return h * w

    def pixel_indices(self, device: torch.device | str | None = None) -> torch.Tensor:
        """(H' * W', 2) int64 ``(col, row)`` full-resolution pixels, row-major (see the class docstring)."""
        h, w = self.shape
        cols = torch.arange(w, dtype=torch.int64, device=device) * self.stride + self.offset
        rows = torch.arange(h, dtype=torch.int64, device=device) * self.stride + self.offset
        rr, cc = torch.meshgrid(rows, cols, indexing="ij")
        return torch.stack([cc.reshape(-1), rr.reshape(-1)], dim=1)

    @property
    def pixels(self) -> torch.Tensor:
        """:meth:`pixel_indices` on the CPU."""
        return self.pixel_indices()

    def to_image(self, values):
        """Reshape (H' * W', ...) per-pixel values (tensor or ndarray) to (H', W', ...)."""
        return values.reshape(*self.shape, *values.shape[1:])


def pixel_grid(
    width: int, height: int, stride: int = 1, device: torch.device | str | None = None
) -> torch.Tensor:
    """Full-resolution pixels of the reduced grid :class:`PixelGrid` (width, height, stride).

    Returns (H' * W', 2) int64 ``(col, row)``, row-major: reduced pixel (i, j) is full-resolution pixel
    ``(stride * i + stride // 2, stride * j + stride // 2)``, the centre pixel of its stride x stride block;
    ``PixelGrid(width, height, stride).shape`` gives (H', W'). Cast rays with :func:`pixel_rays` (through the
    pixel centres, + 0.5) and read images with :func:`read_at_pixels`.
    """
    return PixelGrid(width, height, stride).pixel_indices(device)


def read_at_pixels(image, pixels):
    """Values of an image at integer pixels: THE way mask ids and ground-truth images are read on a grid.

    Args:
        image: (H, W) or (H, W, C) torch tensor or numpy array.
        pixels: (P, 2) int ``(col, row)`` (tensor or array), e.g. :func:`pixel_grid` or drawn rays' pixels.
    Returns:
        (P,) or (P, C) of the type and dtype of ``image`` (on its device).
    Raises:
        ValueError when a pixel lies outside the image.
    """
    if image.ndim not in (2, 3) or pixels.ndim != 2 or pixels.shape[1] != 2:
        raise ValueError(f"expected image (H, W[, C]) and pixels (P, 2), got {tuple(image.shape)} and "
                         f"{tuple(pixels.shape)}")
    height, width = image.shape[:2]
    if isinstance(image, torch.Tensor):
        px = torch.as_tensor(pixels, device=image.device).long()
        cols, rows = px[:, 0], px[:, 1]
    else:
        px = pixels.cpu().numpy() if isinstance(pixels, torch.Tensor) else np.asarray(pixels)
        cols, rows = px[:, 0].astype(np.int64), px[:, 1].astype(np.int64)
    if len(cols) and (int(cols.min()) < 0 or int(rows.min()) < 0 or int(cols.max()) >= width
                      or int(rows.max()) >= height):
        raise ValueError(f"pixels outside the {width} x {height} image")
    return image[rows, cols]


def z_depth_to_ray_distance(
    z: torch.Tensor,
    K: torch.Tensor | None = None,
    pixels: torch.Tensor | None = None,
    dirs_cam: torch.Tensor | None = None,
) -> torch.Tensor:
    """Convert z-depth (along the camera's optical axis, as ``depth_2/`` stores it) to the distance along the
    pixel's ray from the camera centre (what the head renders as depth).

    Args:
        z: (P,) z-depth in metres (0 = no hit stays 0).
        K: (3, 3) intrinsics and pixels: (P, 2) int ``(col, row)``; the ray goes through the pixel centre.
        dirs_cam: or instead (P, 3) ray directions in the camera frame (any length, z > 0).
    Returns:
        (P,) metres, ``z * |d| / d_z`` in the dtype of ``z`` (float32 for integer z).
    """
    dtype = z.dtype if z.dtype.is_floating_point else torch.float32
    if dirs_cam is None:
        if K is None or pixels is None:
            raise ValueError("z_depth_to_ray_distance needs dirs_cam or K and pixels")
        K = torch.as_tensor(K, dtype=torch.float64, device=z.device)
        px = torch.as_tensor(pixels, device=z.device).to(torch.float64) + 0.5
        uv1 = torch.cat([px, torch.ones_like(px[:, :1])], dim=1)
        dirs_cam = uv1 @ torch.linalg.inv(K).T  # z = 1
    dirs_cam = dirs_cam.to(device=z.device, dtype=torch.float64)
    scale = torch.linalg.vector_norm(dirs_cam, dim=1) / dirs_cam[:, 2]
    return (z.to(torch.float64) * scale).to(dtype)


@dataclass
class RayBundle:
    """R rays, each with where it came from: the one carrier of rays between the teacher's render, fusion,
    the sampler and the student's render (pixel order (col, row) everywhere).

    Attributes:
        origins: (R, 3) float32 ray origins in the scan's LiDAR frame, metres.
        directions: (R, 3) float32 unit directions in the same frame.
        pixels: (R, 2) int64 full-resolution ``(col, row)`` pixel of a camera ray (-1 for LiDAR rays).
        camera: (R,) int64 camera index within the scan's ``Sample.cameras`` (-1 for LiDAR rays).
        scan: (R,) int64 scan of the batch (the batch column of the voxel coordinates).
    """

    origins: torch.Tensor
    directions: torch.Tensor
    pixels: torch.Tensor
    camera: torch.Tensor
    scan: torch.Tensor

    def __post_init__(self):
        r = self.origins.shape[0]
        shapes = [(self.origins, (r, 3)), (self.directions, (r, 3)), (self.pixels, (r, 2)),
                  (self.camera, (r,)), (self.scan, (r,))]
        if any(tuple(t.shape) != s for t, s in shapes):
            raise ValueError("RayBundle expects origins/directions (R, 3), pixels (R, 2), camera/scan (R,), "
                             "got " + ", ".join(str(tuple(t.shape)) for t, _ in shapes))

    def __len__(self) -> int:
        return self.origins.shape[0]

    @staticmethod
    def from_rays(origins: torch.Tensor, directions: torch.Tensor, scan: int | torch.Tensor = 0) -> RayBundle:
        """A bundle of rays with no pixel / camera (both -1): origins (R, 3) and unit directions (R, 3) in the
        LiDAR frame of scan ``scan`` (an int for all rays, or (R,) int64)."""
        r = origins.shape[0]
        none = torch.full((r,), -1, dtype=torch.int64, device=origins.device)
        scans = torch.as_tensor(scan, dtype=torch.int64, device=origins.device).expand(r).contiguous()
        pixels = none[:, None].expand(r, 2).contiguous()
        return RayBundle(origins.float(), directions.float(), pixels, none, scans)

    @property
    def device(self) -> torch.device:
        return self.origins.device

    def to(self, device: torch.device | str) -> RayBundle:
        return RayBundle(*(t.to(device) for t in self._fields()))

    def __getitem__(self, index) -> RayBundle:
        """The rays ``index`` picks: a 1-D int64 index tensor, a bool mask or a slice."""
        return RayBundle(*(t[index] for t in self._fields()))

    @staticmethod
    def cat(bundles: list[RayBundle]) -> RayBundle:
        """One bundle of the rays of ``bundles`` in order (at least one bundle)."""
        if not bundles:
            raise ValueError("RayBundle.cat needs at least one bundle")
        return RayBundle(*(torch.cat(parts) for parts in zip(*(b._fields() for b in bundles), strict=True)))

    def _fields(self) -> tuple[torch.Tensor, ...]:
        return self.origins, self.directions, self.pixels, self.camera, self.scan


def camera_ray_bundle(
    camera, pixels: torch.Tensor, scan: int, camera_index: int, device: torch.device | str | None = None
) -> RayBundle:
    """Rays through the centres of ``pixels`` (R, 2) int ``(col, row)`` of a
    :class:`~nerfseg.data.sample.CameraFrame` (as :func:`camera_frame_rays`), tagged with the scan and camera
    index, on ``device`` (default: the device of ``pixels``)."""
    device = pixels.device if device is None else torch.device(device)
    pixels = pixels.to(device=device, dtype=torch.int64)
    origins, dirs = camera_frame_rays(camera, pixels[:, 0], pixels[:, 1], device)
    r = pixels.shape[0]
    return RayBundle(
        origins,
        dirs,
        pixels,
        torch.full((r,), camera_index, dtype=torch.int64, device=device),
        torch.full((r,), scan, dtype=torch.int64, device=device),
    )


def lidar_ray_bundle(points: torch.Tensor, scan: torch.Tensor) -> tuple[RayBundle, torch.Tensor]:
    """LiDAR rays (:func:`lidar_rays`) of points (N, 3) in their scan's LiDAR frame (metres) as a bundle
    (origins 0, pixels and camera -1, ``scan`` (N,) int64), and their ranges (N,) metres."""
    origins, dirs, ranges = lidar_rays(points)
    return RayBundle.from_rays(origins, dirs, scan), ranges


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
