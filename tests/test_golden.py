"""Golden test (DESIGN §5): the first 10 training losses of each model on a fixed seed, one thread
(DeepAR's are negative log-likelihoods).

The stored values (tests/golden/first_losses.json) were produced by this file's ``--update`` mode:

    PYTHONPATH=python python3 tests/test_golden.py --update [model ...]

Any change that alters what a model computes — initialisation, window sampling, scaling, a kernel, the
optimizer — moves these losses far more than the tolerance and must be a deliberate decision (re-run
``--update`` and say why in the commit). The tolerance (rtol 2e-4) only absorbs rounding differences
between SIMD paths (AVX-512 / AVX2 / baseline micro-kernels sum in different orders) and compilers.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "first_losses.json")
N_STEPS = 10


def _models():
    from neurodivergent import MLP, MLPConfig
    from neurodivergent.models.gru import GRU, GRUConfig
    from neurodivergent.models.deepar import DeepAR, DeepARConfig
    from neurodivergent.models.lstm import LSTM, LSTMConfig
    from neurodivergent.models.transformer import Transformer, TransformerConfig

    return {
        "mlp": lambda: MLP(MLPConfig().with_input_size(24).with_horizon(12).with_hidden_size(32)),
        "lstm": lambda: LSTM(LSTMConfig().with_input_size(24).with_horizon(12).with_hidden_size(16)
                             .with_decoder_hidden_size(16)),
        "lstm_seq2seq": lambda: LSTM(LSTMConfig().with_input_size(24).with_horizon(12).with_hidden_size(16)
                                     .with_num_layers(2).with_mode("seq2seq")),
        "gru": lambda: GRU(GRUConfig().with_input_size(24).with_horizon(12).with_hidden_size(16)
                           .with_decoder_hidden_size(16)),
        "gru_last": lambda: GRU(GRUConfig().with_input_size(24).with_horizon(12).with_hidden_size(16)
                                .with_decoder_input("last")),
        "transformer": lambda: Transformer(TransformerConfig().with_input_size(24).with_horizon(12).with_d_model(16)
                                           .with_num_heads(2).with_num_layers(1).with_d_ff(32)),
        "deepar": lambda: DeepAR(DeepARConfig().with_input_size(24).with_horizon(12).with_hidden_size(16)),
    }


def first_losses(name: str) -> list:
    import neurodivergent as nd
    from neurodivergent import TrainingConfig, load_dataset

    data = load_dataset("air_passengers")
    tc = (TrainingConfig().with_max_steps(N_STEPS).with_max_epochs(100).with_batch_size(16).with_seed(123)
          .with_verbose(False))
    old = nd.get_num_threads()
    nd.set_num_threads(1)
    try:
        logs = _models()[name]().fit_with_config(data, tc)
    finally:
        nd.set_num_threads(old)
    return [float(v) for v in logs.step_losses[:N_STEPS]]


def _stored() -> dict:
    with open(GOLDEN) as f:
        return json.load(f)


def test_every_model_has_golden_losses():
    assert sorted(_stored()) == sorted(_models())


@pytest.mark.parametrize("name", sorted(_models()))
def test_first_training_losses_match_golden(name):
    expected = _stored()[name]
    got = first_losses(name)
    assert len(got) == N_STEPS and np.all(np.isfinite(got))
    np.testing.assert_allclose(got, expected, rtol=2e-4, err_msg=f"{name}: first {N_STEPS} losses moved")


if __name__ == "__main__":  # regenerate: python3 tests/test_golden.py --update [model ...]
    if "--update" not in sys.argv:
        sys.exit(__doc__)
    names = [a for a in sys.argv[1:] if a != "--update"] or sorted(_models())
    stored = _stored() if os.path.exists(GOLDEN) else {}
    for n in names:
        stored[n] = first_losses(n)
        print(n, stored[n])
    with open(GOLDEN, "w") as f:
        json.dump(stored, f, indent=1, sort_keys=True)
        f.write("\n")
