import os
import sys

import numpy as np
import pytest

# Let `tests.reference` be imported as a package from any test module.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def threads():
    """Restore the kernel thread count after a test that changes it."""
    from neurodivergent import _core

    n = _core.get_num_threads()
    yield _core
    _core.set_num_threads(n)
