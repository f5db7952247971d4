"""Sparse tests run on one torch thread: their tensors are tiny, and on a shared 2-core machine a second
OpenMP thread only adds barrier waits (measured 10-100x slower under load)."""

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield
