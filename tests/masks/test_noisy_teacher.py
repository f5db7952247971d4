"""The documented noise model that stands in for a teacher's rendered distribution."""

import numpy as np

from nerfseg.data.sample import IGNORE_INDEX
from nerfseg.masks.noisy_teacher import (
    TeacherNoiseConfig,
    confuser_classes,
    noisy_teacher_probs,
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
