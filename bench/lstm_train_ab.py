"""Two _core builds, one process: bench/rnn.py's LSTM training step (forward of every layer, the gradient buffer
zeroed, backward of every layer into views of ONE flat gradient buffer, dx passed down) run by each build in turn,
call by call (order flipped every repetition), 1 thread (--threads N: N), thread CPU time per piece (with N > 1:
wall time, time.perf_counter, since the workers' CPU time is not the calling thread's).

    PYTHONPATH=python python3 bench/lstm_train_ab.py OLD.so NEW.so 32,168,8,64,2 256,24,8,64,2 --reps 9

Shapes are B,T,I,H,L. Prints per piece the medians of both builds, new/old and the paired ratio (median over
repetitions of the two back-to-back calls), and whether the two builds' parameter gradients are bitwise equal.
What bench/lstm_cpu_time.py --inproc does for one layer with fresh output arrays, here in the training step's
setting (gradients accumulated into a reused buffer, the second layer's dx feeding the first).
"""
import importlib.util
import sys
import time

import numpy as np


def load(name, path, threads):
    spec = importlib.util.spec_from_file_location(name + "._core", path)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    m.set_num_threads(threads)
    return m


def main():
    args = [a for a in sys.argv[1:]]
    reps = 9
    if "--reps" in args:
        i = args.index("--reps")
        reps = int(args[i + 1])
        del args[i:i + 2]
    threads = 1
    if "--threads" in args:
        i = args.index("--threads")
        threads = int(args[i + 1])
        del args[i:i + 2]
    old_so, new_so, shapes = args[0], args[1], args[2:]
    mods = (load("nd_old", old_so, threads), load("nd_new", new_so, threads))
    tt = time.thread_time if threads == 1 else time.perf_counter
    for cfg in shapes:
        B, T, I, H, L = map(int, cfg.split(","))
        G = 4 * H
        rng = np.random.default_rng(0)
        k = 1.0 / np.sqrt(H)
        shapes_l = []
        for l in range(L):
            il = I if l == 0 else H
            shapes_l += [(G, il), (G, H), (G,), (G,)]
        params = [rng.uniform(-k, k, s).astype(np.float32) for s in shapes_l]
        x = rng.standard_normal((B, T, I)).astype(np.float32)
        dy = rng.standard_normal((B, T, H)).astype(np.float32)
        n = sum(p.size for p in params)
        state = []
        for _ in mods:
            g = np.zeros(n, np.float32)
            views, o = [], 0
            for p in params:
                views.append(g[o:o + p.size].reshape(p.shape))
                o += p.size
            outs = [tuple(np.empty((B, T, m), np.float32) for m in (H, G, H)) for _ in range(L)]
            dxs = [np.empty((B, T, I if l == 0 else H), np.float32) for l in range(L)]
            state.append((g, views, outs, dxs))
        ts = ({}, {})
        for r in range(reps + 1):
            for kk in ((0, 1) if r % 2 == 0 else (1, 0)):
                m = mods[kk]
                g, views, outs, dxs = state[kk]
                rec = ts[kk]
                t_all = tt()
                h = x
                for l in range(L):
                    y, gt, c = outs[l]
                    a = tt()
                    m.lstm_forward(y, gt, c, h, *params[4 * l:4 * l + 4], None, None, False)
                    if r:
                        rec.setdefault(f"fwd L{l}", []).append(tt() - a)
                    h = y
                g.fill(0.0)
                d = dy
                for l in range(L - 1, -1, -1):
                    y, gt, c = outs[l]
                    hin = x if l == 0 else outs[l - 1][0]
                    dh0, dc0 = np.empty((B, H), np.float32), np.empty((B, H), np.float32)
                    dx = dxs[l] if l > 0 else None
                    a = tt()
                    m.lstm_backward(dx, dh0, dc0, *views[4 * l:4 * l + 4], d, None, None, hin,
                                    params[4 * l], params[4 * l + 1], None, None, y, gt, c, False)
                    if r:
                        rec.setdefault(f"bwd L{l}", []).append(tt() - a)
                    d = dx
                if r:
                    rec.setdefault("total", []).append(tt() - t_all)
        same = np.array_equal(state[0][0], state[1][0])
        print(f"== B={B} T={T} I={I} H={H} L={L}: median of {reps} (ms), grads bitwise equal: {same}")
        print("| piece | old ms | new ms | new/old | paired |")
        print("|---|---|---|---|---|")
        for key in ts[0]:
            a, b = np.array(ts[0][key]), np.array(ts[1][key])
            print(f"| {key} | {np.median(a) * 1e3:.2f} | {np.median(b) * 1e3:.2f} | {np.median(b) / np.median(a):.3f} "
                  f"| {np.median(b / a):.3f} |", flush=True)


if __name__ == "__main__":
    main()
