"""Sparse tests run on one torch thread: their tensors are tiny, and on a shared 2-core machine a second
OpenMP thread only adds barrier waits (measured 10-100x slower under load)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
