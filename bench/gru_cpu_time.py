"""GRU layer kernels alone, per-call thread CPU time (robust on a shared VM), 1 thread, float32.

    PYTHONPATH=python python3 bench/gru_cpu_time.py [--torch] [--reps 7] [--only B,T,I,H ...]
    PYTHONPATH=python python3 bench/gru_cpu_time.py \
        --variants "old:ND_GRU_PANEL_BYTES=1000000000,ND_GRU_SLIVER_BYTES=1000000000;new:"

Each configuration is one layer (I = H is the second layer of a two-layer stack). Median of --reps calls of
F.gru_forward and F.gru_backward (dy on every step; dx computed when I = H, as for the second layer of
bench/rnn.py's two-layer stacks).
GFLOP/s count 2*B*T*(I+H)*3H for the forward and twice that for the backward.
--torch: also times torch.nn.GRU (one layer, same weights, torch.set_num_threads(1)) forward under no_grad
and forward + backward, alternated call by call with ours; "x" is torch time / our time.
--variants "name:VAR=v,VAR=v;name2:...": A/B inside one process. The kernels read their tuning variables
(ND_GRU_SLIVER_BYTES, ND_GRU_PANEL_BYTES: the backward step product's blocking) on every call; each
variant's variables are set before its calls, the variants alternate call by call, and min / median of
each are printed (forward and backward). The pseudo-variable POOL=0 gives that variant functional_gru's
allocation from before its array pool (fresh arrays every call: np.empty for y and dx, 64-byte aligned
zeros for the cache), e.g.
    --variants "pool:;fresh:POOL=0"
--train: whole training steps of bench/rnn.py instead (its `Ours` and `Torch`: forward of every layer,
backward into views of one flat gradient buffer, Adam; torch.nn.GRU with num_layers=L), configurations
B,T,I,H,L; each variant's step and torch's step alternate (our variants in reversed order every other
round), thread CPU time, min / median per side and "x" = torch median / our median, e.g.
    PYTHONPATH=python python3 bench/gru_cpu_time.py --train --reps 5 --only 256,24,1,64,2 \
        --variants "pool:;fresh:POOL=0"
"""
import argparse
import os
import time

import numpy as np

import neurodivergent as nd
from neurodivergent.nn import functional as F
from neurodivergent.nn import _buffers
from neurodivergent.nn import functional_gru as FG

from _variants import apply_env, parse_variants  # bench/ is the script's directory



def fresh_take(kind, shape, dtype, zero=False, align=False):
    """functional_gru's allocation before the pool (commit cfa5b8f): every call a fresh array."""
    if kind == "gru.gates":
        return _buffers.aligned(shape, dtype, True)[2]
    return np.empty(shape, dtype)

CONFIGS = [(256, 96, 1, 64), (32, 96, 1, 64), (256, 96, 1, 128), (256, 96, 8, 256), (32, 168, 1, 256),
           (256, 24, 128, 128), (256, 96, 256, 256), (256, 24, 256, 256)]

ap = argparse.ArgumentParser()
ap.add_argument("--torch", action="store_true")
ap.add_argument("--reps", type=int, default=7)
ap.add_argument("--only", nargs="*", default=None, help="B,T,I,H tuples")
ap.add_argument("--variants", default=None, help='"name:VAR=v,VAR=v;name2:..." (see the docstring)')
ap.add_argument("--train", action="store_true", help="whole training steps, configurations B,T,I,H,L")
args = ap.parse_args()
configs = [tuple(int(v) for v in s.split(",")) for s in args.only] if args.only else CONFIGS
if args.train and not args.only:
    configs = [(256, 24, 1, 64, 2), (256, 96, 1, 256, 2)]

nd.set_num_threads(1)
if args.torch:
    import torch
    torch.set_num_threads(1)


def make(B, T, I, H, rng):
    x = rng.normal(size=(B, T, I)).astype(np.float32)
    w_ih = (rng.normal(size=(3 * H, I)) * 0.1).astype(np.float32)
    w_hh = (rng.normal(size=(3 * H, H)) * 0.1).astype(np.float32)
    return x, w_ih, w_hh, np.zeros(3 * H, np.float32), np.ones((B, T, H), np.float32)


def timed(f):
    c = time.thread_time()
    r = f()
    return time.thread_time() - c, r


