"""GRU layer kernels alone, per-call thread CPU time (robust on a shared VM), 1 thread, float32.

    PYTHONPATH=python python3 bench/gru_cpu_time.py [--torch] [--reps 7] [--only B,T,I,H ...]

Each configuration is one layer (I = H is the second layer of a two-layer stack). Median of --reps calls of
F.gru_forward and F.gru_backward (dy on every step; dx computed when I = H, as for the second layer of
bench/rnn.py's two-layer stacks).
GFLOP/s count 2*B*T*(I+H)*3H for the forward and twice that for the backward.
--torch: also times torch.nn.GRU (one layer, same weights, torch.set_num_threads(1)) forward under no_grad
and forward + backward, alternated call by call with ours; "x" is torch time / our time.
"""
import argparse
import time

import numpy as np

import neurodivergent as nd
from neurodivergent.nn import functional as F

CONFIGS = [(256, 96, 1, 64), (32, 96, 1, 64), (256, 96, 1, 128), (256, 96, 8, 256), (32, 168, 1, 256),
           (256, 24, 128, 128), (256, 96, 256, 256), (256, 24, 256, 256)]

ap = argparse.ArgumentParser()
ap.add_argument("--torch", action="store_true")
ap.add_argument("--reps", type=int, default=7)
ap.add_argument("--only", nargs="*", default=None, help="B,T,I,H tuples")
args = ap.parse_args()
configs = [tuple(int(v) for v in s.split(",")) for s in args.only] if args.only else CONFIGS

nd.set_num_threads(1)
if args.torch:
    import torch
    torch.set_num_threads(1)
rng = np.random.default_rng(0)
for (B, T, I, H) in configs:
    x = rng.normal(size=(B, T, I)).astype(np.float32)
    w_ih = (rng.normal(size=(3 * H, I)) * 0.1).astype(np.float32)
    w_hh = (rng.normal(size=(3 * H, H)) * 0.1).astype(np.float32)
    b = np.zeros(3 * H, np.float32)
    dy = np.ones((B, T, H), np.float32)
    fl = 2 * B * T * (I + H) * 3 * H
    fw, bw, tf, tb = [], [], [], []
    if args.torch:
        mod = torch.nn.GRU(I, H, batch_first=True)
        with torch.no_grad():
            mod.weight_ih_l0.copy_(torch.from_numpy(w_ih))
            mod.weight_hh_l0.copy_(torch.from_numpy(w_hh))
        xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)
        xg = xt.clone().requires_grad_(I == H)
    for r in range(args.reps):
        c = time.thread_time(); o = F.gru_forward(x, w_ih, w_hh, b, b); fw.append(time.thread_time() - c)
        c = time.thread_time(); g = F.gru_backward(o.cache, dy, need_dx=I == H); bw.append(time.thread_time() - c)
        if args.torch:
            c = time.thread_time()
            with torch.no_grad():
                mod(xt)
            tf.append(time.thread_time() - c)
            c = time.thread_time()
            yt = mod(xg)[0]
            yt.backward(dyt)
            tb.append(time.thread_time() - c)
            mod.zero_grad()
    f, bb = np.median(fw), np.median(bw)
    line = (f"B={B} T={T} I={I} H={H}: fwd {f*1e3:.1f} ms {fl/f/1e9:.1f} GF/s  bwd {bb*1e3:.1f} ms "
            f"{2*fl/bb/1e9:.1f} GF/s  fwd+bwd {(f+bb)*1e3:.1f} ms {3*fl/(f+bb)/1e9:.1f} GF/s")
    if args.torch:
        t1, t2 = np.median(tf), np.median(tb)
        line += f" | torch fwd {t1*1e3:.1f} ms ({t1/f:.2f}x) fwd+bwd {t2*1e3:.1f} ms ({t2/(f+bb):.2f}x)"
    print(line, flush=True)
