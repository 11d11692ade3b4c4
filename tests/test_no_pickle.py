"""Loading a model or checkpoint file never unpickles anything (issue 7: "no pickle anywhere; loading never
imports or executes anything named in a file"). An audit hook records every ``pickle.find_class`` event —
raised by any unpickler that resolves a class or function, the step through which a pickle runs code —
while the files are loaded. The positive control proves the hook sees unpickling."""
import sys
from datetime import timedelta

import pytest

from neurodivergent import TrainingConfig, load_checkpoint, load_dataset, load_model
from neurodivergent.models.deepar import DeepAR, DeepARConfig
from neurodivergent.models.gru import GRU, GRUConfig
from neurodivergent.models.lstm import LSTM, LSTMConfig
from neurodivergent.models.mlp import MLP, MLPConfig
from neurodivergent.models.transformer import Transformer, TransformerConfig

_EVENTS = []
_WATCH = [False]


def _hook(event, args):
    if _WATCH[0] and event.startswith("pickle."):
        _EVENTS.append((event, args))


sys.addaudithook(_hook)  # audit hooks cannot be removed; this one only records while _WATCH is set


class _Watch:
    def __enter__(self):
        _EVENTS.clear()
        _WATCH[0] = True
        return _EVENTS

    def __exit__(self, *exc):
        _WATCH[0] = False


def test_the_audit_hook_sees_unpickling():
    import pickle

    blob = pickle.dumps(timedelta(seconds=3))
    with _Watch() as events:
        pickle.loads(blob)
    assert any(e == "pickle.find_class" for e, _ in events)


MODELS = {
    "mlp": lambda: MLP(MLPConfig().with_input_size(12).with_horizon(4).with_hidden_size(8)),
    "lstm": lambda: LSTM(LSTMConfig().with_input_size(12).with_horizon(4).with_hidden_size(8)),
    "gru": lambda: GRU(GRUConfig().with_input_size(12).with_horizon(4).with_hidden_size(8)),
    "transformer": lambda: Transformer(TransformerConfig().with_input_size(12).with_horizon(4).with_d_model(8)
                                       .with_num_heads(2).with_num_layers(1).with_d_ff(16)),
    "deepar": lambda: DeepAR(DeepARConfig().with_input_size(12).with_horizon(4).with_hidden_size(8)),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_loading_model_and_checkpoint_files_never_unpickles(name, tmp_path):
    data = load_dataset("air_passengers")
    model = MODELS[name]()
    model.fit_with_config(data, TrainingConfig().with_max_steps(2).with_seed(0).with_verbose(False))
    model.save(str(tmp_path / "m.safetensors"))
    with _Watch() as events:
        again = load_model(str(tmp_path / "m.safetensors"))
        again.predict(data)
    assert events == []
    if name != "deepar":  # DeepAR's own loop keeps no training state (issue 7 note)
        model.save_checkpoint(str(tmp_path / "c.ckpt"))
        with _Watch() as events:
            load_checkpoint(str(tmp_path / "c.ckpt"))
        assert events == []
