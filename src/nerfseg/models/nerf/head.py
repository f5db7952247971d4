"""The auxiliary NeRF head: rays -> samples -> field on the segmentor's sparse voxel features -> rendering.

Only training uses it (camera rays for pseudo-label supervision, LiDAR rays for geometry); the inference model
is the segmentor alone, so none of these weights are exported with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from nerfseg.errors import ConfigError
from nerfseg.geometry.rays import RayBundle
from nerfseg.models.nerf.field import SemanticDensityField, StackedVoxelGrid, VoxelGrid
from nerfseg.models.nerf.renderer import (
    MAX_OPTICAL_DEPTH,
    render_class_distribution,
    render_depth_opacity,
    render_weights,
)
from nerfseg.models.nerf.sampler import (
    band_edges,
    bin_midpoints,
    importance_edges,
    merge_edges,
    stratified_edges,
)
from nerfseg.models.nerf.volume import is_raw, render_volume, volume_channels

EARLY_STOP_SEGMENT = 32
"""Samples per ray evaluated between two early-termination checks of :meth:`NerfHead.render_chunked`."""


@dataclass
class NerfConfig:
    """Settings of the NeRF head (all ours: the seed paper gives none). Distances in metres.

    Attributes:
        near, far: the ray interval rendered for camera rays (LiDAR rays end at
            ``range + lidar_surface_margin``).
        samples_per_ray: stratified bins per ray. Samples in empty space cost one hash lookup and are skipped
            by the MLP, so use enough bins that consecutive samples are about a voxel apart or closer
            ((far - near) / samples_per_ray <= voxel size): thinner sampling can step over thin surfaces.
        importance_samples: extra samples drawn from a first pass's weights (0 disables the second pass).
        lidar_samples_per_ray: stratified bins of a LiDAR ray (origin to ``range + lidar_surface_margin``,
            much shorter than a camera ray's [near, far]).
        lidar_surface_samples: extra stratified bins within ``+-lidar_surface_margin`` of each LiDAR return.
        pe_frequencies, pe_scale: positional encoding of the sample position (L frequencies, metres -> 1).
        mlp_width, mlp_depth: the field MLP's hidden width and number of hidden layers.
        density_bias: initial bias of the density output (softplus(-1) = 0.31 per metre).
        lidar_rays_per_scan: LiDAR rays (points) drawn per scan and step for the geometry loss.
        lambda_depth, lambda_opacity, lambda_sem: weights of the LiDAR-ray losses inside ``total``.
        lambda_free: weight of the free-space loss (rendering weight in front of each LiDAR return).
        lidar_free_margin: the free-space loss counts the weight more than this many metres in front of the
            return.
        eps: the epsilon of P's normalisation and of the logarithms.
        chunk_rays: rays rendered at once when rendering whole images (memory bound).
        early_stop_transmittance: no-grad renders (``render_chunked``, the teacher's) stop evaluating a ray's
            samples once its transmittance is below this (early ray termination; 0 disables).
        volume_stride, volume_dilation: the render volume (:meth:`NerfHead.build_volume`,
            ``nerfseg.models.nerf.volume``): the segmentor's stride-1 voxel features mean-pooled into cells of
            ``volume_stride`` voxels per axis, then dilated by ``volume_dilation`` cells around the observed
            ones. 1 / 0 reads the raw stride-1 voxels, which leave gaps between LiDAR scan lines that camera
            rays slip through. Default 1 / 0 for now: 2 / 1 (0.3 m cells on the 0.15 m synthetic preset,
            dilated by one) raises camera coverage from 89 % to 99 % but its median depth error after 200
            steps is 0.76 m against 0.24 m (benchmarks/results/camera_coverage.md): opt-in until fixed.
        semantics_from_point_head: the samples' semantic logits come from the segmentor's point classifier
            (:meth:`NerfHead.use_point_classifier`) rather than the field's own branch, so what camera rays
            teach reaches the classifier used at inference directly. Off by default: on the synthetic
            benchmark (2.5 % labels, paired seeds 0 / 1) `nerf` with the field's own branch reached 50.8 /
            47.6 % mIoU against 43.5 / 38.5 % with the shared classifier, which the fused labels' errors and
            the LiDAR-ray semantic term train on features interpolated off the surface. With ground-truth
            pixel labels (the oracle) sharing gains more (61.8 against 58.7 %): the camera's labels then
            reach the classifier unspoiled (benchmarks/results/ssl_synthetic_notes.md).
        volume_fine_features: also read the stride-1 voxel features beside the coarse volume's (the field
            sees where inside a cell the LiDAR surface lies; occupancy stays the coarse volume's).
        detach_field_features: the field MLP (density, and its own semantic branch) reads the voxel features
            detached from the segmentor, so the geometry losses (depth, opacity, free space) train the head
            only and never move the backbone's features. With ``semantics_from_point_head`` the rendered
            semantics still reach the backbone through the point classifier, which reads the features
            undetached.
    """

    near: float = 0.5
    far: float = 60.0
    samples_per_ray: int = 256
    importance_samples: int = 0
    lidar_samples_per_ray: int = 48
    lidar_surface_samples: int = 8
    lidar_surface_margin: float = 0.5
    pe_frequencies: int = 4
    pe_scale: float = 50.0
    mlp_width: int = 64
    mlp_depth: int = 2
    density_bias: float = -1.0
    lidar_rays_per_scan: int = 512
    lambda_depth: float = 0.1
    lambda_opacity: float = 0.1
    lambda_sem: float = 1.0
    lambda_free: float = 0.0
    lidar_free_margin: float = 0.5
    eps: float = 1e-6
    chunk_rays: int = 4096
    early_stop_transmittance: float = 1e-3
    volume_stride: int = 1
    volume_dilation: int = 0
    volume_fine_features: bool = False
    semantics_from_point_head: bool = False
    detach_field_features: bool = False

    def validate(self) -> NerfConfig:
        """Raise ConfigError naming the first invalid key (as ``model.nerf.KEY``); return self."""
        checks = [
            (0.0 <= self.near < self.far, "near", "must satisfy 0 <= near < far"),
            (self.samples_per_ray >= 1, "samples_per_ray", "must be >= 1"),
            (self.lidar_samples_per_ray >= 1, "lidar_samples_per_ray", "must be >= 1"),
            (self.importance_samples >= 0, "importance_samples", "must be >= 0"),
            (self.lidar_surface_samples >= 0, "lidar_surface_samples", "must be >= 0"),
            (self.lidar_surface_margin > 0, "lidar_surface_margin", "must be > 0 metres"),
            (self.lidar_free_margin >= 0, "lidar_free_margin", "must be >= 0 metres"),
            (self.pe_frequencies >= 0, "pe_frequencies", "must be >= 0"),
            (self.pe_scale > 0, "pe_scale", "must be > 0 metres"),
            (
                self.mlp_width >= 1 and self.mlp_depth >= 1,
                "mlp_width",
                "mlp_width and mlp_depth must be >= 1",
            ),
            (self.lidar_rays_per_scan >= 0, "lidar_rays_per_scan", "must be >= 0"),
            (
                min(self.lambda_depth, self.lambda_opacity, self.lambda_sem, self.lambda_free) >= 0,
                "lambda_depth",
                "weights >= 0",
            ),
            (0 < self.eps < 1, "eps", "must be in (0, 1)"),
            (self.chunk_rays >= 1, "chunk_rays", "must be >= 1"),
            (0 <= self.early_stop_transmittance < 1, "early_stop_transmittance", "must be in [0, 1)"),
            (self.volume_stride >= 1, "volume_stride", "must be >= 1 (voxels per cell edge)"),
            (self.volume_dilation >= 0, "volume_dilation", "must be >= 0 (cells)"),
        ]
        for ok, key, problem in checks:
            if not ok:
                raise ConfigError(f"model.nerf.{key} {problem}")
        return self


@dataclass
class RenderOutput:
    """What the head renders for R rays.

    Attributes:
        probs: (R, C) float32 rendered class distribution P(r) (rows sum to A / (A + eps)).
        depth: (R,) float32 D(r) = sum_i w_i t_i, metres from the ray origin (not normalised by opacity).
        opacity: (R,) float32 A(r) = sum_i w_i in [0, 1].
        weights: (R, N) float32 per-sample weights (None from :meth:`NerfHead.render_chunked`).
        t: (R, N) float32 sample distances (bin midpoints), metres (None from render_chunked).
        num_samples: samples drawn (R * N); num_evaluated: those in occupied space that went through the MLP.
    """

    probs: torch.Tensor
    depth: torch.Tensor
    opacity: torch.Tensor
    weights: torch.Tensor | None
    t: torch.Tensor | None
    num_samples: int
    num_evaluated: int


class NerfHead(nn.Module):
    """NeRF head on sparse voxel features of dimension ``feature_dim`` predicting ``num_classes`` classes."""

    def __init__(self, cfg: NerfConfig, feature_dim: int, num_classes: int):
        super().__init__()
        self.cfg = cfg.validate()
        self.feature_dim = feature_dim
        self.num_classes = num_classes
        self.point_classifier = None
        self.field = SemanticDensityField(
            volume_channels(feature_dim, cfg.volume_stride, cfg.volume_dilation, cfg.volume_fine_features),
            num_classes,
            width=cfg.mlp_width,
            depth=cfg.mlp_depth,
            pe_frequencies=cfg.pe_frequencies,
            pe_scale=cfg.pe_scale,
            density_bias=cfg.density_bias,
        )

    def use_point_classifier(self, classifier) -> None:
        """Take the semantic logits of every sample from ``classifier`` (e.g. the segmentor's
        ``PointHead.classify_features``: (S, F) voxel features -> (S, C) logits) applied to the first
        ``feature_dim`` channels of the volume's interpolated features (the decoder's own features, pooled
        where the volume is coarser), instead of the field's semantic branch: the render losses then train the
        classifier that labels the points (``NerfConfig.semantics_from_point_head``). Kept as a plain
        reference, not a sub-module: its weights stay the segmentor's (deep-copy the two together so a copy
        of the head refers to the copied segmentor)."""
        self.point_classifier = classifier

    def build_volume(self, seg_out) -> VoxelGrid | StackedVoxelGrid:
        """The volume this head renders through, built from the segmentor's output (once per batch).

        Args:
            seg_out: a :class:`~nerfseg.models.segmentor.SegmentorOutput`: ``voxel_features`` (SparseTensor at
                stride 1, coords (M, 4) [batch, i, j, k], feats (M, F)) and ``voxel_size`` (metres).

        Returns:
            a :class:`VoxelGrid` of cells ``cfg.volume_stride * voxel_size`` metres wide, dilated by
            ``cfg.volume_dilation`` cells, with ``volume_channels(F, ...)`` features (see
            ``nerfseg.models.nerf.volume``); differentiable with respect to the voxel features. With
            ``cfg.volume_fine_features`` a :class:`StackedVoxelGrid` that also reads the stride-1 features.
        """
        cfg = self.cfg
        voxels = seg_out.voxel_features
        coords, feats, cell = render_volume(
            voxels.coords, voxels.feats, seg_out.voxel_size, cfg.volume_stride, cfg.volume_dilation
        )
        grid = VoxelGrid(coords, feats, cell)
        if cfg.volume_fine_features and not is_raw(cfg.volume_stride, cfg.volume_dilation):
            return StackedVoxelGrid(grid, VoxelGrid(voxels.coords, voxels.feats, seg_out.voxel_size))
        return grid

    def render(
        self,
        grid: VoxelGrid,
        bundle: RayBundle,
        near: torch.Tensor | None = None,
        far: torch.Tensor | None = None,
        surface_depth: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        num_samples: int | None = None,
    ) -> RenderOutput:
        """Render the R rays of ``bundle`` through the sparse voxel features of a batch of scans.

        Args:
            grid: the voxel volume (:class:`VoxelGrid`; build it once to render many ray chunks). Gradients
                reach its features through trilinear interpolation.
            bundle: the rays (:class:`~nerfseg.geometry.rays.RayBundle`): origins (R, 3) in their scan's
                LiDAR frame, metres, unit directions (R, 3), and ``scan`` (R,), the batch column of the
                grid's voxel coordinates (pixels / camera are carried along, not read).
            near, far: optional (R,) per-ray interval (default cfg.near / cfg.far).
            surface_depth: optional (R,) known surface distance (LiDAR range): adds band samples around it.
            generator: random source of the stratified / importance draws (used in training mode only).
            num_samples: stratified bins per ray (default cfg.samples_per_ray).
        """
        return self.render_grid(grid, bundle, near, far, surface_depth, generator, num_samples)

    def render_grid(
        self,
        grid: VoxelGrid,
        bundle: RayBundle,
        near: torch.Tensor | None = None,
        far: torch.Tensor | None = None,
        surface_depth: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        num_samples: int | None = None,
    ) -> RenderOutput:
        """The same as :meth:`render` (kept under its older name)."""
        cfg = self.cfg
        num_rays = len(bundle)
        ray_batch, origins, dirs = bundle.scan, bundle.origins.float(), bundle.directions.float()
        edges = self._edges(grid, bundle, near, far, surface_depth, generator, num_samples)
        t, deltas = bin_midpoints(edges)
        sigma, logits, occupied = self._evaluate(grid, ray_batch, origins, dirs, t)
        weights = render_weights(sigma, deltas)
        depth, opacity = render_depth_opacity(weights, t)
        num_samples_per_ray = t.shape[1]
        probs = render_class_distribution(
            weights.reshape(-1)[occupied], logits, occupied // num_samples_per_ray, num_rays, cfg.eps
        )
        return RenderOutput(probs, depth, opacity, weights, t, int(t.numel()), int(occupied.numel()))

    def _edges(self, grid, bundle, near, far, surface_depth, generator, num_samples) -> torch.Tensor:
        """(R, N + 1) bin edges of the rays, metres: stratified in [near, far] (default cfg.near / cfg.far),
        plus the surface band around ``surface_depth`` and the importance pass where configured."""
        cfg = self.cfg
        num_rays = len(bundle)
        device = bundle.device
        ray_batch, origins, dirs = bundle.scan, bundle.origins.float(), bundle.directions.float()
        near = torch.full((num_rays,), cfg.near, device=device) if near is None else near.float()
        far = torch.full((num_rays,), cfg.far, device=device) if far is None else far.float()
        perturb = self.training
        edges = stratified_edges(near, far, num_samples or cfg.samples_per_ray, perturb, generator)
        if surface_depth is not None and cfg.lidar_surface_samples > 0:
            band = band_edges(
                surface_depth,
                cfg.lidar_surface_margin,
                cfg.lidar_surface_samples,
                near,
                far,
                perturb,
                generator,
            )
            edges = merge_edges(edges, band)
        if cfg.importance_samples > 0:
            with torch.no_grad():
                t, deltas = bin_midpoints(edges)
                sigma, _, _ = self._evaluate(grid, ray_batch, origins, dirs, t)
                coarse = render_weights(sigma, deltas)
            edges = importance_edges(edges, coarse, cfg.importance_samples, perturb, generator)
        return edges

    @torch.no_grad()
    def _render_early_stop(
        self, grid: VoxelGrid, bundle: RayBundle, edges: torch.Tensor, stop_transmittance: float
    ) -> RenderOutput:
        """Render without gradients front to back in segments of EARLY_STOP_SEGMENT samples, dropping a ray
        once its transmittance falls below ``stop_transmittance``: the field is not evaluated behind the
        point where the ray is spent. The weights left out sum to less than ``stop_transmittance`` per ray, so
        opacity differs from the full render by less than that, depth by less than that times ``far`` and
        P by about that over A. Same outputs as render_chunked (weights / t None)."""
        cfg = self.cfg
        t, deltas = bin_midpoints(edges)
        num_rays, num_bins = t.shape
        origins, dirs = bundle.origins.float(), bundle.directions.float()
        optical = t.new_zeros(num_rays)  # optical depth accumulated so far, sum sigma * delta
        depth = t.new_zeros(num_rays)
        opacity = t.new_zeros(num_rays)
        numerator = t.new_zeros((num_rays, self.num_classes))
        active = torch.arange(num_rays, device=t.device)
        num_evaluated = 0
        for start in range(0, num_bins, EARLY_STOP_SEGMENT):
            if active.numel() == 0:
                break
            t_seg = t[active, start : start + EARLY_STOP_SEGMENT]
            d_seg = deltas[active, start : start + EARLY_STOP_SEGMENT]
            sigma, logits, occupied = self._evaluate(
                grid, bundle.scan[active], origins[active], dirs[active], t_seg
            )
            tau = (sigma.float() * d_seg.float()).nan_to_num(nan=0.0).clamp(0.0, MAX_OPTICAL_DEPTH)
            exclusive = torch.cumsum(torch.cat([torch.zeros_like(tau[:, :1]), tau[:, :-1]], dim=1), dim=1)
            before = optical[active, None] + exclusive
            weights = torch.exp(-before) * -torch.expm1(-tau)
            depth[active] += (weights * t_seg).sum(dim=1)
            opacity[active] += weights.sum(dim=1)
            ray = active[occupied // t_seg.shape[1]]
            numerator.index_add_(
                0, ray, weights.reshape(-1)[occupied, None] * torch.softmax(logits.float(), dim=1)
            )
            optical[active] += tau.sum(dim=1)
            num_evaluated += int(occupied.numel())
            active = active[torch.exp(-optical[active]) >= stop_transmittance]
        probs = numerator / (opacity[:, None] + cfg.eps)
        return RenderOutput(probs, depth, opacity, None, None, int(t.numel()), num_evaluated)

    def _evaluate(
        self,
        grid: VoxelGrid,
        ray_batch: torch.Tensor,
        origins: torch.Tensor,
        dirs: torch.Tensor,
        t: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Field at the samples: sigma (R, N) float32 (zero in empty space), logits (S, C) of the S occupied
        samples, and their flat indices (S,) into R * N."""
        num_rays, num_samples = t.shape
        positions = (origins.unsqueeze(1) + t.unsqueeze(2) * dirs.unsqueeze(1)).reshape(-1, 3)
        batch = ray_batch.to(torch.int64).repeat_interleave(num_samples)
        keys, frac = grid.base_keys(positions, batch)
        occupied = torch.nonzero(grid.occupied(keys)).squeeze(1)
        features, support = grid.interpolate_with_support(keys[occupied], frac[occupied])
        field_input = features.detach() if self.cfg.detach_field_features else features
        sigma_occupied, logits = self.field(field_input, positions[occupied])
        if self.point_classifier is not None:  # semantics from the segmentor's own classifier, fed the
            # features at a voxel's own scale (divided by the weight of the voxels present around the sample)
            scale = support.clamp_min(1e-6).unsqueeze(1).to(features.dtype)
            logits = self.point_classifier(features[:, : self.feature_dim] / scale)
        sigma = sigma_occupied.new_zeros(num_rays * num_samples).index_copy(0, occupied, sigma_occupied)
        return sigma.view(num_rays, num_samples), logits, occupied

    @torch.no_grad()
    def render_clipped(self, grid: VoxelGrid, bundle: RayBundle) -> RenderOutput:
        """:meth:`render_chunked` of camera rays over [cfg.near, cfg.far], sampling only where density can be:
        each ray is clipped to its scan's volume box (:mod:`nerfseg.models.nerf.ray_bounds`) and gets the bins
        its clipped length needs at the full ray's spacing ``(far - near) / samples_per_ray``; rays are
        rendered in chunks sorted by that count. A ray that misses the box renders opacity 0, probs 0 and
        depth 0. Equal to the full render up to where the bins fall (their spacing is the same)."""
        from nerfseg.models.nerf.ray_bounds import clip_to_boxes, volume_bounds

        cfg = self.cfg
        num_rays = len(bundle)
        device = bundle.device
        probs = torch.zeros((num_rays, self.num_classes), device=device)
        depth = torch.zeros(num_rays, device=device)
        opacity = torch.zeros(num_rays, device=device)
        if num_rays == 0:
            return RenderOutput(probs, depth, opacity, None, None, 0, 0)
        last_scan = int(grid.coords[:, 0].max()) if grid.coords.numel() else 0
        num_scans = max(int(bundle.scan.max()), last_scan) + 1
        lo, hi = volume_bounds(grid.coords, grid.voxel_size, num_scans)
        near, far, hit = clip_to_boxes(
            bundle.origins.float(), bundle.directions.float(), bundle.scan, lo, hi, cfg.near, cfg.far
        )
        spacing = (cfg.far - cfg.near) / cfg.samples_per_ray
        bins = torch.ceil((far - near) / spacing).clamp_(1, cfg.samples_per_ray).long()
        rays = torch.nonzero(hit).squeeze(1)
        rays = rays[torch.argsort(bins[rays], stable=True)]
        num_samples = num_evaluated = 0
        for start in range(0, rays.numel(), cfg.chunk_rays):
            part = rays[start : start + cfg.chunk_rays]
            count = int(bins[part].max())
            out = self.render_chunked(
                grid, bundle[part], near=near[part], far=far[part], num_samples=count, chunk_rays=part.numel()
            )
            probs[part], depth[part], opacity[part] = out.probs, out.depth, out.opacity
            num_samples += out.num_samples
            num_evaluated += out.num_evaluated
        return RenderOutput(probs, depth, opacity, None, None, num_samples, num_evaluated)

    @torch.no_grad()
    def render_chunked(
        self,
        grid: VoxelGrid,
        bundle: RayBundle,
        near: torch.Tensor | None = None,
        far: torch.Tensor | None = None,
        surface_depth: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        num_samples: int | None = None,
        chunk_rays: int | None = None,
    ) -> RenderOutput:
        """:meth:`render` without gradients (the teacher's render), ``chunk_rays`` rays at a time (default
        cfg.chunk_rays), keeping only probs, depth and opacity (weights / t are None). Arguments as
        :meth:`render`. With ``cfg.early_stop_transmittance > 0`` a ray stops evaluating the field once its
        transmittance drops below it (early ray termination, :meth:`_render_early_stop`; ``num_evaluated``
        counts only the samples evaluated); 0 renders every sample."""
        chunk = chunk_rays or self.cfg.chunk_rays
        stop = self.cfg.early_stop_transmittance
        probs, depth, opacity = [], [], []
        num_samples_total = num_evaluated = 0
        for start in range(0, len(bundle), chunk):
            part = slice(start, start + chunk)
            args = (
                grid,
                bundle[part],
                None if near is None else near[part],
                None if far is None else far[part],
                None if surface_depth is None else surface_depth[part],
                generator,
                num_samples,
            )
            if stop > 0:
                out = self._render_early_stop(grid, args[1], self._edges(*args), stop)
            else:
                out = self.render_grid(*args)
            probs.append(out.probs)
            depth.append(out.depth)
            opacity.append(out.opacity)
            num_samples_total += out.num_samples
            num_evaluated += out.num_evaluated
        if not probs:
            empty = torch.zeros(0, device=bundle.device)
            return RenderOutput(empty.new_zeros((0, self.num_classes)), empty, empty, None, None, 0, 0)
        return RenderOutput(
            torch.cat(probs),
            torch.cat(depth),
            torch.cat(opacity),
            None,
            None,
            num_samples_total,
            num_evaluated,
        )
