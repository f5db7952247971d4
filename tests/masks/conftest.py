"""Fixtures of the mask tests."""

from __future__ import annotations

import pytest
import torch
from masks_testing import build_tiny_sam


@pytest.fixture
def tiny_sam_checkpoint(tmp_path):
    """(model, path): a tiny random SAM and its state dict saved with torch.save, like a real checkpoint."""
    torch.manual_seed(0)
    model = build_tiny_sam()
    path = tmp_path / "sam_tiny.pth"
    torch.save(model.state_dict(), path)
    return model, path
