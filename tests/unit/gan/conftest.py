"""Fixtures shared by the training-side tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def restore_num_threads():
    """train() sets torch's thread count for the process; put it back for other tests."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)
