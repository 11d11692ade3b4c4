"""Where one Transformer encoder layer's time goes (1 thread): every `_core` call of the layer wrapped with
thread CPU time, plus each linear product of the layer against torch at the same shape (GFLOP/s).

    PYTHONPATH=python python3 bench/layer_profile.py --B 32 --T 24 --D 128 [--train] [--calls 40]
    PYTHONPATH=python python3 bench/layer_profile.py --B 32 --T 24 --D 128 --linears   # per-linear ours vs torch

Minimum-over-trials style: the kernel shares are medians over calls; the linears are min of alternated trials.
"""
import argparse
import collections
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def profile_layer(B, T, D, train, calls):
    import torch

    torch.set_num_threads(1)
    import neurodivergent as nd
    from neurodivergent._backend import core as C
    from attention import LayerPair
    from neurodivergent.nn import functional as F

    nd.set_num_threads(1)
    pair = LayerPair(torch, F, B, T, D)
    acc = collections.defaultdict(float)
    names = [n for n in dir(C) if not n.startswith("_") and callable(getattr(C, n))]
    orig = {n: getattr(C, n) for n in names}

    def wrap(n, f):
        def g(*a, **k):
            t0 = time.thread_time()
            r = f(*a, **k)
            acc[n] += time.thread_time() - t0
            return r
        return g

    fn = pair.ours_train if train else pair.ours_fwd
    for _ in range(3):
        fn()
    tot, per = [], collections.defaultdict(list)
    for n in names:
        setattr(C, n, wrap(n, orig[n]))
    try:
        for _ in range(calls):
            acc.clear()
            t0 = time.thread_time()
            fn()
            tot.append(time.thread_time() - t0)
            for k, v in acc.items():
                per[k].append(v)
    finally:
        for n in names:
            setattr(C, n, orig[n])
    # bare (unwrapped) time
    bare = []
    for _ in range(calls):
        t0 = time.thread_time()
        fn()
        bare.append(time.thread_time() - t0)
    m = statistics.median(tot)
    print(f"B={B} T={T} D={D} {'fwd+bwd' if train else 'fwd'}: wrapped median {m*1e3:.3f} ms, bare median "
          f"{statistics.median(bare)*1e3:.3f} ms (min {min(bare)*1e3:.3f})")
    rows = sorted(((statistics.median(v), k) for k, v in per.items()), reverse=True)
    s = 0
    for v, k in rows:
        s += v
        print(f"  {k:32s} {v*1e3:8.3f} ms {v/m:6.1%}")
    print(f"  {'python / numpy (rest)':32s} {(m-s)*1e3:8.3f} ms {(m-s)/m:6.1%}")


def linears(B, T, D, trials):
    import torch

    torch.set_num_threads(1)
    import neurodivergent as nd
    from neurodivergent._backend import core as C

    nd.set_num_threads(1)
    rng = np.random.default_rng(0)
    N = B * T
    shapes = [("in_proj", D, 3 * D), ("out_proj+res", D, D), ("linear1", D, 4 * D), ("linear2 gelu+res", 4 * D, D)]
    for name, I, O in shapes:
        x = rng.standard_normal((N, I)).astype(np.float32)
        w = (rng.standard_normal((O, I)) / np.sqrt(I)).astype(np.float32)
        b = rng.standard_normal(O).astype(np.float32)
        r = rng.standard_normal((N, O)).astype(np.float32)
        y = np.empty((N, O), np.float32)
        tx, tw, tb, tr = map(torch.from_numpy, (x, w, b, r))
        if name.startswith("linear2"):
            ours = lambda: C.linear_gelu_forward(y, x, w, b, r)
            theirs = lambda: torch.add(tr, torch.nn.functional.linear(torch.nn.functional.gelu(tx), tw, tb))
            prod = lambda: C.linear_forward(y, x, w, b)
            tprod = lambda: torch.nn.functional.linear(tx, tw, tb)
        elif "res" in name:
            ours = lambda: C.linear_residual_forward(y, x, w, b, r)
            theirs = lambda: torch.add(tr, torch.nn.functional.linear(tx, tw, tb))
            prod = lambda: C.linear_forward(y, x, w, b)
            tprod = lambda: torch.nn.functional.linear(tx, tw, tb)
        else:
            ours = lambda: C.linear_forward(y, x, w, b)
            theirs = lambda: torch.nn.functional.linear(tx, tw, tb)
            prod, tprod = ours, theirs
        fns = {"ours": ours, "torch": theirs, "ours prod": prod, "torch prod": tprod}
        best = {k: float("inf") for k in fns}
        reps = max(1, int(2e8 / (2 * N * I * O)))
        with torch.no_grad():
            for _ in range(trials):
                for k, f in fns.items():
                    f()
                    t0 = time.thread_time()
                    for _ in range(reps):
                        f()
                    best[k] = min(best[k], (time.thread_time() - t0) / reps)
        fl = 2.0 * N * I * O
        print(f"{name:18s} N={N} K={I} N_out={O}: " + "  ".join(
            f"{k} {v*1e3:.3f} ms ({fl/v/1e9:.0f} GF/s)" for k, v in best.items()), flush=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--B", type=int, default=32)
    p.add_argument("--T", type=int, default=24)
    p.add_argument("--D", type=int, default=128)
    p.add_argument("--train", action="store_true")
    p.add_argument("--calls", type=int, default=40)
    p.add_argument("--linears", action="store_true")
    p.add_argument("--trials", type=int, default=7)
    a = p.parse_args()
    if a.linears:
        linears(a.B, a.T, a.D, a.trials)
    else:
        profile_layer(a.B, a.T, a.D, a.train, a.calls)
