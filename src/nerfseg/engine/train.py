"""The training loop, one for every method, exactly resumable.

A step draws a labeled batch and (when the method uses them) an unlabeled batch from two resumable streams
(:mod:`nerfseg.engine.streams`), asks the method for its losses (:mod:`nerfseg.ssl.methods`), steps the
optimiser and the EMA teacher (:mod:`nerfseg.engine.step`). The loop does not branch on the method.

Layout of a run folder::

    RUN_DIR/config.yaml              resolved config (reload with `nerfseg train RUN_DIR/config.yaml`)
    RUN_DIR/metrics.jsonl            one JSON line per log step / validation
    RUN_DIR/tensorboard/             TensorBoard events
    RUN_DIR/checkpoints/last.pt      training checkpoint (:mod:`nerfseg.engine.run_state`)
    RUN_DIR/checkpoints/step_XXXXXXX.pt   copies, with train.keep_step_checkpoints
    RUN_DIR/model.pt                 inference export at the end of the run (segmentor only)
    RUN_DIR/skipped.jsonl            unreadable scans trained past, with data.on_bad_scan: skip
    RUN_DIR/.lock                    flock'ed by the one process training in the folder (holds its pid)

Exact resume: the checkpoint after step s holds the state after s optimiser steps, every RNG the loop
draws from, and s itself; both data streams are pure functions of (seed, step) and augmentation of
(seed, epoch, index). On the CPU with ``train.deterministic`` a run killed and resumed ends with
bit-identical weights, teacher and optimiser. An unreadable scan (``data.on_bad_scan: skip``) is replaced
by a scan drawn from (seed, step) alone, so skipping keeps that property. Resuming a run that already
reached ``train.max_steps`` and wrote ``model.pt`` changes nothing and reports it finished. Ctrl-C stops at
once (the loader workers are killed, not waited for) and leaves the last checkpoint to resume from; a step
cut short is not checkpointed, because its state may be half-updated.

Under ``torchrun`` (:mod:`nerfseg.engine.distributed`) every process runs this loop on its slice of each
global batch; rank 0 alone holds the run folder's lock and writes the folder (logs, ``skipped.jsonl``,
checkpoints, ``model.pt``). The unreadable scans every process meets are gathered to rank 0 each step, so
``skipped.jsonl`` lists them as a one-process run would.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nerfseg.config import Config, config_to_yaml
from nerfseg.data.bad_scans import BadScanPolicy
from nerfseg.data.datasets import DatasetKind
from nerfseg.data.loader import LoadFailure, close_batches, labeled_subset, next_batch
from nerfseg.engine import checkpoint as ckpt
from nerfseg.engine import distributed as ddp
from nerfseg.engine.build import (  # noqa: F401 - re-exported for callers of nerfseg.engine.train
    autocast,
    build_model,
    build_optimizer,
    open_split,
    resolve_device,
    voxel_feature_dim,
)
from nerfseg.engine.interrupt import TrainingInterrupted, quiet_second_interrupts, report
from nerfseg.engine.logging import RunLogger, read_metrics
from nerfseg.engine.losses import SegmentationLoss
from nerfseg.engine.run_lock import RunLock
from nerfseg.engine.run_state import RunState, check_resume_config
from nerfseg.engine.skipped import SkipLog
from nerfseg.engine.step import train_step
from nerfseg.engine.streams import CameraInputs, UnlabeledDataset, labeled_stream, unlabeled_stream
from nerfseg.engine.validation import predict_batch, validate  # noqa: F401 - re-exported
from nerfseg.errors import ConfigError, DataError
from nerfseg.io_utils import atomic_write_text
from nerfseg.ssl.recipe import recipe_for

LAST = "last.pt"
APPEARANCE_SEED = 0xA9E
"""Seed offset (from ``train.seed``) of the appearance net's initial weights and training draws."""


@dataclass
class TrainResult:
    """What a finished run reports: the final step, the last training losses and validation scores.
    ``already_finished``: a resume found the run at ``train.max_steps`` and changed nothing (``train`` and
    ``val_miou`` then come from its ``metrics.jsonl``)."""

    step: int
    train: dict[str, float]
    val_miou: float | None
    seconds: float
    run_dir: Path
    already_finished: bool = False


def labeled_indices(cfg: Config, source) -> np.ndarray:
    """Sorted positions of the labeled training scans: those of ``data.labeled_split`` when given, else the
    seeded ``data.label_fraction`` subset."""
    if cfg.data.labeled_split:
        from nerfseg.data.splits import labeled_positions

        return labeled_positions(list(source.sample_ids), cfg.data.labeled_split)
    return labeled_subset(len(source), cfg.data.label_fraction, cfg.data.label_seed)


