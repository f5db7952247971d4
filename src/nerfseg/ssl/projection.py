"""The classic 2D -> 3D baseline (DESIGN.md "Baselines", ``projection``): project LiDAR points into each
camera, let every class-agnostic mask take the teacher's majority point class, and give that class to the
points that project into the mask. No rays and no occlusion test: a point hidden from the camera still lands
on the occluder's pixel and takes its mask's class (the parallax failure the ray method avoids).

Also :func:`pixel_label_of_points`, the class the camera shows where a point projects (parallax scoring).

Pixels are (col, row) int64 with the convention of ``nerfseg.geometry.transforms.project_points``: a point
projecting to u lies in column floor(u) (pixel u covers [u, u + 1)). Torch in, torch out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from nerfseg.data.sample import IGNORE_INDEX, CameraFrame
from nerfseg.errors import DataError
from nerfseg.geometry.transforms import project_points


def project_to_pixels(
    xyz: torch.Tensor | np.ndarray,
    K: np.ndarray | torch.Tensor,
    lidar_to_cam: np.ndarray | torch.Tensor,
    image_size: tuple[int, int],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel of every LiDAR point in a pinhole camera.

    Args:
        xyz: (N, 3+) points in the `lidar` frame, metres (only the first three columns are read).
        K: (3, 3) intrinsics in pixels.
        lidar_to_cam: (4, 4) transform `lidar` -> `cam` (OpenCV axes), the capture-time transform.
        image_size: (W, H) pixels.
    Returns:
        pixels: (N, 2) int64 (col, row) = (floor(u), floor(v)) where visible, (-1, -1) elsewhere;
        visible: (N,) bool, in front of the camera (depth > DEPTH_EPS) and inside the image.
        Both on the device of ``xyz`` (CPU for numpy input); the projection itself runs in float64 numpy.
    """
    device = xyz.device if isinstance(xyz, torch.Tensor) else torch.device("cpu")
    points = xyz.detach().cpu().numpy() if isinstance(xyz, torch.Tensor) else np.asarray(xyz)
    if points.ndim != 2 or points.shape[1] < 3:
        raise ValueError(f"project_to_pixels: expected points (N, 3+), got {points.shape}")
    K = K.detach().cpu().numpy() if isinstance(K, torch.Tensor) else K
    if isinstance(lidar_to_cam, torch.Tensor):
        lidar_to_cam = lidar_to_cam.detach().cpu().numpy()
    width, height = int(image_size[0]), int(image_size[1])
    uv, _, visible = project_points(points[:, :3], lidar_to_cam, K, (width, height))
    cols = np.clip(np.floor(np.where(visible, uv[:, 0], -1.0)), -1, width - 1).astype(np.int64)
    rows = np.clip(np.floor(np.where(visible, uv[:, 1], -1.0)), -1, height - 1).astype(np.int64)
    pixels = torch.from_numpy(np.stack([cols, rows], axis=1)).to(device)
    return pixels, torch.from_numpy(visible).to(device)


def _long_image(image: torch.Tensor | np.ndarray, device: torch.device) -> torch.Tensor:
    """An (H, W) integer image (numpy of any integer dtype, e.g. uint16, or torch) as int64 on ``device``."""
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(image.astype(np.int64, copy=False))
    return image.to(device=device, dtype=torch.int64)


