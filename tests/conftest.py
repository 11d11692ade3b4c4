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


@pytest.fixture
def pool(monkeypatch):
    """A fresh reusable-array pool (nn/_buffers.py) for the LSTM and GRU functions, taking every size (the
    library's own skips arrays under 1 MiB)."""
    from neurodivergent.nn import _buffers, functional_gru, functional_lstm

    p = _buffers.BufferPool(min_bytes=0, max_bytes=1 << 26)
    monkeypatch.setattr(functional_lstm, "_POOL", p)
    monkeypatch.setattr(functional_gru, "_POOL", p)
    return p
