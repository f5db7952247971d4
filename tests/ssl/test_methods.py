"""Every method trains through the one loop on a simulated dataset with cameras and cached masks, and no label
of an unlabeled scan reaches any loss."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from nerfseg.config import load_config
from nerfseg.data.datasets import DatasetKind
from nerfseg.data.loader import ResumableBatchSampler
from nerfseg.data.sample import IGNORE_INDEX
from nerfseg.engine.build import open_split
from nerfseg.engine.checkpoint import load_checkpoint
from nerfseg.engine.logging import read_metrics
from nerfseg.engine.losses import SegmentationLoss
from nerfseg.engine.step import train_step
from nerfseg.engine.streams import UnlabeledDataset, collate_unlabeled
from nerfseg.engine.train import build_state, camera_inputs, labeled_indices, train
from nerfseg.ssl.config import Method
from nerfseg.ssl.recipe import recipe_for
from train_testing import SMALL_HEAD_OVERRIDES, TINY_SEGMENTOR_OVERRIDES

EXPECTED_TERMS = {
    Method.SUPERVISED: {"supervised"},
    Method.MEAN_TEACHER: {"supervised", "consistency"},
    Method.LASERMIX: {"supervised", "consistency", "lasermix"},
    Method.PROJECTION: {"supervised", "projection"},
    Method.NERF: {"supervised", "render", "geometry_labeled", "geometry_unlabeled"},
    Method.NERF_MEAN_TEACHER: {
        "supervised", "render", "consistency", "geometry_labeled", "geometry_unlabeled"
    },
    Method.NERF_LASERMIX: {
        "supervised", "render", "consistency", "lasermix", "geometry_labeled", "geometry_unlabeled"
    },
    Method.GEOMETRY: {"supervised", "geometry_labeled", "geometry_unlabeled"},
}
ALL_TERMS = set().union(*EXPECTED_TERMS.values())


def _cfg(root, method: Method, steps: int = 2, extra: tuple[str, ...] = ()):
    return load_config(
        None,
        [
            f"method={method.value}",
            f"data.root={root}",
            "data.label_fraction=0.5",
            "data.batch_size=1",
            "data.num_workers=0",
            "data.val_max_scans=1",
            f"train.max_steps={steps}",
            "train.log_every=1",
            "train.checkpoint_every=100",
            "train.progress=false",
            "train.num_threads=1",
            "train.lr=0.001",
            *TINY_SEGMENTOR_OVERRIDES,
            *SMALL_HEAD_OVERRIDES,
            *extra,
        ],
    )


@pytest.mark.parametrize("method", list(Method), ids=lambda m: m.value)
def test_every_method_trains_and_logs_its_own_losses(sim_ssl_root, tmp_path, method):
    result = train(_cfg(sim_ssl_root, method), tmp_path / "run")
    assert result.step == 2 and result.val_miou is not None
    records = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "train/loss" in r]
    assert len(records) == 2
    terms = {k.removeprefix("train/") for k in records[-1]} & ALL_TERMS
    assert terms == EXPECTED_TERMS[method]
    for record in records:
        assert np.isfinite(record["train/loss"])
        parts = sum(record[f"train/{t}"] for t in terms)
        assert record["train/loss"] == pytest.approx(parts, rel=1e-5)
    if recipe_for(method).camera:
        assert records[-1]["train/render_rays"] > 0
        assert 0.0 <= records[-1]["train/render_pseudo_accuracy"] <= 1.0  # scored against semantic_2/
    exported = load_checkpoint(tmp_path / "run" / "model.pt")
    assert "nerf_head" not in exported and "teacher" not in exported
    if recipe_for(method).uses_teacher:
        assert 0.0 < records[-1]["train/ema_decay"] < 1.0
        val = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "val_teacher/miou" in r]
        assert val and 0.0 <= val[-1]["val_teacher/miou"] <= 1.0
    assert exported["weights"] == "student"  # the measured default (checkpoint.DEFAULT_EXPORT_WEIGHTS)
    student = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["model"]
    assert all(torch.equal(exported["model"][k], v) for k, v in student.items())


class _RelabeledSource:
    """The training reader with every scan's labels replaced (``mode``: "shuffle" permutes the classes of
    the points at random, "none" removes them)."""

    def __init__(self, source, mode: str):
        self.source, self.mode = source, mode
        self.sample_ids = source.sample_ids

    def __len__(self):
        return len(self.source)

    def __getitem__(self, index):
        sample = self.source[index]
        if self.mode == "none":
            return replace(sample, labels=None)
        rng = np.random.default_rng(1000 + index)
        return replace(sample, labels=rng.integers(0, 19, sample.labels.shape[0]).astype(np.int64))


def _one_step(cfg, unlabeled_source=None):
    """Losses and weights after one step from fixed initial weights on fixed batches (the unlabeled scans
    read from ``unlabeled_source``, by default the training split itself)."""
    label_map = DatasetKind(cfg.data.dataset).label_map
    source = open_split(cfg, "train")
    unlabeled_source = source if unlabeled_source is None else unlabeled_source
    labeled = labeled_indices(cfg, source)
    unlabeled = np.setdiff1d(np.arange(len(source)), labeled)
    state = build_state(cfg, label_map.num_classes, torch.device("cpu"))
    dataset = UnlabeledDataset(unlabeled_source, unlabeled, cfg.augment, cfg.train.seed, camera_inputs(cfg))
    items = next(iter(ResumableBatchSampler(len(dataset), 1, 0)))
    unlabeled_batch = collate_unlabeled([dataset[i] for i in items])
    from nerfseg.data.collate import collate_samples

    labeled_batch = collate_samples([source[int(labeled[0])]])
    metrics = train_step(recipe_for(cfg.method), state, SegmentationLoss(cfg.loss), cfg, labeled_batch,
                         unlabeled_batch, torch.device("cpu"), label_map.num_classes, 1)
    weights = {k: v.clone() for k, v in state.model.state_dict().items()}
    return metrics, weights, unlabeled_batch


@pytest.mark.parametrize("method", [m for m in Method if recipe_for(m).uses_unlabeled], ids=lambda m: m.value)
def test_no_label_of_an_unlabeled_scan_reaches_a_loss(sim_ssl_root, method, one_thread):
    cfg = _cfg(sim_ssl_root, method)
    source = open_split(cfg, "train")
    reference, ref_weights, batch = _one_step(cfg, source)
    assert batch.student.labels is None and batch.teacher.labels is None
    assert all(s.labels is None for s in batch.student.samples + batch.teacher.samples)
    assert batch.metric_labels is not None and bool((batch.metric_labels != IGNORE_INDEX).any())
    for mode in ("shuffle", "none"):
        metrics, weights, _ = _one_step(cfg, _RelabeledSource(source, mode))
        for term in EXPECTED_TERMS[method] | {"loss"}:
            assert metrics[term] == reference[term], (mode, term)
        for key, value in ref_weights.items():
            assert torch.equal(weights[key], value), (mode, key)


@pytest.mark.parametrize("workers", [0, 1])
def test_a_missing_mask_entry_is_one_clear_error_naming_the_image(sim_ssl_root, tmp_path, workers):
    from nerfseg.errors import DataError

    cfg = _cfg(sim_ssl_root, Method.NERF, extra=(f"masks.cache_dir={tmp_path / 'empty'}",
                                                 f"data.num_workers={workers}"))
    with pytest.raises(DataError, match=r"image_2/\d{6}\.png: no valid cached masks .*nerfseg masks"):
        train(cfg, tmp_path / "run")
    computed = _cfg(sim_ssl_root, Method.NERF, steps=1, extra=(f"masks.cache_dir={tmp_path / 'fill'}",
                                                               "masks.compute_missing=true"))
    assert train(computed, tmp_path / "run2").step == 1
    assert list((tmp_path / "fill").rglob("*.npz"))


@pytest.mark.parametrize(
    "agree, balanced, confidence, appearance",
    [(False, False, 0.0, False), (True, False, 0.0, False), (False, True, 0.0, False),
     (True, False, 0.5, False), (False, False, 0.0, True)],
)
def test_camera_point_route_is_its_own_term_and_reads_no_unlabeled_label(
    sim_ssl_root, agree, balanced, confidence, appearance, one_thread
):
    points = (
        "ssl.camera.points.weight=1.0", f"ssl.camera.points.agree_with_teacher={str(agree).lower()}",
        f"ssl.camera.points.class_balanced={str(balanced).lower()}",
        f"ssl.camera.points.min_teacher_confidence={confidence}",
        f"ssl.camera.appearance.enabled={str(appearance).lower()}",
    )
    cfg = _cfg(sim_ssl_root, Method.NERF, extra=points)
    source = open_split(cfg, "train")
    reference, ref_weights, _ = _one_step(cfg, source)
    assert np.isfinite(reference["camera_points"])
    assert reference["loss"] == pytest.approx(
        sum(reference[t] for t in EXPECTED_TERMS[Method.NERF] | {"camera_points"}), rel=1e-5
    )
    coverage = reference["camera_points_pseudo_coverage"]
    assert coverage < 1.0  # the camera sees only part of the scan
    assert coverage > 0.0 or agree or appearance  # an untrained teacher's two heads (or the untrained
    # appearance net) may agree nowhere
    for mode in ("shuffle", "none"):
        metrics, weights, _ = _one_step(cfg, _RelabeledSource(source, mode))
        assert metrics["camera_points"] == reference["camera_points"], mode
        for key, value in ref_weights.items():
            assert torch.equal(weights[key], value), (mode, key)


def test_teacher_filtered_labels_hand_computed():
    from nerfseg.ssl.methods import TeacherPoints, teacher_filtered_labels

    labels = torch.tensor([0, 1, 2, IGNORE_INDEX, 1])
    teacher = TeacherPoints(
        classes=torch.tensor([0, 2, 2, 1, 1]),
        confidence=torch.tensor([0.95, 0.99, 0.6, 0.99, 0.8]),
        output=None,
    )
    ignore = IGNORE_INDEX
    assert teacher_filtered_labels(labels, teacher, False, 0.0).tolist() == [0, 1, 2, ignore, 1]
    assert teacher_filtered_labels(labels, teacher, True, 0.0).tolist() == [0, ignore, 2, ignore, 1]
    assert teacher_filtered_labels(labels, teacher, False, 0.9).tolist() == [0, 1, ignore, ignore, ignore]
    assert teacher_filtered_labels(labels, teacher, True, 0.9).tolist() == [0, ignore, ignore, ignore, ignore]
    assert teacher_filtered_labels(labels, teacher, True, 0.8).tolist() == [0, ignore, ignore, ignore, 1]


def test_class_balanced_pseudo_label_ce_hand_computed():
    from nerfseg.ssl.methods import class_balanced_pseudo_label_ce, pseudo_label_ce

    logits = torch.tensor(
        [[2.0, 0.0, 0.0], [1.0, 0.5, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]]
    )
    labels = torch.tensor([0, 0, 1, IGNORE_INDEX, 0])
    ce = -torch.log_softmax(logits, dim=1)
    # labeled: 3 points of class 0, 1 of class 1; n = 4, k = 2 -> weights 4 / (2 * 3) and 4 / (2 * 1)
    expected = ((4 / 6) * (ce[0, 0] + ce[1, 0] + ce[4, 0]) + 2.0 * ce[2, 1]) / 4
    assert float(class_balanced_pseudo_label_ce(logits, labels)) == pytest.approx(float(expected), rel=1e-6)
    # one class only: the plain mean cross-entropy
    same = torch.tensor([1, 1, 1, IGNORE_INDEX, 1])
    assert float(class_balanced_pseudo_label_ce(logits, same)) == pytest.approx(
        float(pseudo_label_ce(logits, same)), rel=1e-6
    )
    none = torch.full((5,), IGNORE_INDEX)
    zero = class_balanced_pseudo_label_ce(logits.requires_grad_(), none)
    assert float(zero.detach()) == 0.0 and zero.requires_grad


def _camera_step_point_labels(cfg, state, unlabeled_batch, num_classes):
    """The point route's labels of one camera step (teacher render, fusion, appearance gate, route)."""
    from nerfseg.ssl.camera_step import camera_render_loss
    from nerfseg.ssl.methods import StepModels, teacher_points

    models = StepModels(state.model, state.head, state.teacher, state.appearance)
    with torch.no_grad():
        teacher = teacher_points(models.teacher, unlabeled_batch.teacher)
        student = models.model(unlabeled_batch.student)
        generator = torch.Generator().manual_seed(0)
        result = camera_render_loss(models, teacher, student, unlabeled_batch, cfg.ssl.camera,
                                    num_classes, generator)
    return result.point_labels, result.metrics


