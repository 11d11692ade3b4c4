"""A/B: LSTM / GRU training step (bench/rnn.py's Ours) with dx (and GRU y) from the pool's small path vs fresh.
Usage: PYTHONPATH=python python3 bench/pool_small_ab.py (1 thread, process CPU time, 15 alternated steps)."""
import sys, time, math, statistics, numpy as np
import os
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python")); sys.path.insert(0, os.path.join(ROOT, "bench"))
import neurodivergent.nn.functional as F
import neurodivergent.nn.functional_lstm as FL
import neurodivergent.nn.functional_gru as FG
from neurodivergent._backend import core
import rnn
core.set_num_threads(1)
real = FL._POOL
class Wrap:
    on = False
    min_bytes = real.min_bytes
    def take(self, kind, shape, dtype, **kw):
        dt = np.dtype(dtype); n = math.prod(shape)
        if self.on and kind in ("lstm.dx", "gru.dx", "gru.y") and (128 << 10) <= n * dt.itemsize < real.min_bytes:
            m = -(-real.min_bytes // dt.itemsize)
            return real.take(kind + ".small", (m,), dt)[:n].reshape(shape)
        return real.take(kind, shape, dtype, **kw)
w = Wrap(); FL._POOL = w; FG._POOL = w
import torch
for cell, (B, T, I, H, L) in [("lstm", (32, 96, 8, 64, 2)), ("lstm", (32, 168, 8, 64, 2)), ("lstm", (256, 24, 8, 64, 2)),
                              ("gru", (32, 96, 8, 64, 2)), ("gru", (32, 24, 8, 128, 2))]:
    _, mod, x, dy = rnn.build(cell, B, T, I, H, L)
    ours = rnn.Ours(F, cell, mod, L)
    ts = {False: [], True: []}
    for r in range(15):
        for on in (False, True):
            w.on = on
            t0 = time.process_time(); ours.train_step(x, dy); ts[on].append(time.process_time() - t0)
    a, b = statistics.median(ts[False]), statistics.median(ts[True])
    print(f"{cell} B={B} T={T} I={I} H={H} L={L}: fresh {a*1e3:.2f} ms, pooled {b*1e3:.2f} ms, pooled/fresh {b/a:.3f}", flush=True)
