"""Segment-Anything (SAM) as a mask source: the automatic mask generator of the `segment_anything`
package, with the model type and checkpoint given by the user. Nothing is downloaded."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nerfseg.errors import ConfigError, DataError
from nerfseg.masks.convert import masks_to_id_image
from nerfseg.masks.source import MaskSource, check_image

if TYPE_CHECKING:  # pragma: no cover
    import torch

SAM_MODEL_TYPES = ("vit_h", "vit_l", "vit_b")

# Embedding width of the official image encoders, to name the model type a checkpoint was made for.
_ENCODER_WIDTH = {1280: "vit_h", 1024: "vit_l", 768: "vit_b"}
_WIDTH_KEY = "image_encoder.patch_embed.proj.weight"

SamBuilder = Callable[[], "torch.nn.Module"]
"""Builds an un-initialised-from-checkpoint SAM model (``segment_anything.modeling.Sam``)."""


@dataclass
class SamConfig:
    """Settings of :class:`SamMasks`: the model, and ``SamAutomaticMaskGenerator``'s parameters
    (same names and defaults as the library; see its documentation).

    Attributes:
        checkpoint: path of the SAM weights (e.g. ``sam_vit_h_4b8939.pth``), downloaded by the user.
        model_type: ``vit_h``, ``vit_l`` or ``vit_b``; must match the checkpoint.
        device: ``cpu`` or ``cuda`` (``cuda:N``).
        points_per_side: prompts per image side (points_per_side**2 point prompts).
        points_per_batch: prompts run through the decoder at once (memory).
        pred_iou_thresh / stability_score_thresh / stability_score_offset: mask quality filters.
        box_nms_thresh: NMS IoU between masks of one crop.
        crop_n_layers / crop_nms_thresh / crop_overlap_ratio / crop_n_points_downscale_factor: crops.
        min_mask_region_area: remove small holes/islands (needs OpenCV; 0 = off).
    """

    checkpoint: str = ""
    model_type: str = "vit_h"
    device: str = "cpu"
    points_per_side: int = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    box_nms_thresh: float = 0.7
    crop_n_layers: int = 0
    crop_nms_thresh: float = 0.7
    crop_overlap_ratio: float = 512 / 1500
    crop_n_points_downscale_factor: int = 1
    min_mask_region_area: int = 0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, prefix: str = "") -> SamConfig:
        """Raise ConfigError naming the first invalid setting as ``prefix + name`` (e.g.
        ``masks.sam.points_per_side must be >= 1, got 0``); return self otherwise."""
        counts = ("points_per_side", "points_per_batch")
        checks = [(name, getattr(self, name) >= 1, ">= 1") for name in counts]
        checks.append(("crop_n_layers", self.crop_n_layers >= 0, ">= 0"))
        for name in ("pred_iou_thresh", "stability_score_thresh", "box_nms_thresh", "crop_nms_thresh"):
            checks.append((name, 0.0 <= getattr(self, name) <= 1.0, "in [0, 1]"))
        for name, ok, rule in checks:
            if not ok:
                raise ConfigError(f"{prefix}{name} must be {rule}, got {getattr(self, name)!r}")
        return self

    def generator_kwargs(self) -> dict:
        """Keyword arguments of ``SamAutomaticMaskGenerator`` (everything but the model)."""
        return {
            "points_per_side": self.points_per_side,
            "points_per_batch": self.points_per_batch,
            "pred_iou_thresh": self.pred_iou_thresh,
            "stability_score_thresh": self.stability_score_thresh,
            "stability_score_offset": self.stability_score_offset,
            "box_nms_thresh": self.box_nms_thresh,
            "crop_n_layers": self.crop_n_layers,
            "crop_nms_thresh": self.crop_nms_thresh,
            "crop_overlap_ratio": self.crop_overlap_ratio,
            "crop_n_points_downscale_factor": self.crop_n_points_downscale_factor,
            "min_mask_region_area": self.min_mask_region_area,
            "output_mode": "binary_mask",
        }


def official_sam_builders() -> dict[str, SamBuilder]:
    """The library's builders for vit_h / vit_l / vit_b (random weights; the checkpoint is loaded by us)."""
    from segment_anything.build_sam import build_sam_vit_b, build_sam_vit_h, build_sam_vit_l

    return {"vit_h": build_sam_vit_h, "vit_l": build_sam_vit_l, "vit_b": build_sam_vit_b}


