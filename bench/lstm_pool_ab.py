"""LSTM forward with its small outputs pooled (functional_lstm._take_out) or not, one process, calls alternated.

    PYTHONPATH=python python3 bench/lstm_pool_ab.py --reps 41 32,96,1,64 32,24,8,64

Per shape B,T,I,H: thread CPU time of F.lstm_forward (1 thread, float32) with functional_lstm._POOL_FROM_BYTES at
its default ("pooled") and disabled ("fresh": arrays under the pool's 1 MiB minimum come from np.empty, as before
the seventh pass), alternated call by call (order flipped every repetition); medians, minima, the ratio of the
medians and the paired ratio (median over repetitions of the two calls' ratio). --train adds the backward (dx on)
to each timed call.
"""
import argparse
import time

import numpy as np

import neurodivergent as nd
from neurodivergent.nn import functional as F
from neurodivergent.nn import functional_lstm as fl


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("shapes", nargs="+")
    ap.add_argument("--reps", type=int, default=21)
    ap.add_argument("--train", action="store_true")
    args = ap.parse_args()
    nd.set_num_threads(1)
    rng = np.random.default_rng(0)
    default = fl._POOL_FROM_BYTES
    variants = {"fresh": 1 << 62, "pooled": default}
    for cfg in args.shapes:
        B, T, I, H = map(int, cfg.split(","))
        x = rng.normal(size=(B, T, I)).astype(np.float32)
        w = [(0.1 * rng.standard_normal(s)).astype(np.float32) for s in ((4 * H, I), (4 * H, H), (4 * H,), (4 * H,))]
        dy = np.ones((B, T, H), np.float32)
        res = {k: [] for k in variants}
        for r in range(args.reps):
            for k in (list(variants) if r % 2 == 0 else list(variants)[::-1]):
                fl._POOL_FROM_BYTES = variants[k]
                a = time.thread_time()
                o = F.lstm_forward(x, *w)
                if args.train:
                    g = F.lstm_backward(o.cache, dy, need_dx=True)
                    del g
                res[k].append(time.thread_time() - a)
                del o
        fl._POOL_FROM_BYTES = default
        f, p = np.array(res["fresh"]), np.array(res["pooled"])
        print(f"B={B} T={T} I={I} H={H}{' fwd+bwd' if args.train else ' fwd'}: fresh {1e3*np.median(f):.3f} ms "
              f"(min {1e3*f.min():.3f})  pooled {1e3*np.median(p):.3f} ms (min {1e3*p.min():.3f})  "
              f"pooled/fresh {np.median(p)/np.median(f):.3f} paired {np.median(p/f):.3f}", flush=True)


if __name__ == "__main__":
    main()
