"""LaserMix (Kong et al., CVPR 2023): partition LiDAR scans by laser inclination and swap alternate areas
between a labeled and an unlabeled scan (DESIGN.md "Baselines").

Pure, vectorised torch functions. Points are in each scan's own `lidar` frame, metres; angles in degrees.
Every scan shares the sensor origin (the LiDAR at its own frame's origin), so points of two scans can be
concatenated into one geometrically plausible scan when the areas come from the same inclination bands.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from nerfseg.data.collate import PointBatch


@dataclass
class MixedScan:
    """One mixed scan (the rows of scan a first, in their order, then those of scan b).

    Attributes:
        points: (M, F) points of the two sources, each in its own `lidar` frame (metres).
        labels: (M,) int64: a's labels on a's rows, b's (pseudo-)labels on b's rows.
        from_unlabeled: (M,) bool, True on rows taken from the unlabeled scan b.
        source_index: (M,) int64 row of each point in its source scan (a or b as from_unlabeled says).
    """

    points: torch.Tensor
    labels: torch.Tensor
    from_unlabeled: torch.Tensor
    source_index: torch.Tensor


@dataclass
class LaserMixBatch:
    """2B mixed scans made from B (labeled, unlabeled) scan pairs.

    Attributes:
        batch: the mixed scans as a PointBatch: scan ``2i`` = labeled scan i's even areas + unlabeled scan
            i's odd areas, scan ``2i + 1`` = the complement; ``labels`` are the labeled scans' labels and the
            given pseudo-labels; ``samples`` is empty (a mixed scan has no coherent camera).
        from_unlabeled: (M,) bool, True on rows taken from the unlabeled batch.
        source_index: (M,) int64 row of each point in the flat points of its source batch.
        num_areas: the B drawn area counts A, one per pair.
    """

    batch: PointBatch
    from_unlabeled: torch.Tensor
    source_index: torch.Tensor
    num_areas: list[int]


def _check_range(pitch_min_deg: float, pitch_max_deg: float) -> None:
    if not (math.isfinite(pitch_min_deg) and math.isfinite(pitch_max_deg) and pitch_max_deg > pitch_min_deg):
        raise ValueError(f"lasermix: need finite pitch_min < pitch_max (degrees), got "
                         f"{pitch_min_deg} and {pitch_max_deg}")


def inclination_areas(
    xyz: torch.Tensor, num_areas: int | torch.Tensor, pitch_min_deg: float, pitch_max_deg: float
) -> torch.Tensor:
    """Inclination area of every point.

    The inclination ``atan2(z, hypot(x, y))`` (degrees) range [pitch_min, pitch_max) is split into A equal
    bins; area 0 is the lowest band. Points below / above the range are clamped into area 0 / A - 1.

    Args:
        xyz: (N, 3+) points in the `lidar` frame, metres (only the first three columns are read).
        num_areas: A >= 1, an int or an (N,) integer tensor (a count per point, e.g. per scan of a batch).
        pitch_min_deg, pitch_max_deg: the inclination range in degrees, pitch_min < pitch_max.
    Returns:
        (N,) int64 area index in [0, A).
    """
    _check_range(pitch_min_deg, pitch_max_deg)
    if xyz.ndim != 2 or xyz.shape[1] < 3:
        raise ValueError(f"inclination_areas: expected points (N, 3+), got {tuple(xyz.shape)}")
    if isinstance(num_areas, torch.Tensor):
        areas = num_areas.to(device=xyz.device, dtype=torch.int64)
        if areas.shape != (xyz.shape[0],):
            raise ValueError(f"inclination_areas: num_areas tensor must be ({xyz.shape[0]},), "
                             f"got {tuple(areas.shape)}")
        if areas.numel() and int(areas.min()) < 1:
            raise ValueError("inclination_areas: every area count must be >= 1")
    else:
        if int(num_areas) < 1:
            raise ValueError(f"inclination_areas: num_areas must be >= 1, got {num_areas}")
        areas = torch.full((xyz.shape[0],), int(num_areas), dtype=torch.int64, device=xyz.device)
    p = xyz[:, :3].to(torch.float64)
    pitch = torch.rad2deg(torch.atan2(p[:, 2], torch.hypot(p[:, 0], p[:, 1])))
    fraction = (pitch - pitch_min_deg) / (pitch_max_deg - pitch_min_deg)
    index = torch.floor(fraction * areas.to(torch.float64)).to(torch.int64)
    return torch.minimum(index.clamp_min(0), areas - 1)


def _mix(
    points_a: torch.Tensor,
    labels_a: torch.Tensor,
    scan_a: torch.Tensor,
    points_b: torch.Tensor,
    labels_b: torch.Tensor,
    scan_b: torch.Tensor,
    areas_per_scan: torch.Tensor,
    pitch_min_deg: float,
    pitch_max_deg: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Vectorised core: (points, labels, mixed scan index, from_unlabeled, source_index), rows sorted by
    mixed scan (scan ``2i`` = a_i even + b_i odd, ``2i + 1`` = a_i odd + b_i even), a's rows before b's."""
    area_a = inclination_areas(points_a, areas_per_scan[scan_a], pitch_min_deg, pitch_max_deg)
    area_b = inclination_areas(points_b, areas_per_scan[scan_b], pitch_min_deg, pitch_max_deg)
    dest_a = 2 * scan_a + area_a % 2  # even areas of a -> mix 1 (2i), odd -> mix 2 (2i + 1)
    dest_b = 2 * scan_b + 1 - area_b % 2  # odd areas of b -> mix 1, even -> mix 2
    device = points_a.device
    dest = torch.cat([dest_a, dest_b])
    from_b = torch.cat([torch.zeros(dest_a.numel(), dtype=torch.bool, device=device),
                        torch.ones(dest_b.numel(), dtype=torch.bool, device=device)])
    source = torch.cat([torch.arange(n, device=device) for n in (dest_a.numel(), dest_b.numel())])
    # Stable sort on (mixed scan, a before b) keeps each source's own row order.
    order = torch.sort(2 * dest + from_b.to(torch.int64), stable=True).indices
    points = torch.cat([points_a, points_b.to(points_a.dtype)])[order]
    labels = torch.cat([labels_a.to(torch.int64), labels_b.to(device=device, dtype=torch.int64)])[order]
    return points, labels, dest[order], from_b[order], source[order]


