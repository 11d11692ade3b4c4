"""Accuracy on M4 Hourly (414 series, h=48, m=24) with the official M4 metrics.

    PYTHONPATH=python python3 bench/m4.py --model mlp [--max-steps 2000 --batch-size 256 ...]

Reads ../shared/data/m4/ (never copied into the project). Prints sMAPE, MASE and OWA (against the
official Naive2: sMAPE 18.383, MASE 2.395), training time and peak memory, next to seasonal naive
(official OWA 0.627) computed here with the same code.
"""
from __future__ import annotations

import argparse
import csv
import os
import resource
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
M4_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data", "m4"))
NAIVE2_SMAPE, NAIVE2_MASE = 18.383, 2.395
H, M = 48, 24


def read_wide(path):
    ids, series = [], []
    with open(path, newline="") as f:
        r = csv.reader(f)
        next(r)
        for row in r:
            ids.append(row[0])
            series.append(np.array([float(v) for v in row[1:] if v != ""], dtype=np.float64))
    return ids, series


def load_m4(m4_dir=M4_DIR):
    ids, train = read_wide(os.path.join(m4_dir, "m4_hourly_train.csv"))
    tids, test = read_wide(os.path.join(m4_dir, "m4_hourly_test.csv"))
    assert ids == tids, "train and test ids differ"
    return ids, train, np.stack(test)


def to_frame(ids, train):
    from neurodivergent import TimeSeriesDataFrame

    uid = np.concatenate([[i] * len(y) for i, y in zip(ids, train)])
    ds = np.concatenate([np.arange(1, len(y) + 1) for y in train])
    return TimeSeriesDataFrame.from_arrays(uid, ds, np.concatenate(train), freq=1)


def m4_scores(y_true, y_hat, train):
    from neurodivergent.validation import metrics as Mx

    smape = Mx.smape(y_true, y_hat)
    mase = Mx.mase(y_true, y_hat, train, M)
    owa = Mx.owa(smape, mase, NAIVE2_SMAPE, NAIVE2_MASE)
    return smape, mase, owa


TRANSFORMER_OPTIONS = ("d_model", "num_heads", "d_ff", "patch_len", "stride", "norm", "positional",
                       "attention_dropout", "activation", "linear_skip")


def build(args):
    from neurodivergent import MLP, MLPConfig, TrainingConfig
    from neurodivergent.models.gru import GRU, GRUConfig
    from neurodivergent.models.lstm import LSTM, LSTMConfig

    from neurodivergent.models.transformer import Transformer, TransformerConfig

    classes = {"mlp": (MLP, MLPConfig), "lstm": (LSTM, LSTMConfig), "gru": (GRU, GRUConfig),
               "transformer": (Transformer, TransformerConfig)}
    if args.model not in classes:
        raise SystemExit(f"unknown model {args.model}; choose one of {', '.join(classes)}")
    cls, cfg_cls = classes[args.model]
    cfg = cfg_cls().with_input_size(args.input_size).with_horizon(H)
    for opt in ("hidden_size", "num_layers", "scaler", "dropout", "decoder_hidden_size", "decoder_layers", "mode",
                "decoder_input"):
        v = getattr(args, opt, None)
        if v is not None and v != 0.0:
            cfg = getattr(cfg, f"with_{opt}")(v)
    if args.model == "transformer":  # its options, replaced together (d_model % num_heads is checked once)
        import dataclasses

        kw = {o: getattr(args, o) for o in TRANSFORMER_OPTIONS if getattr(args, o, None) is not None}
        if args.dropout is not None:
            kw["dropout"] = args.dropout
        cfg = dataclasses.replace(cfg, **kw)
    tc = (TrainingConfig().with_max_steps(args.max_steps).with_max_epochs(10_000)
          .with_batch_size(args.batch_size).with_seed(args.seed).with_verbose(args.verbose))
    if getattr(args, "warmup_steps", None):
        tc = tc.with_warmup_steps(args.warmup_steps)
    if args.learning_rate:
        tc = tc.with_learning_rate(args.learning_rate)
    if args.loss:
        tc = tc.with_loss_function(args.loss)
    return cls(cfg), tc


