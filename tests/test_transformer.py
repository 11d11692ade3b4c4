"""Transformer forecaster: exact gradients through the whole model (pre/post norm, patching, positional
encodings, dropout), the generic model check, training options (attention dropout, warmup), the
configuration, patching, and (torch installed only) weight interchange with torch.nn.TransformerEncoderLayer."""
import numpy as np
import pytest

from neurodivergent import TrainingConfig, load_dataset
from neurodivergent.models.base import load_model
from neurodivergent.models.transformer import Transformer, TransformerConfig, patch_starts, sinusoidal_encoding
from neurodivergent.nn import ParameterBuffer, Tape
from tests.model_check import check_model


def _loss_and_grad(model, x, target):
    tape = Tape()
    out = model._forward(x, tape, np.random.default_rng(5))
    r = out.data - target
    model.params.zero_grad()
    tape.backward(out, r)
    return 0.5 * float((r ** 2).sum()), model.params.grad.copy()


def _float64_model(cfg, seed=0):
    model = Transformer(cfg)
    model.params = ParameterBuffer(model._parameter_specs(), dtype=np.float64)
    model._init_parameters(np.random.default_rng(seed))
    # non-trivial norms and biases (the defaults are ones and zeros)
    rng = np.random.default_rng(seed + 1)
    for name in model.params.names:
        if "norm" in name or name.endswith("bias"):
            model.params[name][...] += rng.normal(scale=0.3, size=model.params[name].shape)
    return model


@pytest.mark.parametrize("norm, patch, positional, dropout, skip", [
    ("pre", (4, 2), "learned", 0.0, True), ("post", (4, 2), "sinusoidal", 0.0, True),
    ("pre", (1, 1), "sinusoidal", 0.0, False), ("post", (3, 3), "learned", 0.0, False),
    ("pre", (4, 3), "learned", 0.3, True)])
def test_model_gradient_matches_finite_differences(norm, patch, positional, dropout, skip):
    """float64 parameters through the real kernels (linear, attention, layer norm, GELU): the gradient of
    the whole model equals central finite differences (with dropout: the masks are fixed by the seed)."""
    c = (TransformerConfig().with_input_size(10).with_horizon(3).with_d_model(8).with_num_heads(2)
         .with_num_layers(2).with_d_ff(12).with_norm(norm).with_patch_len(patch[0]).with_stride(patch[1])
         .with_positional(positional).with_dropout(dropout).with_attention_dropout(dropout).with_linear_skip(skip))
    model = _float64_model(c)
    assert ("skip.weight" in model.params) == skip
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 10))
    target = rng.normal(size=(3, model.output_size))
    _, g = _loss_and_grad(model, x, target)
    idx = np.concatenate([np.arange(a, b)[rng.permutation(b - a)[:3]] for a, b in model.params.offsets.values()])
    fd = np.empty(len(idx))
    eps = 1e-6
    for k, i in enumerate(idx):
        old = model.params.data[i]
        model.params.data[i] = old + eps
        lp, _ = _loss_and_grad(model, x, target)
        model.params.data[i] = old - eps
        lm, _ = _loss_and_grad(model, x, target)
        model.params.data[i] = old
        fd[k] = (lp - lm) / (2 * eps)
    np.testing.assert_allclose(g[idx], fd, rtol=1e-6, atol=1e-8 * np.abs(fd).max())
    assert np.abs(g[idx]).max() > 0


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_generic_model_check(tmp_path, norm):
    check_model(lambda: Transformer(TransformerConfig().with_input_size(8).with_horizon(4).with_d_model(16)
                                    .with_d_ff(32).with_patch_len(4).with_stride(2).with_norm(norm)), tmp_path,
                batch_size=64)