def _image_values(pixels: torch.Tensor, visible: torch.Tensor, image: torch.Tensor, what: str
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(indices of visible points, image value at their pixel); checks shapes and bounds."""
    n = pixels.shape[0]
    if pixels.shape != (n, 2) or visible.shape != (n,) or image.ndim != 2:
        raise ValueError(f"{what}: expected pixels (N, 2), visible (N,) and an (H, W) image, got "
                         f"{tuple(pixels.shape)}, {tuple(visible.shape)}, {tuple(image.shape)}")
    idx = visible.to(torch.bool).nonzero(as_tuple=True)[0]
    cols, rows = pixels[idx, 0].long(), pixels[idx, 1].long()
    height, width = image.shape
    if idx.numel() and (cols.min() < 0 or rows.min() < 0 or cols.max() >= width or rows.max() >= height):
        raise ValueError(f"{what}: a visible point's pixel lies outside the {width}x{height} image")
    return idx, image[rows, cols].long()


def mask_vote_labels(
    pixels: torch.Tensor,
    visible: torch.Tensor,
    point_classes: torch.Tensor,
    mask_ids: torch.Tensor | np.ndarray,
    num_classes: int,
    min_votes: int,
    min_agreement: float,
) -> torch.Tensor:
    """Point pseudo-labels from one camera's masks voting with the teacher's point classes.

    Each mask counts the classes of the visible points projecting into it (points whose class is
    IGNORE_INDEX do not vote); its majority class (ties: the lowest class id) is accepted where it has
    >= ``min_votes`` votes and >= ``min_agreement`` of the mask's votes. Every visible point in an accepted
    mask then takes that class, whatever its own class was; all other points get IGNORE_INDEX.

    Args:
        pixels: (N, 2) int64 (col, row) from :func:`project_to_pixels`.
        visible: (N,) bool.
        point_classes: (N,) int64 teacher argmax in [0, num_classes), IGNORE_INDEX where not confident.
        mask_ids: (H, W) integer mask ids of the camera image (any non-negative ids; -1 = in no mask).
        num_classes: C.
        min_votes: >= 1; min_agreement: in [0, 1].
    Returns:
        (N,) int64 class ids or IGNORE_INDEX, on the device of ``point_classes``.
    """
    if min_votes < 1 or not 0.0 <= min_agreement <= 1.0 or num_classes < 1:
        raise ValueError(f"mask_vote_labels: need num_classes >= 1, min_votes >= 1 and min_agreement in "
                         f"[0, 1], got {num_classes}, {min_votes}, {min_agreement}")
    device = point_classes.device
    classes = point_classes.long()
    n = classes.shape[0] if classes.ndim == 1 else -1
    if n < 0 or ((classes != IGNORE_INDEX) & ((classes < 0) | (classes >= num_classes))).any():
        raise ValueError(f"mask_vote_labels: point_classes must be (N,) ids in [0, {num_classes}) or "
                         f"{IGNORE_INDEX}")
    ids = _long_image(mask_ids, device)
    idx, point_mask = _image_values(pixels.to(device), visible.to(device), ids, "mask_vote_labels")
    out = torch.full((n,), IGNORE_INDEX, dtype=torch.int64, device=device)
    inside = point_mask >= 0
    idx, point_mask = idx[inside], point_mask[inside]
    if idx.numel() == 0:
        return out
    unique_ids, slot = torch.unique(point_mask, return_inverse=True)
    voter_class = classes[idx]
    votes_cast = voter_class != IGNORE_INDEX
    votes = torch.bincount(slot[votes_cast] * num_classes + voter_class[votes_cast],
                           minlength=unique_ids.numel() * num_classes).view(-1, num_classes)
    winner = votes.argmax(dim=1)  # first maximum: ties go to the lowest class id
    top = votes.gather(1, winner[:, None])[:, 0]
    accepted = (top >= min_votes) & (top.double() >= min_agreement * votes.sum(dim=1).double())
    out[idx] = torch.where(accepted[slot], winner[slot], torch.full_like(slot, IGNORE_INDEX))
    return out


def projection_pseudo_labels(
    xyz: torch.Tensor | np.ndarray,
    cameras: Sequence[CameraFrame],
    mask_ids: Sequence[torch.Tensor | np.ndarray],
    point_classes: torch.Tensor,
    num_classes: int,
    min_votes: int,
    min_agreement: float,
) -> torch.Tensor:
    """Projection pseudo-labels of one scan over all its cameras.

    Args:
        xyz: (N, 3+) points of the scan in its `lidar` frame, metres.
        cameras: the scan's cameras (K, capture-time ``lidar_to_cam``, image_size (W, H)).
        mask_ids: one (H, W) mask-id image per camera, at the camera's full resolution.
        point_classes, num_classes, min_votes, min_agreement: as in :func:`mask_vote_labels`.
    Returns:
        (N,) int64: a point seen by several cameras takes the first camera's non-ignored label (camera
        order); IGNORE_INDEX where no camera gives one.
    Raises:
        DataError naming the camera image when its mask image does not have the image's size.
    """
    if len(cameras) != len(mask_ids):
        raise ValueError(f"projection_pseudo_labels: {len(cameras)} cameras but {len(mask_ids)} mask images")
    out = torch.full(point_classes.shape, IGNORE_INDEX, dtype=torch.int64, device=point_classes.device)
    for camera, masks in zip(cameras, mask_ids, strict=True):
        width, height = camera.image_size
        if tuple(masks.shape) != (height, width):
            raise DataError(camera.image_path, f"mask ids are {tuple(masks.shape)} (H, W) but the camera "
                            f"image is {width}x{height}")
        pixels, visible = project_to_pixels(xyz, camera.K, camera.lidar_to_cam, (width, height))
        labels = mask_vote_labels(
            pixels, visible, point_classes, masks, num_classes, min_votes, min_agreement
        )
        out = torch.where(out == IGNORE_INDEX, labels, out)
    return out


def pixel_label_of_points(
    pixels: torch.Tensor, visible: torch.Tensor, semantic_image: torch.Tensor | np.ndarray
) -> torch.Tensor:
    """The class the camera shows where each point projects (parallax scoring against per-pixel truth).

    Args:
        pixels: (N, 2) int64 (col, row); visible: (N,) bool (from :func:`project_to_pixels`).
        semantic_image: (H, W) integer train ids of the image (e.g. the simulator's ``semantic_2``
            mapped to train ids).
    Returns:
        (N,) int64 the pixel's id for visible points, IGNORE_INDEX for the others (device of ``pixels``).
    """
    image = _long_image(semantic_image, pixels.device)
    idx, values = _image_values(pixels, visible.to(pixels.device), image, "pixel_label_of_points")
    out = torch.full((pixels.shape[0],), IGNORE_INDEX, dtype=torch.int64, device=pixels.device)
    out[idx] = values
    return out