def test_the_appearance_gate_keeps_exactly_the_labels_its_class_agrees_with(sim_ssl_root, one_thread):
    """Composed path: loader images -> teacher render -> fusion -> appearance gate -> point route. With a net
    that says class c everywhere, the route keeps exactly the ungated route's labels of class c."""
    route = ("ssl.camera.points.weight=1.0",)
    plain = _cfg(sim_ssl_root, Method.NERF, extra=route)
    gated = _cfg(sim_ssl_root, Method.NERF, extra=(*route, "ssl.camera.appearance.enabled=true"))
    num_classes = DatasetKind(plain.data.dataset).label_map.num_classes
    source = open_split(plain, "train")
    unlabeled = np.setdiff1d(np.arange(len(source)), labeled_indices(plain, source))
    dataset = UnlabeledDataset(source, unlabeled, gated.augment, gated.train.seed, camera_inputs(gated))
    batch = collate_unlabeled([dataset[(0, 0)]])
    assert len(batch.images[0]) == len(batch.cameras[0]) >= 1  # the loader kept the chosen images
    image = batch.images[0][0]
    assert image.dtype == np.uint8 and image.ndim == 3
    base_state = build_state(plain, num_classes, torch.device("cpu"))
    assert base_state.appearance is None
    reference, _ = _camera_step_point_labels(plain, base_state, batch, num_classes)
    given = reference[reference != IGNORE_INDEX]
    assert given.numel() > 0
    c = int(torch.bincount(given).argmax())
    state = build_state(gated, num_classes, torch.device("cpu"))
    assert state.appearance is not None and not state.appearance.training
    with torch.no_grad():
        state.appearance.classify.weight.zero_()
        state.appearance.classify.bias.zero_()
        state.appearance.classify.bias[c] = 10.0
    labels, metrics = _camera_step_point_labels(gated, state, batch, num_classes)
    expected = torch.where(reference == c, reference, torch.full_like(reference, IGNORE_INDEX))
    assert torch.equal(labels, expected)
    assert 0.0 < metrics["appearance_kept"] < 1.0 or bool((given == c).all())


