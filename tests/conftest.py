"""Shared test fixtures. The real sensor samples live in ../shared/data/real beside the repository."""

from __future__ import annotations

import os
from pathlib import Path

# torch's OpenMP threads spin-wait by default; on 2 shared cores that slows small ops 10-100x.
# Must be set before torch is first imported (test modules import it after this file).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = REPO_ROOT.parent / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def real_data() -> Path:
    """Folder of the real SemanticKITTI / nuScenes / KITTI samples (read-only)."""
    if not REAL_DATA.is_dir():
        pytest.fail(f"real samples not found at {REAL_DATA}: ../shared must lie beside the repository")
    return REAL_DATA


@pytest.fixture(autouse=True, scope="session")
def _few_threads():
    """Keep torch to the machine's 2 cores and make runs repeatable."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.set_num_threads(2)


@pytest.fixture
def one_thread():
    """Run a test made of many small tensor ops on one torch thread (restored afterwards): on a busy shared
    CPU, OpenMP threads spin-waiting for each other make such tests 10-100x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
