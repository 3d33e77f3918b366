import pytest
import torch


@pytest.fixture(autouse=True)
def _deterministic_threads():
    # Exact-repeat checks compare runs inside one process; keep the thread count fixed.
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    yield
