"""A tiny simulated SemanticKITTI-layout dataset with cached superpixel masks, for the method tests."""

from __future__ import annotations

import dataclasses

import pytest


@pytest.fixture(scope="session")
def sim_ssl_root(tmp_path_factory):
    """Sequences 00 (train, 4 frames) and 08 (val, 2 frames): 16 beams x 256 firings, a 1/4-size camera, with
    the superpixel masks of every train image in the default cache."""
    from nerfseg.config import Config
    from nerfseg.data.datasets import open_dataset
    from nerfseg.masks.config import open_mask_cache
    from nerfseg.sim.config import CameraConfig, LidarConfig, SimConfig
    from nerfseg.sim.simulate import OutputFormat, simulate

    root = tmp_path_factory.mktemp("sim_ssl")
    config = SimConfig(
        frames=4,
        lidar=LidarConfig(beams=16, azimuth_steps=256, dynamic_time_slices=8),
        camera=CameraConfig(image_scale=0.25),
    )
    config = dataclasses.replace(config, frame_interval_s=0.5)
    simulate(root, config, OutputFormat.SEMANTICKITTI, ["00", "08"], show_progress=False)
    cache = open_mask_cache(Config().masks, root)
    for sample in open_dataset("semantickitti", root, "train"):
        for camera in sample.cameras:
            cache.ensure(camera.load_image())
    return root
