import pytest
import torch


@pytest.fixture(autouse=True)
def _deterministic_threads():
    # Exact-repeat checks compare runs inside one process; keep the thread count fixed.
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    yield


@pytest.fixture
def one_thread():
    """One torch thread for the test, the caller's count restored after it. For tiny networks:
    a second OpenMP thread gains nothing and, on a busy machine, its spin-waits make each op up
    to 30x slower; exact repeats also need a fixed thread count. A module opts in with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
