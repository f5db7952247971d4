"""Fixtures of the NeRF head tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def one_thread():
    """Run a test made of many small tensor ops on one torch thread (restored afterwards): on a busy shared
    CPU, OpenMP threads spin-waiting for each other make such tests several times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