def test_attention_dropout_and_warmup_from_training_config():
    data = load_dataset("us_macro_quarterly")
    train, _ = data.split_last(4)
    cfg = TransformerConfig().with_input_size(8).with_horizon(4).with_d_model(16).with_d_ff(16).with_patch_len(2) \
        .with_stride(2).with_dropout(0.0)
    tc = TrainingConfig().with_max_epochs(2).with_batch_size(64).with_seed(3).with_verbose(False)
    base = Transformer(cfg)
    base.fit_with_config(train, tc)
    with_drop = Transformer(cfg)
    with_drop.fit_with_config(train, tc.with_attention_dropout(0.3))
    assert with_drop.training_config.attention_dropout == 0.3
    assert not np.array_equal(base.params.data, with_drop.params.data)  # the dropout was applied
    again = Transformer(cfg)
    again.fit_with_config(train, tc.with_attention_dropout(0.3))
    np.testing.assert_array_equal(again.params.data, with_drop.params.data)  # seeded: repeatable
    # the model config's own attention dropout is used when the run does not set one
    own = Transformer(cfg.with_attention_dropout(0.3))
    own.fit_with_config(train, tc)
    np.testing.assert_array_equal(own.params.data, with_drop.params.data)
    # dropout is training-only: predictions are deterministic
    np.testing.assert_array_equal(own.predict(train).values(own.alias), own.predict(train).values(own.alias))
    # warmup: with a ramp far longer than the run the parameters barely leave their initial values
    init = Transformer(cfg)
    init.fit_with_config(train, tc.with_learning_rate(1e-12))
    warm = Transformer(cfg)
    warm.fit_with_config(train, tc.with_warmup_steps(1_000_000))
    moved, moved_base = np.abs(warm.params.data - init.params.data).max(), np.abs(base.params.data - init.params.data).max()
    assert 0 < moved < 1e-3 * moved_base


def test_config_validation():
    with pytest.raises(ValueError, match="d_model .*divisible by num_heads"):
        TransformerConfig().with_num_heads(3)
    with pytest.raises(ValueError, match="norm"):
        TransformerConfig().with_norm("middle")
    with pytest.raises(ValueError, match="attention_dropout"):
        TransformerConfig().with_attention_dropout(1.5)
    with pytest.raises(ValueError, match="positional"):
        TransformerConfig().with_positional("rotary")
    c = TransformerConfig().with_d_model(96).with_num_heads(3).with_input_size(48).with_horizon(24)
    assert TransformerConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match=r"patch_len \(16\) must not exceed input_size \(8\)"):
        patch_starts(8, 16, 8)
    short = Transformer(TransformerConfig().with_input_size(8).with_horizon(2))  # patch_len 16 clipped to 8
    assert short.patch_len == 8 and short.num_patches == 1
    assert dict(short._parameter_specs())["embedding.weight"] == (64, 8)


def test_patch_starts_cover_the_window():
    np.testing.assert_array_equal(patch_starts(96, 16, 8), np.arange(0, 81, 8))
    np.testing.assert_array_equal(patch_starts(10, 4, 3), [0, 3, 6])
    np.testing.assert_array_equal(patch_starts(11, 4, 3), [0, 3, 6, 7])  # last patch aligned to the end
    np.testing.assert_array_equal(patch_starts(5, 1, 1), np.arange(5))
    for L, P, S in [(96, 16, 8), (24, 7, 5), (13, 13, 4), (30, 9, 4)]:
        s = patch_starts(L, P, S)
        covered = np.zeros(L, bool)
        for a in s:
            covered[a:a + P] = True
        assert covered.all() and s[-1] + P == L
    pe = sinusoidal_encoding(5, 6)
    assert pe.shape == (5, 6) and np.allclose(pe[0], [0, 1, 0, 1, 0, 1])
    np.testing.assert_allclose(pe[3, 2], np.sin(3 / 10000 ** (2 / 6)))