def test_the_teacher_veto_keeps_exactly_the_route_labels_of_the_teachers_class(sim_ssl_root, one_thread):
    """Composed path: teacher render -> fusion -> teacher veto -> point route. With a teacher point
    classifier sure of class c everywhere and the veto's surface tolerance equal to the route's, every cell
    whose surface carries a route label of another class is vetoed: the route keeps exactly the unvetoed
    route's labels of class c."""
    route = ("ssl.camera.points.weight=1.0",)
    plain = _cfg(sim_ssl_root, Method.NERF, extra=route)
    vetoed = _cfg(sim_ssl_root, Method.NERF, extra=(*route, "ssl.camera.veto.enabled=true",
                                                     "ssl.camera.veto.min_confidence=0.5",
                                                     "ssl.camera.veto.depth_tolerance=0.5"))
    assert plain.ssl.camera.points.depth_tolerance == 0.5
    num_classes = DatasetKind(plain.data.dataset).label_map.num_classes
    source = open_split(plain, "train")
    unlabeled = np.setdiff1d(np.arange(len(source)), labeled_indices(plain, source))
    dataset = UnlabeledDataset(source, unlabeled, plain.augment, plain.train.seed, camera_inputs(plain))
    batch = collate_unlabeled([dataset[(0, 0)]])
    state = build_state(plain, num_classes, torch.device("cpu"))
    reference, _ = _camera_step_point_labels(plain, state, batch, num_classes)
    given = reference[reference != IGNORE_INDEX]
    assert given.numel() > 0
    c = int(torch.bincount(given).argmax())
    assert bool((given != c).any())  # else the test shows nothing
    with torch.no_grad():
        last = state.teacher["model"].head.mlp[-1]
        last.weight.zero_()
        last.bias.zero_()
        last.bias[c] = 10.0
    labels, metrics = _camera_step_point_labels(vetoed, state, batch, num_classes)
    expected = torch.where(reference == c, reference, torch.full_like(reference, IGNORE_INDEX))
    assert torch.equal(labels, expected)
    assert 0.0 < metrics["teacher_vetoed"] < 1.0
    # below the teacher's confidence nothing is vetoed
    unsure = _cfg(sim_ssl_root, Method.NERF, extra=(*route, "ssl.camera.veto.enabled=true",
                                                     "ssl.camera.veto.min_confidence=1.0"))
    with torch.no_grad():
        last.bias[c] = 1.0
    labels, metrics = _camera_step_point_labels(unsure, state, batch, num_classes)
    assert torch.equal(labels, reference) and metrics["teacher_vetoed"] == 0.0