def _check_scan(name: str, points: torch.Tensor, labels: torch.Tensor) -> None:
    if points.ndim != 2 or points.shape[1] < 3 or labels.shape != (points.shape[0],):
        raise ValueError(f"lasermix: {name} must be points (N, 3+) with labels (N,), got "
                         f"{tuple(points.shape)} and {tuple(labels.shape)}")


def lasermix_scans(
    points_a: torch.Tensor,
    labels_a: torch.Tensor,
    points_b: torch.Tensor,
    labels_b: torch.Tensor,
    num_areas: int,
    pitch_min_deg: float,
    pitch_max_deg: float,
) -> tuple[MixedScan, MixedScan]:
    """Mix a labeled scan a with an unlabeled scan b by inclination areas.

    Args:
        points_a: (Na, F) labeled scan, `lidar` frame, metres; labels_a: (Na,) int64 train ids / IGNORE_INDEX.
        points_b: (Nb, F) unlabeled scan, same columns; labels_b: (Nb,) int64 teacher pseudo-labels or
            IGNORE_INDEX.
        num_areas: A >= 1 inclination areas (see :func:`inclination_areas`).
        pitch_min_deg, pitch_max_deg: the inclination range in degrees.
    Returns:
        (mixed 1, mixed 2): mixed 1 = a's even areas + b's odd areas, mixed 2 = a's odd + b's even areas.
        Every row of a and of b appears in exactly one of them. Deterministic given the inputs.
    """
    _check_scan("scan a", points_a, labels_a)
    _check_scan("scan b", points_b, labels_b)
    if points_a.shape[1] != points_b.shape[1]:
        raise ValueError(f"lasermix: scans have {points_a.shape[1]} and {points_b.shape[1]} point columns")
    device = points_a.device
    scan_a = torch.zeros(points_a.shape[0], dtype=torch.int64, device=device)
    scan_b = torch.zeros(points_b.shape[0], dtype=torch.int64, device=points_b.device)
    areas = torch.tensor([int(num_areas)], dtype=torch.int64, device=device)
    points, labels, dest, from_b, source = _mix(
        points_a, labels_a, scan_a, points_b, labels_b, scan_b, areas, pitch_min_deg, pitch_max_deg
    )
    split = int((dest == 0).sum())
    return (
        MixedScan(points[:split], labels[:split], from_b[:split], source[:split]),
        MixedScan(points[split:], labels[split:], from_b[split:], source[split:]),
    )