def _guess_model_type(state_dict: Mapping) -> str | None:
    weight = state_dict.get(_WIDTH_KEY)
    shape = getattr(weight, "shape", None)
    return _ENCODER_WIDTH.get(int(shape[0])) if shape else None


def read_sam_state_dict(checkpoint: str | Path) -> dict:
    """Load a SAM checkpoint (a plain state dict) with ``weights_only=True`` on the CPU.

    Raises ConfigError when no path is given, DataError naming the file when it is missing or unreadable.
    """
    import torch

    from nerfseg.io_utils import load_torch_file

    if not str(checkpoint):
        raise ConfigError("the SAM mask source needs a checkpoint: set masks.sam.checkpoint=PATH (nothing is "
                          "downloaded)")
    path = Path(checkpoint)
    if not path.is_file():
        raise DataError(path, "SAM checkpoint not found (download it yourself and pass its path; nothing is "
                              "downloaded at run time)")
    state = load_torch_file(path, "SAM checkpoint")
    if isinstance(state, Mapping) and "model" in state and isinstance(state["model"], Mapping):
        state = state["model"]
    if not isinstance(state, Mapping) or not state:
        found = f"an empty {type(state).__name__}" if isinstance(state, Mapping) else type(state).__name__
        expected = "expected a mapping of parameter names to tensors"
        raise DataError(path, f"not a SAM state dict ({expected}, found {found})")
    others = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if others:
        count = f"{len(others)} of its {len(state)} entries are not tensors"
        raise DataError(path, f"not a SAM state dict: {count} (first: {str(others[0])!r})")
    return dict(state)


def _mismatch(model: torch.nn.Module, state: Mapping) -> list[str]:
    """Differences between a model's state dict (may live on the meta device) and a checkpoint's."""
    expected = model.state_dict()
    problems = [f"missing {k}" for k in expected if k not in state]
    problems += [f"unexpected {k}" for k in state if k not in expected]
    problems += [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    return problems


def load_sam_model(
    model_type: str,
    checkpoint: str | Path,
    device: str = "cpu",
    builders: Mapping[str, SamBuilder] | None = None,
) -> torch.nn.Module:
    """Build the SAM model of ``model_type`` and load ``checkpoint`` into it (strictly).

    Args:
        model_type: a key of ``builders`` (default: vit_h, vit_l, vit_b).
        checkpoint: path of a state dict saved with ``torch.save``.
        device: ``cpu`` or ``cuda[:N]``.
        builders: model-type -> builder; tests pass a tiny model here, users never need to.
    Returns:
        the model in eval mode on ``device``.
    Raises:
        ConfigError for an unknown model type or an unavailable device; DataError naming the checkpoint
        when it is missing, unreadable, or does not match the model type (naming both).
    """
    import torch

    builders = dict(builders) if builders is not None else official_sam_builders()
    if model_type not in builders:
        raise ConfigError(f"unknown SAM model type {model_type!r}; choose one of {sorted(builders)}")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"SAM device {device!r}: CUDA is not available; set masks.sam.device=cpu")
    state = read_sam_state_dict(checkpoint)
    with torch.device("meta"):  # shapes only: no memory, no random init
        skeleton = builders[model_type]()
    expected = skeleton.state_dict()
    if not any(k in expected for k in state):
        names = f"first: {next(iter(state))!r}; expected e.g. {next(iter(expected))!r}"
        raise DataError(checkpoint, f"not a SAM checkpoint: none of its {len(state)} tensors is a parameter "
                                    f"of SAM {model_type!r} ({names})")
    problems = _mismatch(skeleton, state)
    if problems:
        guess = _guess_model_type(state)
        hint = f" (its image encoder looks like {guess})" if guess and guess != model_type else ""
        shown = "; ".join(problems[:3]) + (f"; ... {len(problems) - 3} more" if len(problems) > 3 else "")
        raise DataError(checkpoint, f"does not match SAM model type {model_type!r}{hint}: {shown}")
    model = builders[model_type]()
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