def test_save_load_keeps_structure(tmp_path):
    data = load_dataset("us_macro_quarterly")
    cfg = (TransformerConfig().with_input_size(8).with_horizon(4).with_d_model(8).with_num_heads(2).with_d_ff(8)
           .with_patch_len(3).with_stride(2).with_positional("sinusoidal").with_norm("post"))
    model = Transformer(cfg)
    model.fit_with_config(data, TrainingConfig().with_max_epochs(1).with_verbose(False).with_seed(1)
                          .with_loss_function("quantile"))
    path = tmp_path / "t.safetensors"
    model.save(str(path))
    again = load_model(str(path))
    assert isinstance(again, Transformer) and again.config == cfg and again.n_outputs == model.n_outputs
    np.testing.assert_array_equal(again.predict_outputs(np.ones((2, 8)) + np.arange(8)),
                                  model.predict_outputs(np.ones((2, 8)) + np.arange(8)))


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_encoder_layer_matches_torch(norm):
    torch = pytest.importorskip("torch")
    cfg = (TransformerConfig().with_input_size(12).with_horizon(3).with_d_model(16).with_num_heads(4)
           .with_num_layers(1).with_d_ff(24).with_patch_len(4).with_stride(2).with_norm(norm).with_dropout(0.0))
    model = _float64_model(cfg)
    n, B = model.num_patches, 3
    rng = np.random.default_rng(2)
    h = rng.normal(size=(B * n, 16))
    ours = model._encoder_layer(None, __import__("neurodivergent").nn.tape.Var(h, -1), 0, B, n, None).data
    layer = torch.nn.TransformerEncoderLayer(16, 4, 24, dropout=0.0, activation="gelu", batch_first=True,
                                             norm_first=norm == "pre").double()
    sd = {k[len("encoder.layers.0."):]: torch.tensor(np.array(model.params[k]))
          for k in model.params.names if k.startswith("encoder.layers.0.")}
    layer.load_state_dict(sd)
    layer.eval()
    with torch.no_grad():
        ref = layer(torch.tensor(h.reshape(B, n, 16))).numpy().reshape(B * n, 16)
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-12)


def test_cli_train_and_predict(tmp_path, capsys):
    from neurodivergent import TimeSeriesDataFrame
    from neurodivergent.cli import main

    src = tmp_path / "macro.csv"
    load_dataset("us_macro_quarterly").to_csv(str(src))
    out_csv, model_file = tmp_path / "fc.csv", tmp_path / "m.safetensors"
    assert main(["train", "--data", str(src), "--horizon", "4", "--input-size", "8", "--model", "transformer",
                 "--max-steps", "20", "--hidden-size", "16", "--output", str(out_csv), "--save-model",
                 str(model_file), "-q"]) == 0
    out = capsys.readouterr().out
    assert "model: Transformer input_size=8 horizon=4 d_model=16" in out and "SeasonalNaive" in out
    fc = TimeSeriesDataFrame.from_csv(str(out_csv), target_col="Transformer")
    assert fc.n_series == 10 and set(fc.lengths) == {4}
    model = load_model(str(model_file))
    assert isinstance(model, Transformer) and model.config.d_model == 16
    out2 = tmp_path / "fc2.csv"
    assert main(["predict", "--model-file", str(model_file), "--data", str(src), "--output", str(out2)]) == 0
    assert TimeSeriesDataFrame.from_csv(str(out2), target_col="Transformer").n_series == 10


def test_hidden_size_alias_for_shared_searches():
    """The guide's search space (model_type LSTM / GRU / Transformer with hidden_size, num_layers, dropout)
    builds a Transformer: hidden_size is the token width when set."""
    from neurodivergent.tuning.forecast import build_configs

    cls, cfg, _ = build_configs({"model_type": "Transformer", "hidden_size": 128, "num_layers": 3, "dropout": 0.2},
                                horizon=4, input_size=8, training_config=None)
    assert cls is Transformer and cfg.width == 128 and cfg.num_layers == 3 and cfg.dropout == 0.2
    model = Transformer(cfg)
    assert dict(model._parameter_specs())["embedding.weight"] == (128, 8)
    assert TransformerConfig().width == 64
    with pytest.raises(ValueError, match=r"hidden_size \(30\) must be divisible by num_heads \(4\)"):
        TransformerConfig().with_hidden_size(30)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 1e-5)])