def torch_fit_predict(data, args, seed):
    """The same MLP, windows, scaling, batches, loss and Adam, trained with PyTorch (bench only)."""
    import torch

    from neurodivergent.data.scalers import scale, unscale, window_stats
    from neurodivergent.training.trainer import make_samplers

    torch.manual_seed(seed)
    if args.model == "mlp":
        hidden, layers_ = args.hidden_size or 512, args.num_layers or 2
        dims = [args.input_size] + [hidden] * layers_ + [H]
        mods = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            mods.append(torch.nn.Linear(a, b))
            if i < len(dims) - 2:
                mods.append(torch.nn.ReLU())
        net = torch.nn.Sequential(*mods)
    else:  # the same direct recurrent forecaster: cell over the window, then the decoder
        hidden, layers_ = args.hidden_size or 128, args.num_layers or 1
        dec_h, dec_l = args.decoder_hidden_size or 128, 1 if args.decoder_layers is None else args.decoder_layers
        rnn = (torch.nn.LSTM if args.model == "lstm" else torch.nn.GRU)(1, hidden, layers_, batch_first=True,
                                                                          dropout=args.dropout or 0.0)
        seq_dec = (args.decoder_input or "sequence") == "sequence"
        # 'sequence': every state -> context adapter over time (T -> H steps) -> per-step MLP -> 1 value;
        # 'last': the final state -> MLP -> H values
        dims = [hidden] + [dec_h] * dec_l + [1 if seq_dec else H]
        mods = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            mods.append(torch.nn.Linear(a, b))
            if i < len(dims) - 2:
                mods.append(torch.nn.ReLU())
        head = torch.nn.Sequential(*mods)

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.rnn, self.head = rnn, head
                self.context = torch.nn.Linear(args.input_size, H) if seq_dec else None

            def forward(self, x):
                ys, st = self.rnn(x[:, :, None])
                if self.context is not None:  # (B, T, hidden) -> (B, hidden, H) -> (B, H, hidden)
                    ctx = self.context(ys.transpose(1, 2)).transpose(1, 2)
                    return self.head(ctx)[:, :, 0]
                h = st[0] if isinstance(st, tuple) else st
                return self.head(h[-1])

        net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=args.learning_rate or 1e-3)
    loss_fn = {"mse": torch.nn.MSELoss(), "huber": torch.nn.HuberLoss()}.get(args.loss or "mae", torch.nn.L1Loss())
    sampler, _ = make_samplers(data.y, data.offsets, args.input_size, H, 0.0)
    rng = np.random.default_rng(seed)
    scaler = args.scaler or "standard"
    t0 = time.perf_counter()
    step = 0
    while step < args.max_steps:
        order = sampler.epoch_order(rng)
        for a in range(0, len(order), args.batch_size):
            if step >= args.max_steps:
                break
            x, y = sampler.gather(order[a:a + args.batch_size])
            loc, sc = window_stats(x, scaler)
            xb, yb = torch.from_numpy(scale(x, loc, sc)), torch.from_numpy(scale(y, loc, sc))
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(xb), yb)
            loss.backward()
            if args.model != "mlp":  # our recurrent models clip the global norm at 1.0 by default
                torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            step += 1
    t_fit = time.perf_counter() - t0
    ends = data.offsets[1:]
    x = data.y[ends[:, None] + np.arange(-args.input_size, 0)[None, :]]
    loc, sc = window_stats(x, scaler)
    with torch.no_grad():
        z = net(torch.from_numpy(scale(x, loc, sc))).numpy()
    return unscale(z, loc, sc), t_fit