def train(cfg: Config, run_dir: str | Path, resume: bool = False) -> TrainResult:
    """Train with ``cfg.method`` for ``train.max_steps`` steps.

    Args:
        cfg: the resolved config.
        run_dir: the run folder (created).
        resume: continue from ``RUN_DIR/checkpoints/last.pt`` (its stored config must match ``cfg`` except
            for harmless keys such as ``data.root`` or ``data.num_workers``).

    Returns:
        TrainResult. Raises DataError / ConfigError for unusable data or configs, RunFolderLocked when
        another process trains in ``run_dir`` (the folder is locked for the whole run; under torchrun by
        rank 0, after joining the process group, and every rank raises it), and
        :class:`TrainingInterrupted` (a KeyboardInterrupt) after a Ctrl-C in the loop, once the loader
        workers are stopped and the stopping point is printed on stderr.
    """
    device = resolve_device(cfg.train.device)
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    on_main_thread = threading.current_thread() is threading.main_thread()
    sigint = signal.getsignal(signal.SIGINT) if on_main_thread else None
    try:
        if cfg.train.num_threads > 0:
            torch.set_num_threads(cfg.train.num_threads)
        if cfg.train.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
        ctx = ddp.setup_distributed(device, cfg.data.batch_size)  # torchrun: one process per device
        try:
            with ddp.run_lock(ctx, run_dir) as lock:  # rank 0 locks the folder, the others hold no lock
                result = _train(cfg, Path(run_dir), resume, ctx.device, lock, ctx)
            # every rank done before the group is destroyed: a gloo peer that sees another's connection
            # close while it still reads aborts the process ("terminate called without an active exception")
            ctx.barrier()
            return result
        finally:
            ctx.close()
    finally:  # leave the process's global torch settings and SIGINT handler as they were (tests, notebooks)
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        if on_main_thread:
            signal.signal(signal.SIGINT, sigint)


def build_state(cfg: Config, num_classes: int, device: torch.device, sync_bn: bool = False) -> RunState:
    """Student, head, teacher, optimiser and step generator of a fresh run (weights from ``train.seed``);
    ``sync_bn``: batch norms synchronised over the processes of a distributed run."""
    from nerfseg.engine.teacher import MeanTeacher

    torch.manual_seed(cfg.train.seed)
    recipe = recipe_for(cfg.method)
    model, head = build_model(cfg, num_classes)
    if sync_bn:
        from nerfseg.sparse.sync_batch_norm import convert_sync_batch_norm

        model = convert_sync_batch_norm(model)
        head = None if head is None else convert_sync_batch_norm(head)
    model.to(device)
    params = list(model.parameters())
    students: dict[str, torch.nn.Module] = {"model": model}
    if head is not None:
        head.to(device)
        params += list(head.parameters())
        students["head"] = head
    teacher = MeanTeacher(students, cfg.ssl.teacher) if recipe.uses_teacher else None
    optimizer, scheduler = build_optimizer(cfg, params)
    generator = torch.Generator(device=device).manual_seed(cfg.train.seed + 1)
    appearance = None
    if recipe.camera and cfg.ssl.camera.appearance.enabled:  # untrained here: _train trains or restores it
        from nerfseg.ssl.appearance import new_appearance_net

        seed = cfg.train.seed + APPEARANCE_SEED
        appearance = new_appearance_net(num_classes, cfg.ssl.camera.appearance, seed, device)
    return RunState(model, head, teacher, optimizer, scheduler, generator, appearance)


def _train_appearance(cfg: Config, state: RunState, train_source, labeled, device, ctx) -> None:
    """Train the run's appearance net on the labeled scans' camera views, before the first step (rank 0's
    weights on every process)."""
    from nerfseg.ssl.appearance import labeled_views, train_appearance_net

    started = time.perf_counter()
    appearance_cfg = cfg.ssl.camera.appearance
    seed = cfg.train.seed + APPEARANCE_SEED
    views = labeled_views(train_source, labeled, appearance_cfg.max_views, seed)
    losses = train_appearance_net(state.appearance, views, appearance_cfg, seed, device)
    ddp.broadcast_module(ctx, state.appearance)
    if ctx.is_main and losses:
        print(f"appearance net: {len(views)} labeled views, {appearance_cfg.steps} steps, loss "
              f"{losses[0]:.3f} -> {sum(losses[-20:]) / len(losses[-20:]):.3f}, "
              f"{time.perf_counter() - started:.0f} s", flush=True)