def lasermix_batch(
    labeled: PointBatch,
    unlabeled: PointBatch,
    pseudo_labels: torch.Tensor,
    area_counts: tuple[int, ...],
    pitch_min_deg: float,
    pitch_max_deg: float,
    generator: torch.Generator,
) -> LaserMixBatch:
    """LaserMix over batches: scan i of ``labeled`` is mixed with scan i of ``unlabeled``.

    ``unlabeled.labels`` is never read: the unlabeled rows carry ``pseudo_labels``.

    Args:
        labeled: B labeled scans (``labels`` required, (Na,) int64 train ids / IGNORE_INDEX).
        unlabeled: B unlabeled scans with the same point columns.
        pseudo_labels: (Nu,) int64 teacher pseudo-labels of the unlabeled points or IGNORE_INDEX.
        area_counts: the allowed A values; each pair draws one uniformly from ``generator``.
        pitch_min_deg, pitch_max_deg: the inclination range in degrees.
        generator: a torch.Generator on any device (B draws per call, on the generator's device: the
            training step's generator lives on the training device).
    Returns:
        :class:`LaserMixBatch` of 2B mixed scans (scan 2i and 2i + 1 from pair i).
    """
    if labeled.labels is None:
        raise ValueError("lasermix_batch: the labeled batch has no labels")
    if labeled.batch_size != unlabeled.batch_size:
        raise ValueError(f"lasermix_batch: batch sizes differ ({labeled.batch_size} labeled, "
                         f"{unlabeled.batch_size} unlabeled)")
    if not area_counts or min(area_counts) < 1:
        raise ValueError(f"lasermix_batch: area_counts must be a non-empty tuple of counts >= 1, "
                         f"got {area_counts}")
    _check_scan("the labeled batch", labeled.points, labeled.labels)
    _check_scan("the unlabeled batch", unlabeled.points, pseudo_labels)
    b = labeled.batch_size
    pick = torch.randint(len(area_counts), (b,), generator=generator, device=generator.device)
    num_areas = [int(area_counts[i]) for i in pick.tolist()]
    device = labeled.points.device
    areas = torch.tensor(num_areas, dtype=torch.int64, device=device)
    points, labels, dest, from_b, source = _mix(
        labeled.points, labeled.labels, labeled.batch_index.to(device),
        unlabeled.points.to(device), pseudo_labels.to(device), unlabeled.batch_index.to(device),
        areas, pitch_min_deg, pitch_max_deg,
    )
    ids = []
    for a_id, b_id in zip(labeled.sample_ids, unlabeled.sample_ids, strict=True):
        ids += [f"lasermix:{a_id}+{b_id}:1", f"lasermix:{a_id}+{b_id}:2"]
    batch = PointBatch(points=points, batch_index=dest, labels=labels, sample_ids=ids, samples=[])
    return LaserMixBatch(batch=batch, from_unlabeled=from_b, source_index=source, num_areas=num_areas)