class SamMasks(MaskSource):
    """SAM's automatic mask generator as a mask source; overlapping masks resolved smallest-wins.

    The model is loaded on first use (or by :meth:`prepare`), so a training run whose masks are all cached
    never loads it; `nerfseg masks` calls :meth:`prepare` before its first image, so a bad checkpoint is
    one error up front.
    """

    name = "sam"

    def __init__(self, cfg: SamConfig, builders: Mapping[str, SamBuilder] | None = None):
        if cfg.min_mask_region_area > 0:
            try:
                import cv2  # noqa: F401
            except ImportError as err:
                raise ConfigError("SAM min_mask_region_area > 0 needs OpenCV (opencv-python)") from err
        self.cfg = cfg
        self._builders = builders
        self._generator = None
        self._load_error: ConfigError | DataError | None = None

    @classmethod
    def from_model(cls, model: torch.nn.Module, cfg: SamConfig | None = None) -> SamMasks:
        """A source around an already built SAM model (e.g. made in a notebook); ``cfg`` gives the generator
        parameters (its checkpoint / model type are then only used in ``cache_key``)."""
        from segment_anything import SamAutomaticMaskGenerator

        source = cls(cfg or SamConfig())
        source._generator = SamAutomaticMaskGenerator(model.eval(), **source.cfg.generator_kwargs())
        return source

    def generator(self):
        """The ``SamAutomaticMaskGenerator`` (loads the model on the first call). A checkpoint that failed
        to load is not tried again: later calls raise the same error."""
        if self._load_error is not None:
            raise self._load_error
        if self._generator is None:
            from segment_anything import SamAutomaticMaskGenerator

            try:
                cfg = self.cfg
                model = load_sam_model(cfg.model_type, cfg.checkpoint, cfg.device, self._builders)
            except (ConfigError, DataError) as err:
                self._load_error = err
                raise
            self._generator = SamAutomaticMaskGenerator(model, **self.cfg.generator_kwargs())
        return self._generator

    def prepare(self) -> None:
        """Load and check the SAM checkpoint now (see :meth:`MaskSource.prepare`): ConfigError / DataError
        naming the checkpoint when it is missing, unreadable, not a state dict, or does not match
        ``model_type`` (missing / unexpected keys, other shapes)."""
        self.generator()

    def masks(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (H, W) int32 mask ids, -1 where SAM found no mask."""
        check_image(image)
        records = self.generator().generate(image)
        h, w = image.shape[:2]
        if not records:
            return masks_to_id_image(np.zeros((0, h, w), dtype=bool))
        return masks_to_id_image(np.stack([np.asarray(r["segmentation"], dtype=bool) for r in records]))

    def cache_key(self) -> str:
        """Model type, checkpoint file name and size, and every generator parameter.

        Raises DataError when the checkpoint does not exist (so a cache lookup also validates the path).
        """
        path = Path(self.cfg.checkpoint)
        if not str(self.cfg.checkpoint):
            raise ConfigError("the SAM mask source needs a checkpoint: set masks.sam.checkpoint=PATH")
        if not path.is_file():
            raise DataError(path, "SAM checkpoint not found (nothing is downloaded at run time)")
        params = ",".join(f"{k}={v!r}" for k, v in sorted(self.cfg.generator_kwargs().items()))
        return f"sam:{self.cfg.model_type}:{path.name}:{path.stat().st_size}:{params}"
