"""The documented noise model that stands in for a teacher's rendered distribution."""

import numpy as np
import pytest
from PIL import Image

from nerfseg.data.sample import IGNORE_INDEX
from nerfseg.errors import DataError
from nerfseg.masks.noisy_teacher import (
    TeacherNoiseConfig,
    confuser_classes,
    noisy_teacher_probs,
    read_raw_semantic_png,
)

GT = np.array([[0, 0, 1, 1], [0, 2, 2, IGNORE_INDEX], [3, 3, 3, IGNORE_INDEX]])


def test_noise_free_is_the_ground_truth():
    cfg = TeacherNoiseConfig(blur_sigma=0, confusion=0, pixel_noise=0, field_noise=0)
    p = noisy_teacher_probs(GT, 4, cfg, np.random.default_rng(0))
    labeled = GT != IGNORE_INDEX
    assert p.shape == (3, 4, 4) and p.dtype == np.float32
    assert np.array_equal(p.argmax(-1)[labeled], GT[labeled])
    # softmax(log(onehot + floor)): the true class gets (1 + f) / (1 + C f)
    assert np.allclose(p.max(-1)[labeled], 1.01 / 1.04, atol=1e-6)
    assert (p[~labeled] == 0).all()


def test_confusion_beyond_half_flips_every_class_to_its_confuser():
    cfg = TeacherNoiseConfig(blur_sigma=0, confusion=0.7, pixel_noise=0, field_noise=0)
    p = noisy_teacher_probs(GT, 4, cfg, np.random.default_rng(1))
    confuser = confuser_classes(4, np.random.default_rng(1))
    labeled = GT != IGNORE_INDEX
    assert (confuser != np.arange(4)).all()
    assert np.array_equal(p.argmax(-1)[labeled], confuser[GT[labeled]])


def test_noise_is_seeded_and_rows_are_distributions():
    rng_gt = np.random.default_rng(2)
    gt = rng_gt.integers(0, 5, (40, 50))
    gt[:5] = IGNORE_INDEX
    a = noisy_teacher_probs(gt, 5, TeacherNoiseConfig(), np.random.default_rng(7))
    b = noisy_teacher_probs(gt, 5, TeacherNoiseConfig(), np.random.default_rng(7))
    assert np.array_equal(a, b)
    assert np.allclose(a[5:].sum(-1), 1.0, atol=1e-5) and (a[:5] == 0).all()
    acc = (a.argmax(-1) == gt)[5:].mean()
    assert 0.2 < acc < 0.95  # noisy but informative


def test_read_raw_semantic_png(tmp_path):
    raw = np.array([[0, 10, 252], [40, 48, 70]], dtype=np.uint16)
    path = tmp_path / "000000.png"
    Image.fromarray(raw).save(path)
    assert np.array_equal(read_raw_semantic_png(path), raw)
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(DataError, match="rgb.png.*single-channel"):
        read_raw_semantic_png(tmp_path / "rgb.png")
    with pytest.raises(DataError, match="missing.png"):
        read_raw_semantic_png(tmp_path / "missing.png")


def test_stand_in_opacity_is_transparent_exactly_where_no_class():
    from nerfseg.masks.noisy_teacher import noisy_teacher_opacity

    labels = np.array([[0, IGNORE_INDEX], [5, 18]])
    opacity = noisy_teacher_opacity(labels)
    assert opacity.dtype == np.float32 and opacity.tolist() == [[1.0, 0.0], [1.0, 1.0]]
