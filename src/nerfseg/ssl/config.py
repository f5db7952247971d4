"""Typed settings of the semi-supervised methods: which method a run trains (the top-level ``method:`` key)
and the hyper-parameters of its parts (teacher, point pseudo-labels, LaserMix, projection, camera rays).

Every value is ours (the seed paper gives none); the presets in ``configs/`` state the values they use and
why. Distances in metres, angles in degrees.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from nerfseg.ssl.fusion import FusionConfig
from nerfseg.ssl.ray_sampler import RaySamplerConfig


class Method(enum.Enum):
    """The training recipes (DESIGN.md, "Baselines"). ``method: nerf+lasermix`` in YAML or ``--set``."""

    SUPERVISED = "supervised"
    MEAN_TEACHER = "mean-teacher"
    LASERMIX = "lasermix"
    PROJECTION = "projection"
    NERF = "nerf"
    NERF_MEAN_TEACHER = "nerf+mean-teacher"
    NERF_LASERMIX = "nerf+lasermix"
    GEOMETRY = "geometry"


@dataclass
class TeacherConfig:
    """The mean teacher: an exponential moving average of the student.

    Attributes:
        ema_decay: ``teacher = decay * teacher + (1 - decay) * student`` after every optimiser step. The
            teacher's memory is about ``1 / (1 - decay)`` steps: 0.999 suits runs of 10^4-10^5 steps, while
            a 400-step run needs about 0.99 or the teacher barely leaves its initial weights.
        ema_warmup: use ``min(decay, (1 + step) / (10 + step))`` so the teacher follows the student closely
            in the first steps (the usual mean-teacher ramp). The ramp reaches 0.99 at step 890 and 0.999 at
            step 8990: in shorter runs it, not ``ema_decay``, sets the teacher's memory.
        buffers: ``copy`` (BatchNorm running statistics copied from the student at every update) or
            ``ema`` (averaged like the weights).
    """

    ema_decay: float = 0.99
    ema_warmup: bool = True
    buffers: str = "copy"


@dataclass
class PointPseudoLabelConfig:
    """Confident point pseudo-labels of the teacher (mean-teacher, LaserMix).

    Attributes:
        threshold: a point takes the teacher's argmax where its softmax peaks at >= threshold.
        weight: weight of the consistency (pseudo-label cross-entropy) loss in the total.
    """

    threshold: float = 0.9
    weight: float = 1.0


@dataclass
class LaserMixConfig:
    """LaserMix (Kong et al., CVPR 2023): partition scans by laser inclination, swap alternate areas.

    Attributes:
        areas: the number of inclination areas A is drawn from these per step.
        pitch_min, pitch_max: inclination range in degrees split into A equal areas (points outside are
            clamped into the first / last area). Defaults: an HDL-64E's vertical field of view.
        weight: weight of the mixed-scan loss (labels on labeled areas, pseudo-labels on unlabeled ones).
    """

    areas: tuple[int, ...] = (2, 3, 4, 5, 6)
    pitch_min: float = -25.0
    pitch_max: float = 3.0
    weight: float = 1.0


@dataclass
class ProjectionConfig:
    """The projection baseline: masks vote with the teacher's point classes, points take their mask's class.

    Attributes:
        min_votes: a mask needs at least this many projected points to vote.
        min_agreement: and its majority class needs this share of the votes.
        weight: weight of the projected pseudo-label cross-entropy.
        oracle: diagnostic upper bound: each projected point takes the ground-truth ``semantic_2/`` class of
            its pixel instead of its mask's vote (still wrong where parallax puts it on an occluder).
    """

    min_votes: int = 3
    min_agreement: float = 0.5
    weight: float = 1.0
    oracle: bool = False


@dataclass
class CameraPointsConfig:
    """The optional point route of the ``nerf`` methods (:mod:`nerfseg.ssl.camera_points`): fused pixel
    pseudo-labels given to the unlabeled scan's points whose distance agrees with the teacher's rendered
    surface, learnt by the point classifier with cross-entropy.

    Attributes:
        weight: weight of that cross-entropy in the total (0 = off, the route is not computed).
        depth_tolerance: metres between a point's distance from the camera and its cell's rendered surface.
        agree_with_teacher: keep a point's camera label only where the teacher's point classifier predicts
            the same class (two views of the teacher must agree).
        min_teacher_confidence: keep a point's camera label only where the teacher's point classifier's
            softmax peaks at >= this (0 = no condition); with ``agree_with_teacher``, the teacher must both
            predict the camera label's class and be this sure of it.
        class_balanced: weigh each class's pseudo-labeled points so that every class present counts the
            same in the cross-entropy (:func:`nerfseg.ssl.methods.class_balanced_pseudo_label_ce`), as the
            ray sampler balances the camera rays; off: every point counts the same, and road dominates.
    """

    weight: float = 0.0
    depth_tolerance: float = 0.5
    agree_with_teacher: bool = False
    min_teacher_confidence: float = 0.0
    class_balanced: bool = False


@dataclass
class TeacherVetoConfig:
    """The teacher's point classifier as a veto on the fused pixel pseudo-labels
    (:func:`nerfseg.ssl.camera_points.veto_by_surface_points`). Masks and the coarse render swallow thin or
    small objects (a traffic sign, a pole, a cyclist) into the class of what surrounds them; the rays of
    those pixels then teach the object's voxels the wrong class. Where a LiDAR point IS a cell's rendered
    surface and the teacher's point classifier is sure of another class there, the cell gets no pixel label.

    Attributes:
        enabled: apply the veto (render route, point route and sampler alike; before the appearance gate).
        min_confidence: a surface point vetoes only where the teacher's point softmax peaks at >= this.
        depth_tolerance: metres between a point's distance from the camera and its cell's rendered surface
            for the point to be that surface.
    """

    enabled: bool = False
    min_confidence: float = 0.9
    depth_tolerance: float = 0.5


@dataclass
class AppearanceConfig:
    """A second, independent opinion on the camera pseudo-labels (:mod:`nerfseg.ssl.appearance`): a small
    2D net (:class:`nerfseg.models.appearance.AppearanceNet`) learns, before the first training step, to label
    the labeled scans' images from their LiDAR labels projected into them; a fused pixel pseudo-label is kept
    only where that net's class agrees with it. The teacher's mistakes are whole objects of a confidently
    wrong class, which no filter built from the teacher removes; the net sees appearance, never the teacher.

    Attributes:
        enabled: gate the fused pixel pseudo-labels (render route and point route) by the net's class. Needs a
            ``ssl.camera.stride`` that is a multiple of 4 (the net labels 4 x 4 pixel blocks).
        steps: optimiser steps (Adam) of the net, all before the first training step; the net is then frozen.
        views_per_step: labeled camera images (random crops) per step.
        max_views: at most this many labeled camera images are read (drawn at random from the labeled scans'
            cameras, seeded by ``train.seed``) and held in memory while the net trains.
        crop_height, crop_width: pixels of each training crop (multiples of 4).
        lr: Adam's learning rate.
        width: channels of the net's stride-4 features (twice that at stride 8).
    """

    enabled: bool = False
    steps: int = 400
    views_per_step: int = 6
    max_views: int = 64
    crop_height: int = 256
    crop_width: int = 384
    lr: float = 2e-3
    width: int = 32


@dataclass
class CameraRaysConfig:
    """Camera-ray self-supervision (the ``nerf`` methods, DESIGN.md steps 8-10).

    Attributes:
        stride: the teacher renders every stride-th pixel (the reduced grid of
            ``nerfseg.geometry.rays.pixel_grid``).
        cameras_per_scan: cameras rendered per unlabeled scan and step (drawn at random; 0 = all).
        tau_opacity: pixels whose teacher ray is less opaque than this carry no evidence.
        fusion: mask / pixel confidence thresholds of the fusion.
        sampler: the ray budget per image and its confidence / class weighting.
        weight: lambda_nerf, weight of the rendered-pixel cross-entropy.
        oracle: diagnostic upper bound: supervise the rendered rays with the ground-truth ``semantic_2/``
            instead of fused pseudo-labels (only where the dataset has it; never for real results).
        points: the point route (off by default).
        appearance: the appearance net's gate on the fused pseudo-labels (off by default).
        veto: the teacher's point classifier's veto on the fused pseudo-labels (off by default).
    """

    stride: int = 4
    cameras_per_scan: int = 1
    tau_opacity: float = 0.5
    fusion: FusionConfig = field(default_factory=FusionConfig)
    sampler: RaySamplerConfig = field(default_factory=RaySamplerConfig)
    weight: float = 1.0
    oracle: bool = False
    points: CameraPointsConfig = field(default_factory=CameraPointsConfig)
    appearance: AppearanceConfig = field(default_factory=AppearanceConfig)
    veto: TeacherVetoConfig = field(default_factory=TeacherVetoConfig)


@dataclass
class SslConfig:
    """Hyper-parameters of the semi-supervised parts; a method reads only the parts it uses.

    Attributes:
        rampup_steps: the pseudo-label terms (mean-teacher consistency, LaserMix's mixed scans, projection,
            camera render) are weighted by :func:`nerfseg.ssl.ramp.pseudo_label_ramp`, rising from ~0 to 1
            over this many optimiser steps, while the teacher is still learning (0 = full weight at once).
            The LiDAR-ray geometry loss needs no teacher and is never ramped.
    """

    rampup_steps: int = 0
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    pseudo: PointPseudoLabelConfig = field(default_factory=PointPseudoLabelConfig)
    lasermix: LaserMixConfig = field(default_factory=LaserMixConfig)
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)
    camera: CameraRaysConfig = field(default_factory=CameraRaysConfig)