def test_feed_forward_gelu_kernel_matches_reference(dtype, rtol):
    """The feed-forward block's GELU kernel (vectorised erfc / exp for float32) against the float64
    erfc reference (itself checked by finite differences in tests/test_kernels.py), forward and backward,
    tails, zeros and infinities included, on a length that is not a multiple of the vector width."""
    from neurodivergent.nn import functional as F
    from tests.reference import activations as ref

    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(scale=3.0, size=1001), [0.0, -0.0, 1e-8, -1e-8, 5.0, -5.0, 9.0, -9.0, 13.0,
                                                           -13.0, 30.0, -30.0, 1e30, -1e30]]).astype(dtype)
    dy = rng.normal(size=x.shape).astype(dtype)
    y = F.ff_gelu_forward(x)
    dx = F.ff_gelu_backward(dy, x)
    assert y.dtype == dtype and dx.dtype == dtype
    y_ref, dx_ref = ref.gelu(x), ref.gelu_backward(dy, x)
    # relative error against max(|ref|, 1): the tails (|y| ~ 1e-38) are checked at the absolute floor
    np.testing.assert_array_less(np.abs(y - y_ref), rtol * np.maximum(np.abs(y_ref), 1.0))
    np.testing.assert_array_less(np.abs(dx - dx_ref), rtol * np.maximum(np.abs(dx_ref), 1.0))
    inf = F.ff_gelu_forward(np.array([np.inf, -np.inf], dtype))
    np.testing.assert_array_equal(inf, [np.inf, 0.0])
    np.testing.assert_array_equal(F.ff_gelu_backward(np.ones(2, dtype), np.array([np.inf, -np.inf], dtype)), [1.0, 0.0])
    with pytest.raises(ValueError, match="dy must have the shape of x"):
        F.ff_gelu_backward(dy[:-1], x)
    with pytest.raises(TypeError, match="dy has dtype"):
        F.ff_gelu_backward(dy.astype(np.float64 if dtype == np.float32 else np.float32), x)


