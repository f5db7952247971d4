"""Helpers for the simulator tests (a uniquely named module, importable from any test folder)."""

from __future__ import annotations

import dataclasses

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