def camera_inputs(cfg: Config) -> CameraInputs | None:
    """What the unlabeled loader reads per camera for ``cfg.method`` (None: no camera input)."""
    recipe = recipe_for(cfg.method)
    if not recipe.uses_masks:
        return None
    return CameraInputs(
        cameras_per_scan=cfg.ssl.camera.cameras_per_scan,
        masks=cfg.masks,
        dataset_root=cfg.data.root,
        label_map=DatasetKind(cfg.data.dataset).label_map,
        images=recipe.camera and cfg.ssl.camera.appearance.enabled,
    )


def _streams(cfg: Config, train_source, labeled, step: int, shard=None, pin_memory: bool = False):
    """The labeled stream and the unlabeled one (None when the method uses none); ``shard``: this process's
    slice of every global batch; ``pin_memory``: batches arrive in page-locked memory (training on CUDA), so
    their ``.to(device)`` copies are asynchronous."""
    recipe = recipe_for(cfg.method)
    labels_stream = labeled_stream(
        train_source, labeled, cfg.augment, cfg.data.batch_size, cfg.train.seed, step, cfg.data.num_workers,
        cfg.data.on_bad_scan, shard=shard, pin_memory=pin_memory,
    )
    if not recipe.uses_unlabeled:
        return labels_stream, None, 0
    unlabeled = np.setdiff1d(np.arange(len(train_source), dtype=np.int64), labeled)
    if unlabeled.size == 0 and not recipe.uses_teacher:  # geometry alone: the labeled scans suffice
        return labels_stream, None, 0
    if unlabeled.size == 0:
        raise ConfigError(
            f"method '{cfg.method.value}' needs unlabeled scans, but all {len(train_source)} training scans "
            "are labeled (lower data.label_fraction or give data.labeled_split)"
        )
    dataset = UnlabeledDataset(
        train_source, unlabeled, cfg.augment, cfg.train.seed, camera_inputs(cfg), cfg.data.on_bad_scan
    )
    stream = unlabeled_stream(
        dataset, cfg.data.batch_size, cfg.train.seed, step, cfg.data.num_workers, shard=shard,
        pin_memory=pin_memory,
    )
    return labels_stream, stream, int(unlabeled.size)


def _window_mean(window: list[dict[str, float]]) -> dict[str, float]:
    keys = sorted({k for m in window for k in m})
    return {k: float(np.mean([m[k] for m in window if k in m])) for k in keys}


def finished_result(run_dir: Path, step: int) -> TrainResult:
    """The report of a run found finished at ``step``: its last ``train/*`` line and its last validation
    mIoU (of the weights ``model.pt`` exports) from ``metrics.jsonl``."""
    records = read_metrics(run_dir / "metrics.jsonl")
    train_line = next((r for r in reversed(records) if "train/loss" in r), {})
    last = {k.split("/", 1)[1]: v for k, v in train_line.items() if k.startswith("train/")}
    key = "val_teacher/miou" if ckpt.DEFAULT_EXPORT_WEIGHTS in ("auto", "teacher") else "val/miou"
    val = next((r[k] for r in reversed(records) for k in (key, "val/miou") if k in r), None)
    return TrainResult(step, last, None if val is None else float(val), 0.0, run_dir, already_finished=True)


def _drop_final_validation(path: Path, step: int) -> None:
    """Remove the validation lines of ``step`` from a metrics.jsonl: a run stopped during its final
    validation (checkpoint at ``train.max_steps``, no ``model.pt``) validates again when resumed."""
    import json

    records = read_metrics(path)
    kept = [r for r in records if not (r.get("step") == step and any(k.startswith("val") for k in r))]
    if len(kept) != len(records):
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))