def _StepPrinter(t0, every=250):
    from neurodivergent.training.callbacks import Callback

    class StepPrinter(Callback):
        def on_batch_end(self, step, logs):
            if (step + 1) % every == 0:
                print(f"  step {step + 1}: NLL {logs.step_losses[-1]:.4f}  {time.perf_counter() - t0:.0f}s", flush=True)

    return StepPrinter()


def run_deepar(args, ids, train, test, snaive_scores):
    """DeepAR on M4 Hourly: only input_size, horizon and the step budget are set (everything else default).
    The frame gets hourly timestamps (M4 gives none; series start at an arbitrary hour 0) so that the
    default lags (1-7, 24/48/72 +- 1, 168 +- 1) and calendar features follow the hourly frequency."""
    from neurodivergent import TimeSeriesDataFrame, TrainingConfig
    from neurodivergent.models.deepar import DeepAR, DeepARConfig
    from neurodivergent.validation import probabilistic as P

    uid = np.concatenate([[i] * len(y) for i, y in zip(ids, train)])
    start = np.datetime64("2000-01-01T00:00")
    ds = np.concatenate([start + np.arange(len(y)).astype("timedelta64[h]") for y in train])
    data = TimeSeriesDataFrame.from_arrays(uid, ds, np.concatenate(train), freq="H")
    for seed in args.seeds:
        cfg = DeepARConfig().with_input_size(args.input_size).with_horizon(H)
        for opt in ("hidden_size", "num_layers", "dropout"):
            v = getattr(args, opt, None)
            if v is not None:
                cfg = getattr(cfg, f"with_{opt}")(v)
        tc = (TrainingConfig().with_max_steps(args.max_steps).with_max_epochs(10_000)
              .with_batch_size(args.batch_size).with_seed(seed).with_verbose(args.verbose))
        if args.learning_rate:
            tc = tc.with_learning_rate(args.learning_rate)
        model = DeepAR(cfg)
        t0 = time.perf_counter()
        logs = model.fit_with_config(data, tc.with_callback(_StepPrinter(t0)))
        t_fit = time.perf_counter() - t0
        t0 = time.perf_counter()
        samples = model.predict_samples(data)  # (414, 100, 48)
        t_pred = time.perf_counter() - t0
        med = np.median(samples, axis=1)
        sm, ms, ow = m4_scores(test, med, train)
        q = P.quantiles_from_samples(samples, [0.05, 0.1, 0.9, 0.95])
        cov80, cov90 = P.coverage(test, q[..., 1], q[..., 2]), P.coverage(test, q[..., 0], q[..., 3])
        crps = P.crps_from_samples(test, samples)
        wcrps = P.crps_from_samples(test, samples, normalized=True)
        msis90 = P.msis(test, q[..., 0], q[..., 3], train, M, level=90)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        verdict = "beats" if ow < snaive_scores[2] else "does NOT beat"
        print(f"{'DeepAR median seed=' + str(seed):<28} sMAPE {sm:7.3f}  MASE {ms:6.3f}  OWA {ow:6.3f} ({verdict} "
              f"seasonal naive)  train {t_fit:6.1f}s ({logs.get_metric('step')} steps), sampling {t_pred:.1f}s  "
              f"peak RSS {rss:.0f} MB")
        print(f"{'':<28} coverage 80% {100 * cov80:5.1f}%  90% {100 * cov90:5.1f}%  CRPS {crps:.3f}  "
              f"CRPS / mean|y| {wcrps:.4f}  MSIS(90%) {msis90:.3f}  final NLL {logs.step_losses[-1]:.4f}")
    print("command:", " ".join([os.path.basename(sys.executable), "bench/m4.py"] + (argv_of(args))))


