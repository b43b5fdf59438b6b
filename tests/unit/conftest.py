"""Fixtures shared by the unit tests."""

import pytest
import torch


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test: same thread count -> bitwise repeatable CPU results."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