def test_float_gelu_ulp_error_on_a_dense_grid():
    """The float32 GELU kernel (piecewise polynomial of 0.5 erfc(u / sqrt 2) exp(u^2 / 2) times an exp(-x^2 / 2)
    that keeps x^2 exact) against float64 erfc on a dense grid of |x| <= 14 and geometric points down to
    1e-30: GELU within 4 float ulps of the exact value wherever |GELU(x)| > 1e-36 (the negative tail keeps
    its relative accuracy: the former erfc form reached 249 ulps at x = -12.7), GELU' within 4 ulps of
    Phi(x) + |x| phi(x) (its own condition scale: GELU' crosses zero near x = -0.75), and saturation beyond."""
    import math

    from neurodivergent.nn import functional as F
    from tests.reference import activations as ref

    x = np.concatenate([np.linspace(-14.0, 14.0, 200001), -np.geomspace(1e-30, 14.0, 4001),
                        np.geomspace(1e-30, 14.0, 4001)]).astype(np.float32)
    x64 = x.astype(np.float64)
    y = F.ff_gelu_forward(x).astype(np.float64)
    d = F.ff_gelu_backward(np.ones_like(x), x).astype(np.float64)
    y_ref, d_ref = ref.gelu(x64), ref.gelu_backward(np.ones_like(x64), x64)

    def ulp(v):
        return np.spacing(np.abs(v).astype(np.float32)).astype(np.float64)

    big = np.abs(y_ref) > 1e-36
    assert np.max(np.abs(y - y_ref)[big] / ulp(y_ref[big])) <= 4.0
    assert np.max(np.abs(y - y_ref)[~big]) <= 1e-37
    scale = np.abs(d_ref - x64 * np.exp(-0.5 * x64 * x64) / math.sqrt(2 * math.pi)) \
        + np.abs(x64) * np.exp(-0.5 * x64 * x64) / math.sqrt(2 * math.pi)  # Phi(x) + |x| phi(x)
    ok = scale > 1e-36
    assert np.max(np.abs(d - d_ref)[ok] / ulp(scale[ok])) <= 4.0
    # saturation: GELU(x) = x and GELU'(x) = 1 for large x, 0 and 0 for very negative x
    far = np.array([14.0, 20.0, 1e10, -14.0, -20.0, -1e10], np.float32)
    np.testing.assert_array_equal(F.ff_gelu_forward(far), [14.0, 20.0, 1e10, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(F.ff_gelu_backward(np.ones_like(far), far), [1, 1, 1, 0, 0, 0])


def _unfused_layer(model, tape, h, B, n, norm):
    """The encoder layer as separate ops (linear, then the residual add; GELU, then linear): what the layer
    ran before its residual adds and GELU moved into the linear kernels."""
    from neurodivergent.models import transformer as T
    from neurodivergent.nn import layers

    pb, p, c = model.params, "encoder.layers.0", model.config

    def attn(v):
        return T._self_attention(tape, pb, v, f"{p}.self_attn", B, n, c.num_heads, 0.0, None)

    def ff(v):
        z = layers.linear(tape, pb, v, f"{p}.linear1.weight", f"{p}.linear1.bias")
        z = T._gelu(tape, z) if c.activation == "gelu" else layers.activation(tape, c.activation, z)
        return layers.linear(tape, pb, z, f"{p}.linear2.weight", f"{p}.linear2.bias")

    if norm == "pre":
        h = T._add(tape, h, attn(T._layer_norm(tape, pb, h, f"{p}.norm1")))
        return T._add(tape, h, ff(T._layer_norm(tape, pb, h, f"{p}.norm2")))
    h = T._layer_norm(tape, pb, T._add(tape, h, attn(h)), f"{p}.norm1")
    return T._layer_norm(tape, pb, T._add(tape, h, ff(h)), f"{p}.norm2")


@pytest.mark.parametrize("norm, activation, d", [("pre", "gelu", 32), ("post", "gelu", 20), ("pre", "relu", 24)])
def test_fused_encoder_layer_is_bitwise_the_separate_ops(norm, activation, d, monkeypatch):
    """Without dropout the layer adds its residuals inside the output projection's and the second linear's
    kernels, evaluates GELU (and GELU') in the first feed-forward linear's epilogue and reuses those buffers
    from one training step to the next: output, input gradient and every parameter gradient are bitwise
    those of the separate ops (float32, the users' dtype), in a first and a second step."""
    from neurodivergent.models import transformer as tm
    from neurodivergent.nn._buffers import BufferPool
    from neurodivergent.nn.tape import Var

    pool = BufferPool(min_bytes=1 << 20, max_bytes=1 << 30, small_bytes=0)  # pool these small test arrays too
    monkeypatch.setattr(tm, "_POOL", pool)

    cfg = (TransformerConfig().with_input_size(40).with_horizon(3).with_d_model(d).with_num_heads(4)
           .with_num_layers(1).with_d_ff(3 * d).with_patch_len(1).with_stride(1).with_norm(norm)
           .with_activation(activation).with_dropout(0.0))
    model = Transformer(cfg)
    model.params = ParameterBuffer(model._parameter_specs())
    model._init_parameters(np.random.default_rng(0))
    rng = np.random.default_rng(1)
    for name in model.params.names:
        if "norm" in name or name.endswith("bias"):
            model.params[name][...] += rng.normal(scale=0.3, size=model.params[name].shape).astype(np.float32)
    B, n = 5, model.num_patches
    h = rng.normal(size=(B * n, d)).astype(np.float32)
    dy = rng.normal(size=(B * n, d)).astype(np.float32)
    outs, held = [], []
    for fused in (True, True, False):  # the second fused step reuses the first one's GELU buffers (the pool)
        tape = Tape()
        hv = tape.var(h)
        out = model._encoder_layer(tape, hv, 0, B, n, None) if fused else _unfused_layer(model, tape, hv, B, n, norm)
        model.params.zero_grad()
        dx = tape.backward(out, dy)[hv.id]
        infer = model._encoder_layer(None, Var(h, -1), 0, B, n, None).data if fused else out.data
        outs.append((out.data.copy(), infer.copy(), dx.copy(), model.params.grad.copy()))
        held.append(pool.held)
    if activation == "gelu":
        assert held[0] > 0 and held[1] == held[0]  # the second step took the first one's buffers, nothing new
    for step in outs[1:]:
        for a, b in zip(outs[0], step):
            np.testing.assert_array_equal(a.view(np.int32), b.view(np.int32))