def run_variants(spec):
    variants, keys = parse_variants(spec)
    rng = np.random.default_rng(0)
    for (B, T, I, H) in configs:
        x, w_ih, w_hh, b, dy = make(B, T, I, H, rng)
        fl = 2 * B * T * (I + H) * 3 * H
        fw = {n: [] for n, _ in variants}
        bw = {n: [] for n, _ in variants}
        for _ in range(args.reps):
            for n, d in variants:
                set_variant(d, keys)
                tf, o = timed(lambda: F.gru_forward(x, w_ih, w_hh, b, b))
                tb, _ = timed(lambda: F.gru_backward(o.cache, dy, need_dx=I == H))
                fw[n].append(tf)
                bw[n].append(tb)
        set_variant({}, keys)
        print(f"B={B} T={T} I={I} H={H}:", flush=True)
        for n, _ in variants:
            f, g = np.array(fw[n]), np.array(bw[n])
            print(f"  {n:>10}: fwd min {f.min()*1e3:.1f} med {np.median(f)*1e3:.1f} ms ({fl/np.median(f)/1e9:.1f} GF/s)"
                  f"  bwd min {g.min()*1e3:.1f} med {np.median(g)*1e3:.1f} ms ({2*fl/np.median(g)/1e9:.1f} GF/s)",
                  flush=True)


def run_plain():
    rng = np.random.default_rng(0)
    for (B, T, I, H) in configs:
        x, w_ih, w_hh, b, dy = make(B, T, I, H, rng)
        fl = 2 * B * T * (I + H) * 3 * H
        fw, bw, tf, tb = [], [], [], []
        if args.torch:
            mod = torch.nn.GRU(I, H, batch_first=True)
            with torch.no_grad():
                mod.weight_ih_l0.copy_(torch.from_numpy(w_ih))
                mod.weight_hh_l0.copy_(torch.from_numpy(w_hh))
            xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)
            xg = xt.clone().requires_grad_(I == H)
        for _ in range(args.reps):
            t, o = timed(lambda: F.gru_forward(x, w_ih, w_hh, b, b))
            fw.append(t)
            bw.append(timed(lambda: F.gru_backward(o.cache, dy, need_dx=I == H))[0])
            if args.torch:
                def tfwd():
                    with torch.no_grad():
                        mod(xt)
                tf.append(timed(tfwd)[0])
                tb.append(timed(lambda: mod(xg)[0].backward(dyt))[0])
                mod.zero_grad()
        f, bb = np.median(fw), np.median(bw)
        line = (f"B={B} T={T} I={I} H={H}: fwd {f*1e3:.1f} ms {fl/f/1e9:.1f} GF/s  bwd {bb*1e3:.1f} ms "
                f"{2*fl/bb/1e9:.1f} GF/s  fwd+bwd {(f+bb)*1e3:.1f} ms {3*fl/(f+bb)/1e9:.1f} GF/s")
        if args.torch:
            t1, t2 = np.median(tf), np.median(tb)
            line += f" | torch fwd {t1*1e3:.1f} ms ({t1/f:.2f}x) fwd+bwd {t2*1e3:.1f} ms ({t2/(f+bb):.2f}x)"
        print(line, flush=True)


def set_variant(d, keys):
    apply_env({k: v for k, v in d.items() if k != "POOL"}, keys)
    if d.get("POOL") == "0":
        FG._POOL.take = fresh_take  # shadows the method for this variant's calls
    else:
        FG._POOL.__dict__.pop("take", None)


def run_train(spec):
    import sys
    import torch

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import rnn

    torch.set_num_threads(1)
    variants, keys = parse_variants(spec or "ours:")
    for (B, T, I, H, L) in configs:
        _, mod, x, dy = rnn.build("gru", B, T, I, H, L)
        ours = rnn.Ours(F, "gru", mod, L)
        tor = rnn.Torch(torch, mod)
        xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)
        fl = 3 * rnn.flops_fwd("gru", B, T, I, H, L)
        times = {n: [] for n, _ in variants}
        times["torch"] = []
        ours.train_step(x, dy)
        tor.train_step(xt, dyt)
        for rep in range(args.reps):
            # our variants in reversed order every other round, then torch: each variant follows torch's step
            # (which leaves the caches cold) equally often
            for n, d in (variants if rep % 2 == 0 else variants[::-1]) + [("torch", None)]:
                set_variant(d or {}, keys)
                f = (lambda: tor.train_step(xt, dyt)) if d is None else (lambda: ours.train_step(x, dy))
                times[n].append(timed(f)[0])
        set_variant({}, keys)
        tm = np.median(times["torch"])
        print(f"B={B} T={T} I={I} H={H} L={L} train step:", flush=True)
        for n in list(times):
            v = np.array(times[n])
            x_ = f"  x {tm / np.median(v):.2f}" if n != "torch" else ""
            print(f"  {n:>10}: min {v.min()*1e3:.1f} med {np.median(v)*1e3:.1f} ms ({fl/np.median(v)/1e9:.1f} GF/s){x_}",
                  flush=True)


if args.train:
    run_train(args.variants)
elif args.variants:
    run_variants(args.variants)
else:
    run_plain()
