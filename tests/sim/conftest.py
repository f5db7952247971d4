"""Tiny simulated datasets shared by the simulator tests (built once per session)."""

from __future__ import annotations

import dataclasses

import pytest

from nerfseg.sim.config import CameraConfig, LidarConfig, NuScenesConfig, SimConfig


def tiny_config(**overrides) -> SimConfig:
    """A small but complete config: 16 beams x 256 firings, a 1/4-size camera, 2 frames."""
    config = SimConfig(
        frames=2,
        lidar=LidarConfig(beams=16, azimuth_steps=256, dynamic_time_slices=8),
        camera=CameraConfig(image_scale=0.25),
        nuscenes=NuScenesConfig(beams=16, azimuth_steps=256, image_scale=0.1),
    )
    return dataclasses.replace(config, **overrides)


@pytest.fixture(scope="session")
def kitti_root(tmp_path_factory):
    """SemanticKITTI-layout simulation: sequences 00 (train) and 08 (val), 2 frames each."""
    from nerfseg.sim.simulate import OutputFormat, simulate

    root = tmp_path_factory.mktemp("sim_kitti")
    simulate(root, tiny_config(), OutputFormat.SEMANTICKITTI, ["00", "08"], show_progress=False)
    return root


@pytest.fixture(scope="session")
def nuscenes_root(tmp_path_factory):
    """nuScenes-layout simulation: scene-0061 (mini_train) and scene-0103 (mini_val), 2 key frames each."""
    from nerfseg.sim.simulate import OutputFormat, simulate

    root = tmp_path_factory.mktemp("sim_nuscenes")
    simulate(root, tiny_config(), OutputFormat.NUSCENES, 2, show_progress=False)
    return root
