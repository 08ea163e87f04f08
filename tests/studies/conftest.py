"""One intra-op thread: the embedding tests' batches are small, and on a machine shared with
other test runs OpenMP's spinning threads make them several times slower."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _single_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