def _train(
    cfg: Config, run_dir: Path, resume: bool, device: torch.device, lock: RunLock | ddp.NoLock,
    ctx: ddp.DistContext | None = None,
) -> TrainResult:
    from tqdm import tqdm

    started = time.perf_counter()
    ctx = ctx or ddp.DistContext(device=device)
    ckpt_dir = run_dir / "checkpoints"
    last_path = ckpt_dir / LAST
    stored = None
    if resume:
        stored = ckpt.load_checkpoint(last_path, map_location=device)
        if stored["kind"] != ckpt.TRAIN_KIND:
            raise DataError(last_path, "not a training checkpoint (cannot resume from an inference export)")
        check_resume_config(stored["config"], cfg, run_dir)
        finished = int(stored["step"]) >= cfg.train.max_steps and (run_dir / "model.pt").is_file()
        # every rank returns, or none does (rank 0's view of the folder decides), before any other collective
        if ddp.broadcast_flag(ctx, finished):
            return finished_result(run_dir, int(stored["step"]))  # nothing to do: change no file
        # (at max_steps without model.pt, the run was stopped in its final validation: that is redone)
    lock.write_pid()
    label_map = DatasetKind(cfg.data.dataset).label_map
    class_names = list(label_map.class_names)
    recipe = recipe_for(cfg.method)
    train_source = open_split(cfg, cfg.data.train_split)
    labeled = labeled_indices(cfg, train_source)
    val_source = open_split(cfg, cfg.data.val_split) if cfg.data.val_split else None

    state = build_state(cfg, label_map.num_classes, device, sync_bn=ctx.distributed)
    if state.appearance is not None and stored is None:
        _train_appearance(cfg, state, train_source, labeled, device, ctx)
    loss_fn = SegmentationLoss(cfg.loss)
    if ctx.distributed:  # CE + Lovász over the whole global batch, not a mean of per-process means
        loss_fn = ddp.GlobalBatchLoss(loss_fn)
    step = 0
    if stored is not None:
        step = state.restore(stored, last_path)
        note = ddp.resume_note(ctx, int(stored.get("world_size", 1)), cfg.data.batch_size, step)
        if note and ctx.is_main:
            print(note, flush=True)
        del stored
    elif ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    if ctx.is_main:
        atomic_write_text(run_dir / "config.yaml", config_to_yaml(cfg))
        if resume and step >= cfg.train.max_steps:
            _drop_final_validation(run_dir / "metrics.jsonl", step)
    saved_step = step if resume else None
    step_module = ddp.wrap_student(ctx, state.model, state.head, find_unused_parameters=recipe.uses_head)

    def save(step_now: int) -> None:
        nonlocal saved_step
        if ctx.distributed:  # student, head and teacher must be the same on every process
            replicas = {"model": state.model, "head": state.head, "teacher": state.teacher}
            agree = ddp.replicas_agree(ctx, replicas)
            logger.log(step_now, {"processes": ctx.world_size, "replicas_agree": float(agree)}, prefix="dist")
        if not ctx.is_main:  # rank 0 alone writes
            saved_step = step_now
            return
        payload = state.payload(step_now, cfg, class_names)
        payload["world_size"] = ctx.world_size
        ckpt.save_checkpoint(last_path, payload)
        if cfg.train.keep_step_checkpoints:
            ckpt.save_checkpoint(ckpt_dir / f"step_{step_now:07d}.pt", payload)
        saved_step = step_now

    def run_validation(step_now: int) -> float | None:
        """Validate the student (``val/``) and, with a teacher, the teacher too (``val_teacher/``); returns
        the mIoU of the weights ``model.pt`` exports."""
        if val_source is None or not ctx.is_main:
            return None
        scores = validate(state.model, val_source, cfg, device, progress=cfg.train.progress)
        logger.log(step_now, {"miou": scores.miou, "accuracy": scores.accuracy}, prefix="val")
        logger.log(
            step_now, dict(zip(scores.class_names, scores.per_class_iou.tolist(), strict=True)), "val_iou"
        )
        if state.teacher is None:
            return float(scores.miou)
        teacher = validate(state.teacher["model"], val_source, cfg, device, progress=cfg.train.progress)
        logger.log(step_now, {"miou": teacher.miou, "accuracy": teacher.accuracy}, prefix="val_teacher")
        exports_teacher = ckpt.DEFAULT_EXPORT_WEIGHTS in ("auto", "teacher")  # model.pt holds the teacher
        return float(teacher.miou if exports_teacher else scores.miou)

    skips = SkipLog(run_dir, resume_step=step if resume else None) if ctx.is_main else None
    skip_policy = cfg.data.on_bad_scan is BadScanPolicy.SKIP

    def draw(batches, stream_name: str, found: list[tuple[str, LoadFailure]]):
        """The next batch of a stream; its unreadable scans appended to ``found`` (skip) or the first one
        raised (error)."""
        try:
            return next_batch(batches, lambda failures: found.extend((stream_name, f) for f in failures))
        except DataError as err:
            if skip_policy:
                raise
            raise DataError(
                err.path, f"{err.problem} (data.on_bad_scan: error; --set data.on_bad_scan=skip trains on "
                "past unreadable scans)"
            ) from None

    def draw_step():
        """The step's labeled and unlabeled batches (or None); the unreadable scans of every process are
        named by rank 0 (the labeled stream's first, each in global batch order), and a DataError of any
        process is raised by every process (so none waits for the others in a collective)."""
        found: list[tuple[str, LoadFailure]] = []
        batch = unlabeled = error = None
        try:
            batch = draw(labeled_batches, "labeled", found)
            unlabeled = draw(unlabeled_batches, "unlabeled", found) if unlabeled_batches is not None else None
        except DataError as err:
            if not ctx.distributed:
                if skips is not None:
                    _record_skips(skips, step + 1, found)
                raise
            error = (err, "unlabeled" if batch is not None else "labeled")
        found, first_error = ddp.share_draw_outcome(ctx, found, error)
        if skips is not None:
            _record_skips(skips, step + 1, found)
        if first_error is not None:
            raise first_error
        return batch, unlabeled

    labeled_batches = unlabeled_batches = None
    logger = None
    last: dict[str, float] = {}
    val_miou = None
    window: list[dict[str, float]] = []
    try:
        labeled_batches, unlabeled_batches, num_unlabeled = _streams(
            cfg, train_source, labeled, step, ctx.shard, pin_memory=device.type == "cuda"
        )
        logger = RunLogger(run_dir, resume_step=step if resume else None) if ctx.is_main else ddp.NullLogger()
        if not resume:
            logger.log(
                0,
                {
                    "train_scans": len(train_source),
                    "labeled_scans": len(labeled),
                    "unlabeled_scans": num_unlabeled,
                },
                prefix="data",
            )
        state.model.train()
        if state.head is not None:
            state.head.train()
        tick = time.perf_counter()
        bar = tqdm(total=cfg.train.max_steps, initial=step, desc="train",
                   disable=not (cfg.train.progress and ctx.is_main))
        while step < cfg.train.max_steps:
            batch, unlabeled = draw_step()
            lr = state.scheduler.get_last_lr()[0]
            ddp.reseed_step(ctx, state.generator, cfg.train.seed, step + 1)
            metrics = train_step(
                recipe, state, loss_fn, cfg, batch, unlabeled, device, label_map.num_classes, step + 1,
                step_module,
            )
            metrics["points"] = float(batch.points.shape[0])
            metrics = ddp.reduce_metrics(ctx, metrics)
            step += 1
            window.append(metrics)
            bar.update(1)
            bar.set_postfix(loss=f"{metrics['loss']:.3f}", lr=f"{lr:.2e}")
            if step % cfg.train.log_every == 0 or step == cfg.train.max_steps:
                now = time.perf_counter()
                last = _window_mean(window)
                last["lr"] = lr
                last["sec_per_step"] = (now - tick) / len(window)
                logger.log(step, last, prefix="train")
                window, tick = [], now
            if cfg.train.val_every and step % cfg.train.val_every == 0 and step < cfg.train.max_steps:
                val_miou = run_validation(step)
                ctx.barrier()
            if step % cfg.train.checkpoint_every == 0 or step == cfg.train.max_steps:
                save(step)
        bar.close()
        close_batches(labeled_batches)  # the streams are endless: stop their workers before validating
        close_batches(unlabeled_batches)
        val_miou = run_validation(step)
        if ctx.is_main:
            final = ckpt.load_checkpoint(last_path)
            weights = ckpt.resolve_export_weights(final, ckpt.DEFAULT_EXPORT_WEIGHTS, last_path)
            ckpt.save_checkpoint(run_dir / "model.pt", ckpt.inference_payload(final, weights, last_path))
        ctx.barrier()
    except KeyboardInterrupt:
        quiet_second_interrupts()
        close_batches(labeled_batches)
        close_batches(unlabeled_batches)
        if ctx.is_main:  # one line for the run, not one per process
            _report_interrupt(run_dir, step, saved_step)
        raise TrainingInterrupted() from None
    finally:
        if skips is not None:
            skips.close()
        if logger is not None:
            logger.close()
    return TrainResult(step, last, val_miou, time.perf_counter() - started, run_dir)


def _record_skips(skips: SkipLog, step: int, found: list[tuple[str, LoadFailure]]) -> None:
    """Name the unreadable scans of a step, the labeled stream's before the unlabeled one's."""
    for stream_name in ("labeled", "unlabeled"):
        failures = [f for name, f in found if name == stream_name]
        if failures:
            skips.record(step, failures, stream_name)


def _report_interrupt(run_dir: Path, step: int, saved_step: int | None) -> None:
    """One line on stderr: where the run stopped and how it continues."""
    if saved_step is None:
        where = "no checkpoint was written yet: train again with the same --out to start over"
    else:
        where = (
            f"checkpoint of step {saved_step} kept in {run_dir / 'checkpoints' / LAST}; "
            f"`nerfseg train --resume {run_dir}` continues from it exactly"
        )
    report(f"stopped by Ctrl-C after {step} training steps; {where}")
