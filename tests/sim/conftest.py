"""Tiny simulated datasets shared by the simulator tests (built once per session)."""

from __future__ import annotations

import pytest
from sim_testing import tiny_config


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