def argv_of(args):
    return getattr(args, "_argv", None) or sys.argv[1:]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="mlp")
    p.add_argument("--input-size", type=int, default=96)
    p.add_argument("--hidden-size", type=int)
    p.add_argument("--num-layers", type=int)
    p.add_argument("--scaler")
    p.add_argument("--dropout", type=float)
    p.add_argument("--decoder-hidden-size", type=int)
    p.add_argument("--decoder-layers", type=int)
    p.add_argument("--mode")
    p.add_argument("--decoder-input", help="recurrent models: sequence (default) or last")
    p.add_argument("--loss")
    for o in TRANSFORMER_OPTIONS:  # --model transformer
        kind = str if o in ("norm", "positional", "activation") else float if o == "attention_dropout" else int
        if o == "linear_skip":
            kind = lambda v: {"1": True, "true": True, "0": False, "false": False}[v.lower()]  # noqa: E731
        p.add_argument("--" + o.replace("_", "-"), type=kind, help="transformer: " + o)
    p.add_argument("--warmup-steps", type=int, help="TrainingConfig.with_warmup_steps")
    p.add_argument("--max-steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--learning-rate", type=float)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--threads", type=int)
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--m4-dir", default=M4_DIR, help="folder holding m4_hourly_train.csv / m4_hourly_test.csv")
    p.add_argument("--torch", action="store_true", help="also train the same MLP with PyTorch (bench only)")
    args = p.parse_args(argv)

    import neurodivergent as nd
    from neurodivergent.validation.baselines import seasonal_naive

    if args.threads:
        nd.set_num_threads(args.threads)
    ids, train, test = load_m4(args.m4_dir)
    data = to_frame(ids, train)
    snaive = np.stack([seasonal_naive(y, H, M) for y in train])
    s = m4_scores(test, snaive, train)
    print(f"M4 Hourly: {len(ids)} series; threads={nd.get_num_threads()}")
    print(f"{'SeasonalNaive':<28} sMAPE {s[0]:7.3f}  MASE {s[1]:6.3f}  OWA {s[2]:6.3f}")
    if args.model == "deepar":
        args._argv = argv
        return run_deepar(args, ids, train, test, s)
    results = []
    for seed in args.seeds:
        args.seed = seed
        model, tc = build(args)
        t0, c0 = time.perf_counter(), time.process_time()
        logs = model.fit_with_config(data, tc)
        t_fit, c_fit = time.perf_counter() - t0, time.process_time() - c0
        yhat = model.predict(data).values(model.alias)
        sm, ms, ow = m4_scores(test, yhat, train)
        results.append((sm, ms, ow, t_fit))
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{model.alias + f' seed={seed}':<28} sMAPE {sm:7.3f}  MASE {ms:6.3f}  OWA {ow:6.3f}  "
              f"train {t_fit:6.1f}s (CPU {c_fit:.1f}s, {logs.get_metric('step')} steps)  peak RSS {rss:.0f} MB")
        if args.torch:
            import torch

            torch.set_num_threads(nd.get_num_threads())
            c0 = time.process_time()
            yhat_t, t_t = torch_fit_predict(data, args, seed)
            c_t = time.process_time() - c0  # includes torch's predict (small next to training)
            smt, mst, owt = m4_scores(test, yhat_t, train)
            # CPU time is the fairer ratio on a shared machine (wall time includes waiting for the core)
            print(f"{'torch ' + args.model + f' seed={seed}':<28} sMAPE {smt:7.3f}  MASE {mst:6.3f}  OWA {owt:6.3f}  "
                  f"train {t_t:6.1f}s (CPU {c_t:.1f}s)  speed-up {t_t / t_fit:.2f}x wall, {c_t / c_fit:.2f}x CPU")
    if len(results) > 1:
        r = np.array(results)
        print(f"{'mean over seeds':<28} sMAPE {r[:, 0].mean():7.3f}  MASE {r[:, 1].mean():6.3f}  "
              f"OWA {r[:, 2].mean():6.3f} (min {r[:, 2].min():.3f}, max {r[:, 2].max():.3f})")
    print("command:", " ".join([os.path.basename(sys.executable), "bench/m4.py"] + (argv or sys.argv[1:])))


if __name__ == "__main__":
    main()
