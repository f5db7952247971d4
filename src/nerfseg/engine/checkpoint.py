"""Checkpoints: written atomically, loaded with ``torch.load(weights_only=True)``.

Two kinds, both plain dicts of tensors, state dicts and plain python values (config as a dict):

* training checkpoint (``kind == "train"``): ``step``, ``config``, ``num_classes``, ``class_names``,
  ``model`` (segmentor state dict), ``teacher`` (the EMA teacher's segmentor state dict, only when the
  method has a teacher), ``nerf_head`` (state dict, only when the NeRF head is enabled), ``optimizer``,
  ``scheduler``, ``rng`` (torch CPU / CUDA / extra generator states). Resuming restores all.
* inference export (``kind == "model"``): ``config``, ``num_classes``, ``class_names``, ``model`` (the
  student's or the teacher's segmentor weights), ``weights`` (``"student"`` or ``"teacher"``), ``step``
  only: no NeRF weights, no optimiser; what ``nerfseg predict`` needs. A run's ``model.pt`` and
  ``nerfseg export`` both write it with :func:`inference_payload`.

Both kinds load into a segmentor with :func:`build_segmentor`. torch is imported inside the functions
that need it, so the command line can offer :data:`EXPORT_WEIGHTS` without loading torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from nerfseg.errors import DataError
from nerfseg.io_utils import atomic_torch_save, load_torch_file

if TYPE_CHECKING:
    import torch

FORMAT = "nerfseg-checkpoint-v1"
TRAIN_KIND = "train"
MODEL_KIND = "model"
_REQUIRED = ("format", "kind", "config", "num_classes", "class_names", "model")


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Atomically write a checkpoint dict (``format`` is filled in); the file is complete or absent."""
    payload = {"format": FORMAT, **payload}
    missing = [k for k in _REQUIRED if k not in payload]
    if missing:
        raise ValueError(f"checkpoint payload lacks {missing}")
    return atomic_torch_save(payload, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a nerfseg checkpoint with ``weights_only=True``.

    Raises DataError naming the file when it is missing, truncated / not a torch file, holds objects that
    are not allowed under weights_only, or is not a nerfseg checkpoint (see
    :func:`nerfseg.io_utils.load_torch_file`: never with torch's advice to load it with weights_only=False).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(path, "checkpoint file not found")
    payload = load_torch_file(path, "checkpoint", map_location)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise DataError(path, f"not a nerfseg checkpoint (a PyTorch file, but not of format '{FORMAT}')")
    missing = [k for k in _REQUIRED if k not in payload]
    if missing:
        raise DataError(path, f"checkpoint lacks entries {missing}")
    if payload["kind"] == TRAIN_KIND:
        lacking = [k for k in ("step", "optimizer", "scheduler", "rng") if k not in payload]
        if lacking:
            raise DataError(path, f"training checkpoint lacks entries {lacking}")
    return payload


EXPORT_WEIGHTS = ("auto", "student", "teacher")
"""Which segmentor an inference export holds: ``student`` (``model``), ``teacher`` (``teacher``, the EMA
teacher) or ``auto`` (the teacher when the checkpoint has one, else the student)."""
DEFAULT_EXPORT_WEIGHTS = "student"
"""Default of ``nerfseg export --weights`` and the weights of a run's ``model.pt``: chosen by measurement. On
the synthetic benchmark's four teacher runs (benchmarks/results/ssl_synthetic_notes.md, 400 steps, EMA decay
0.99) the student's val mIoU was above the teacher's in three, by 0.1-0.4 points, and 0.2 below in one
(``val/`` against ``val_teacher/``): no reliable difference, and the student is what every method validates
and what runs without a teacher export. Runs of the real budgets (EMA decay 0.999) may differ: both are
logged; export the other with ``--weights teacher``."""


def resolve_export_weights(
    checkpoint: dict[str, Any], weights: str = "student", path: str | Path = "checkpoint"
) -> str:
    """``"student"`` or ``"teacher"``: the state dict an export of ``checkpoint`` takes for ``weights``.

    Raises DataError naming ``path`` when ``"teacher"`` is asked and the checkpoint has none; ValueError
    for a value outside :data:`EXPORT_WEIGHTS`.
    """
    if weights not in EXPORT_WEIGHTS:
        raise ValueError(f"weights must be one of {EXPORT_WEIGHTS}, got {weights!r}")
    has_teacher = checkpoint.get("teacher") is not None
    if weights == "auto":
        return "teacher" if has_teacher else "student"
    if weights == "teacher" and not has_teacher:
        raise DataError(path, "has no EMA teacher weights ('teacher'); export the student instead")
    return weights


def inference_payload(
    checkpoint: dict[str, Any], weights: str = "student", path: str | Path = "checkpoint"
) -> dict[str, Any]:
    """The inference export of a training checkpoint: one segmentor's weights, config and classes only.

    Args:
        checkpoint: a loaded training checkpoint (``kind == "train"``).
        weights: ``"student"`` (``checkpoint["model"]``), ``"teacher"`` (``checkpoint["teacher"]``) or
            ``"auto"`` (see :func:`resolve_export_weights`).
        path: the checkpoint's file, named in errors.
    Returns:
        The export dict (``kind == "model"``), with ``weights`` recording which segmentor and ``step``.
    Raises DataError naming ``path`` when the checkpoint is already an inference export, has no teacher
    although one is asked, or its teacher's keys differ from the student's.
    """
    if checkpoint.get("kind") == MODEL_KIND:
        raise DataError(path, "is already an inference export (kind 'model'); give a training checkpoint")
    chosen = resolve_export_weights(checkpoint, weights, path)
    state = checkpoint["model"] if chosen == "student" else checkpoint["teacher"]
    if chosen == "teacher" and state.keys() != checkpoint["model"].keys():
        raise DataError(path, "the teacher's weights do not name the same tensors as the student's")
    return {
        "kind": MODEL_KIND,
        "config": checkpoint["config"],
        "num_classes": checkpoint["num_classes"],
        "class_names": list(checkpoint["class_names"]),
        "model": {k: v.detach().clone() for k, v in state.items()},
        "weights": chosen,
        "step": checkpoint.get("step", 0),
    }


def write_inference_export(
    out_path: str | Path, payload: dict[str, Any], source: str | Path | None = None
) -> Path:
    """Atomically write an :func:`inference_payload` to ``out_path``.

    Raises DataError naming ``out_path`` when it is a folder, is ``source`` (the checkpoint exported) or
    cannot be written.
    """
    out_path = Path(out_path)
    if out_path.is_dir():
        raise DataError(out_path, "is a folder; give the export's file name, e.g. model.pt")
    if source is not None and out_path.exists() and out_path.resolve() == Path(source).resolve():
        raise DataError(out_path, "is the checkpoint being exported; choose another output file")
    try:
        return save_checkpoint(out_path, payload)
    except OSError as err:
        raise DataError(out_path, f"cannot write ({err.strerror or err})") from None


def export_inference(checkpoint_path: str | Path, out_path: str | Path, weights: str = "student") -> Path:
    """Write the inference export (no NeRF head, no optimiser) of ``checkpoint_path`` to ``out_path``.

    ``weights`` as in :func:`inference_payload`. Raises DataError naming the file when the input is not a
    training checkpoint or ``out_path`` cannot take the export (see :func:`write_inference_export`).
    """
    payload = inference_payload(load_checkpoint(checkpoint_path), weights, checkpoint_path)
    return write_inference_export(out_path, payload, source=checkpoint_path)


def build_segmentor(
    checkpoint: dict[str, Any], path: str | Path = "checkpoint"
) -> tuple[torch.nn.Module, Any]:
    """(segmentor in eval mode with the checkpoint's weights, its Config) from a loaded checkpoint.

    Raises DataError naming ``path`` when the stored config or weights do not fit the model.
    """
    from nerfseg.config import config_from_dict
    from nerfseg.errors import ConfigError
    from nerfseg.models.segmentor import LidarSegmentor

    try:
        cfg = config_from_dict(checkpoint["config"], source=str(path))
    except ConfigError as err:
        raise DataError(path, f"stored config is invalid: {err}") from err
    model = LidarSegmentor(cfg.model.segmentor, int(checkpoint["num_classes"]))
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError as err:
        raise DataError(
            path, f"weights do not fit the stored model config: {str(err).splitlines()[0]}"
        ) from err
    model.eval()
    return model, cfg


def capture_rng_state(extra: dict[str, torch.Generator] | None = None) -> dict[str, Any]:
    """Tensors of every RNG the training loop draws from: torch CPU, each CUDA device, named generators."""
    import torch

    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = [s for s in torch.cuda.get_rng_state_all()]
    for name, generator in (extra or {}).items():
        state[f"gen/{name}"] = generator.get_state()
    return state


def restore_rng_state(state: dict[str, Any], extra: dict[str, torch.Generator] | None = None) -> None:
    """Inverse of :func:`capture_rng_state`."""
    import torch

    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for name, generator in (extra or {}).items():
        key = f"gen/{name}"
        if key in state:
            generator.set_state(state[key])
