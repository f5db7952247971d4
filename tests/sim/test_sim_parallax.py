"""Parallax measurement: hand-built projections, and the simulator with and without mount / time offsets."""

from __future__ import annotations

import numpy as np
import pytest
from sim_testing import tiny_config

from nerfseg.sim.parallax import ParallaxCount, parallax_count


def test_parallax_count_by_hand():
    K = np.array([[10.0, 0, 2.0], [0, 10.0, 1.0], [0, 0, 1]])  # 4 x 2 image
    gt = np.array([[40, 40, 50, 50], [40, 40, 50, 50]])
    # Camera = LiDAR frame (OpenCV axes): u = 10 x / z + 2, v = 10 y / z + 1.
    pts = np.array(
        [
            [-0.15, 0.0, 1.0],  # u = 0.5 -> column 0: road, point road -> ok
            [0.05, 0.0, 1.0],  # u = 2.5 -> column 2: building, point road -> wrong
            [0.15, -0.05, 1.0],  # u = 3.5, v = 0.5 -> building, point building -> ok
            [0.0, 0.0, -1.0],  # behind the camera: not visible
            [5.0, 0.0, 1.0],  # outside the image
            [0.05, 0.0, 1.0],  # unlabeled point (raw 0): skipped
        ]
    )
    raw = np.array([40, 40, 50, 40, 40, 0])
    count = parallax_count(pts, raw, np.eye(4), K, gt)
    assert (count.visible, count.mismatched) == (3, 1)
    assert count.per_class == {40: [2, 1], 50: [1, 0]}
    assert count.fraction == pytest.approx(1 / 3)
    total = ParallaxCount()
    total.add(count)
    total.add(count)
    assert (total.visible, total.mismatched, total.per_class[40]) == (6, 2, [4, 2])


@pytest.mark.slow
def test_no_parallax_is_small_and_default_is_larger(tmp_path):
    """Same seed, same scene: camera at the LiDAR origin at the sweep time -> only discretisation
    (< 3%); KITTI mount + 50 ms camera delay -> clearly more."""
    import dataclasses

    from nerfseg.sim.config import CameraConfig, LidarConfig
    from nerfseg.sim.parallax import measure_semantickitti
    from nerfseg.sim.simulate import OutputFormat, simulate

    base = tiny_config(
        frames=2, lidar=LidarConfig(beams=32, azimuth_steps=512), camera=CameraConfig(image_scale=0.5)
    )
    fractions = {}
    for no_parallax in (True, False):
        root = tmp_path / str(no_parallax)
        simulate(
            root,
            dataclasses.replace(base, no_parallax=no_parallax),
            OutputFormat.SEMANTICKITTI,
            ["00"],
            False,
        )
        count = measure_semantickitti(root, progress=False)
        assert count.visible > 2000
        fractions[no_parallax] = count.fraction
    assert fractions[True] < 0.03
    assert fractions[False] > 2 * fractions[True] and fractions[False] > 0.03
