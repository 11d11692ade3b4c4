"""Thread-CPU-time probes of the Transformer layer's feed-forward kernels (1 thread), for A/B work on a loaded VM.

    PYTHONPATH=python python3 bench/layer_time.py gelu   # ns per value: ff_gelu_forward / ff_gelu_backward /
                                                         # ff_gelu_forward_grad, and torch's F.gelu (if installed)
    PYTHONPATH=python python3 bench/layer_time.py ffn2   # the second feed-forward linear (GELU inside), forward +
                                                         # backward as the tape runs it: keeping GELU(z), GELU'(z)
                                                         # in the forward ("keep") vs recomputing them ("recompute")

Every number is the minimum over alternated trials (the two variants, or ours and torch's, interleaved in one
process), which is what survives a shared 2-core VM best; compare builds by running the script once per build.
"""
import argparse
import time

import numpy as np

import neurodivergent as nd
from neurodivergent._backend import core as C


def best_of(fns, reps, trials):
    best = {k: float("inf") for k in fns}
    for _ in range(trials):
        for k, f in fns.items():
            f()
            a = time.thread_time()
            for _ in range(reps):
                f()
            best[k] = min(best[k], (time.thread_time() - a) / reps)
    return best


def gelu(trials):
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        torch = None
    rng = np.random.default_rng(0)
    for n in (393216, 1 << 22):
        x = rng.standard_normal(n).astype(np.float32)
        dy, y, d, dx = np.ones_like(x), np.empty_like(x), np.empty_like(x), np.empty_like(x)
        fns = {"forward": lambda: C.ff_gelu_forward(y, x), "backward": lambda: C.ff_gelu_backward(dx, dy, x),
               "forward_grad": lambda: C.ff_gelu_forward_grad(y, d, x)}
        if torch is not None:
            tx = torch.from_numpy(x)
            fns["torch F.gelu"] = lambda: torch.nn.functional.gelu(tx)
        best = best_of(fns, max(2, int(4e6 // n)), trials)
        print(f"n={n}: " + "  ".join(f"{k} {v / n * 1e9:.2f}" for k, v in best.items()) + " ns/value", flush=True)


def ffn2(trials):
    rng = np.random.default_rng(0)
    for N, dm in [(768, 128), (768, 64), (3072, 128), (10752, 64)]:
        I, O = 4 * dm, dm
        z = rng.standard_normal((N, I)).astype(np.float32)
        w = (rng.standard_normal((O, I)) / np.sqrt(I)).astype(np.float32)
        b, r = np.zeros(O, np.float32), rng.standard_normal((N, O)).astype(np.float32)
        dy = rng.standard_normal((N, O)).astype(np.float32)
        y, dw, db = np.empty((N, O), np.float32), np.zeros((O, I), np.float32), np.zeros(O, np.float32)

        def recompute():
            C.linear_gelu_forward(y, z, w, b, r)
            C.linear_gelu_backward(np.empty_like(z), dw, db, dy, z, w)

        def keep():
            g, d = np.empty_like(z), np.empty_like(z)
            C.linear_gelu_forward(y, z, w, b, r, g, d)
            C.linear_gated_backward(d, dw, db, dy, g, w)

        best = best_of({"recompute": recompute, "keep": keep}, max(1, int(3e5 // N)), trials)
        print(f"N={N} d_model={dm} (I={I}, O={O}): recompute {best['recompute'] * 1e3:.3f} ms  keep "
              f"{best['keep'] * 1e3:.3f} ms  ({best['keep'] / best['recompute'] - 1:+.1%})", flush=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["gelu", "ffn2"])
    p.add_argument("--trials", type=int, default=15)
    a = p.parse_args()
    nd.set_num_threads(1)
    gelu(a.trials) if a.what == "gelu" else ffn2(a.trials)
