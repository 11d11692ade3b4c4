"""LSTM and GRU forecasters: exact gradients through the whole model, the generic model check,
sequence-to-sequence mode and teacher forcing."""
from types import SimpleNamespace

import numpy as np
import pytest

from neurodivergent import TrainingConfig, load_dataset
from neurodivergent.models.gru import GRU, GRUConfig
from neurodivergent.models.lstm import LSTM, LSTMConfig
from neurodivergent.nn import ParameterBuffer, Tape
from tests.model_check import check_model

CELLS = [(LSTM, LSTMConfig), (GRU, GRUConfig)]


def _loss_and_grad(model, x, y, target):
    tape = Tape()
    out = model._forward(x, tape, np.random.default_rng(5), y)
    r = out.data - target
    model.params.zero_grad()
    tape.backward(out, r)
    return 0.5 * float((r ** 2).sum()), model.params.grad.copy()


@pytest.mark.parametrize("cls, cfg", CELLS)
@pytest.mark.parametrize("mode, decoder_input, seq_len", [("direct", "sequence", 5), ("direct", "sequence", None),
                                                         ("direct", "last", 5), ("seq2seq", "sequence", 5)])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_model_gradient_matches_finite_differences(cls, cfg, mode, decoder_input, seq_len, num_layers):
    """float64 parameters through the real kernels: the gradient of the whole model (encoder stack,
    context adapter over the whole window or its tail, decoder, seq2seq decoder fed with teacher-forced
    inputs) equals central finite differences."""
    c = (cfg().with_input_size(7).with_horizon(3).with_hidden_size(4).with_num_layers(num_layers)
         .with_decoder_hidden_size(5).with_mode(mode).with_decoder_input(decoder_input))
    model = cls(c)
    model._test_config = SimpleNamespace(teacher_forcing_ratio=1.0, sequence_length=seq_len)
    model.params = ParameterBuffer(model._parameter_specs(), dtype=np.float64)
    rng = np.random.default_rng(0)
    model._init_parameters(rng)
    x, y = rng.normal(size=(3, 7)), rng.normal(size=(3, 3))
    target = rng.normal(size=(3, model.output_size))
    _, g = _loss_and_grad(model, x, y, target)
    # every parameter tensor is probed, a few entries each (keeps the test fast)
    idx = np.concatenate([np.arange(a, b)[rng.permutation(b - a)[:4]] for a, b in model.params.offsets.values()])
    fd = np.empty(len(idx))
    eps = 1e-6
    for k, i in enumerate(idx):
        old = model.params.data[i]
        model.params.data[i] = old + eps
        lp, _ = _loss_and_grad(model, x, y, target)
        model.params.data[i] = old - eps
        lm, _ = _loss_and_grad(model, x, y, target)
        model.params.data[i] = old
        fd[k] = (lp - lm) / (2 * eps)
    np.testing.assert_allclose(g[idx], fd, rtol=1e-6, atol=1e-8 * np.abs(fd).max())


@pytest.mark.parametrize("cls, cfg", CELLS)
@pytest.mark.parametrize("seq_len", [None, 4])
def test_sequence_decoder_maps_every_state_across_time(cls, cfg, seq_len):
    """The default direct decoder: context_k = sum_t W[k, t] y_t + b_k over the encoder states y_t
    (the last T adapter columns when sequence_length cuts the window), then the same MLP on every
    horizon step — checked against numpy written from that definition."""
    from neurodivergent.nn import functional as F

    c = cfg().with_input_size(6).with_horizon(3).with_hidden_size(5).with_decoder_hidden_size(4)
    model = cls(c)
    model._test_config = SimpleNamespace(teacher_forcing_ratio=0.0, sequence_length=seq_len)
    model.params = ParameterBuffer(model._parameter_specs(), dtype=np.float64)
    rng = np.random.default_rng(1)
    model._init_parameters(rng)
    p = model.params
    x = rng.normal(size=(2, 6))
    T = seq_len or 6
    w = [p[f"encoder.{n}_l0"] for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    fwd = F.lstm_forward if cls is LSTM else F.gru_forward
    ys = fwd(np.ascontiguousarray(x[:, -T:, None]), *w).y  # (B, T, H)
    ctx = np.einsum("kt,bth->bkh", p["context.weight"][:, -T:], ys) + p["context.bias"][None, :, None]
    hid = np.maximum(ctx @ p["decoder.0.weight"].T + p["decoder.0.bias"], 0.0)
    expected = (hid @ p["decoder.1.weight"].T + p["decoder.1.bias"])[:, :, 0]
    np.testing.assert_allclose(model._forward(x, None, None).data, expected, rtol=1e-12, atol=1e-12)


def test_decoder_input_is_validated():
    with pytest.raises(ValueError, match="decoder_input"):
        LSTMConfig().with_decoder_input("first")


def _small(cls, cfg, **kw):
    c = cfg().with_input_size(12).with_horizon(4).with_hidden_size(16).with_decoder_hidden_size(16)
    for k, v in kw.items():
        c = getattr(c, f"with_{k}")(v)
    return cls(c)


@pytest.mark.parametrize("cls, cfg", CELLS)
def test_generic_model_check(cls, cfg, tmp_path):
    check_model(lambda: _small(cls, cfg), tmp_path)


@pytest.mark.parametrize("cls, cfg", CELLS)
def test_generic_model_check_two_layers_dropout_seq2seq(cls, cfg, tmp_path):
    check_model(lambda: _small(cls, cfg, num_layers=2, dropout=0.1, mode="seq2seq"), tmp_path)


@pytest.mark.parametrize("cls, cfg", CELLS)
def test_recurrent_models_clip_by_norm_by_default(cls, cfg):
    from neurodivergent.training.regularization import GradientClipping

    assert _small(cls, cfg).default_gradient_clipping == GradientClipping.ByNorm(1.0)


@pytest.mark.parametrize("cls, cfg", CELLS)
def test_teacher_forcing_and_sequence_length_change_training(cls, cfg):
    data = load_dataset("us_macro_quarterly")
    base = TrainingConfig().with_max_epochs(2).with_verbose(False)
    runs = {}
    for name, tc in {"free": base, "forced": base.with_teacher_forcing_ratio(1.0),
                     "short": base.with_sequence_length(6)}.items():
        m = _small(cls, cfg, mode="seq2seq")
        runs[name] = m.fit_with_config(data, tc).step_losses
    assert runs["free"] != runs["forced"] and runs["free"] != runs["short"]


def test_lstm_weights_are_interchangeable_with_torch():
    torch = pytest.importorskip("torch")
    model = _small(LSTM, LSTMConfig, num_layers=2)
    model.params = ParameterBuffer(model._parameter_specs())
    model._init_parameters(np.random.default_rng(0))
    net = torch.nn.LSTM(1, 16, num_layers=2, batch_first=True)
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.copy_(torch.from_numpy(model.params[f"encoder.{name}"]))
    x = np.random.default_rng(1).normal(size=(5, 12)).astype(np.float32)
    _, finals = model._stack(None, model._sequence(x, None), "encoder", None)
    _, (h, _) = net(torch.from_numpy(x[:, :, None]))
    np.testing.assert_allclose(finals[-1][0].data, h[-1].detach().numpy(), rtol=1e-4, atol=1e-5)
