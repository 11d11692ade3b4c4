"""Where an LSTM training step goes: bench/rnn.py's step (per layer F.lstm_forward, F.lstm_backward into views
of one flat gradient buffer, F.adam_step) split into pieces with thread CPU time, and torch.nn.LSTM's
forward (with autograd) / backward / Adam + zero_grad in the same loop (calls alternated), 1 thread.

    PYTHONPATH=python python3 bench/lstm_bwd_time.py 32,168,8,64,2 256,24,1,64,2 --reps 7

Shapes are B,T,I,H,L. Prints medians (and minima) of --reps steps after one warm-up, in ms.

    PYTHONPATH=python python3 bench/lstm_bwd_time.py --variants "gemm:ND_LSTM_DW_ROWS_MAXN=0;rows:" 32,168,64,64,2

--variants "name:VAR=v,...;name2:..." instead times ONE layer's backward (F.lstm_backward, dx wanted when L > 1,
i.e. the shape is a second layer's) under environment settings its kernel reads per call (ND_LSTM_DW_ROWS_MAXN),
alternated call by call in one process (order reversed every other repetition; torch not used): medians, minima,
ratio to the first variant, the paired ratio, and whether every gradient is bitwise equal to the first variant's.
"""
import sys, time, statistics, os
import numpy as np
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "python"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import neurodivergent as nd
import neurodivergent.nn.functional as F
from _variants import apply_env, parse_variants
nd.set_num_threads(1)
args = [a for a in sys.argv[1:] if not a.startswith("--")]
reps = 7
if "--reps" in sys.argv:
    reps = int(sys.argv[sys.argv.index("--reps") + 1]); args.remove(str(reps))
tt = time.thread_time
if "--variants" in sys.argv:
    spec = sys.argv[sys.argv.index("--variants") + 1]; args.remove(spec)
    variants, keys = parse_variants(spec)
    names = [n for n, _ in variants]
    print("| B, T, I, H (dx) | " + " | ".join(f"bwd {n} ms (min)" for n in names) + " | " +
          " | ".join(f"{n}/{names[0]} (paired)" for n in names[1:]) + " | bitwise equal |")
    print("|---" * (2 + 2 * len(names) - 1) + "|")
    for cfg in args:
        B, T, I, H, L = map(int, cfg.split(","))
        rng = np.random.default_rng(0)
        k = 1.0 / np.sqrt(H)
        w = [rng.uniform(-k, k, s).astype(np.float32) for s in ((4 * H, I), (4 * H, H), (4 * H,), (4 * H,))]
        x = rng.standard_normal((B, T, I)).astype(np.float32)
        dy = rng.standard_normal((B, T, H)).astype(np.float32)
        out = F.lstm_forward(x, *w)
        ts = [[] for _ in variants]; res = [None] * len(variants)
        for r in range(reps + 1):
            for v in (range(len(variants)) if r % 2 == 0 else reversed(range(len(variants)))):
                apply_env(variants[v][1], keys)
                a = tt(); g = F.lstm_backward(out.cache, dy, need_dx=L > 1); e = tt() - a
                if r: ts[v].append(e)
                res[v] = tuple(np.array(a_, copy=True) for a_ in g if a_ is not None)
        apply_env({}, keys)
        med = [statistics.median(t) * 1e3 for t in ts]; mn = [min(t) * 1e3 for t in ts]
        ratios = [f"{med[v] / med[0]:.3f} ({statistics.median([a / b for a, b in zip(ts[v], ts[0])]):.3f})"
                  for v in range(1, len(variants))]
        same = all(all(np.array_equal(a, b) for a, b in zip(res[0], res[v])) for v in range(1, len(variants)))
        print(f"| {B}, {T}, {I}, {H}{' (dx)' if L > 1 else ''} | " + " | ".join(f"{m:.2f} ({n:.2f})" for m, n in zip(med, mn)) +
              " | " + " | ".join(ratios) + f" | {same} |", flush=True)
    sys.exit(0)
import torch
torch.set_num_threads(1)
for cfg in args:
    B, T, I, H, L = map(int, cfg.split(","))
    torch.manual_seed(0)
    mod = torch.nn.LSTM(I, H, num_layers=L, batch_first=True)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    dy = rng.standard_normal((B, T, H)).astype(np.float32)
    ts = []
    for l in range(L):
        for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            ts.append(getattr(mod, f"{n}_l{l}").detach().numpy().copy())
    n = sum(t.size for t in ts)
    p = np.empty(n, np.float32); g = np.zeros(n, np.float32); m = np.zeros(n, np.float32); v = np.zeros(n, np.float32)
    pv, gv, o = [], [], 0
    for t in ts:
        p[o:o+t.size] = t.ravel(); pv.append(p[o:o+t.size].reshape(t.shape)); gv.append(g[o:o+t.size].reshape(t.shape)); o += t.size
    opt = torch.optim.Adam(mod.parameters(), lr=1e-3)
    xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)
    res = {}
    def rec(k, val): res.setdefault(k, []).append(val)
    step = 0
    for r in range(reps + 1):
        # ours
        t0 = tt(); caches = []; h = x
        for l in range(L):
            a = tt(); out = F.lstm_forward(h, *pv[4*l:4*l+4]); rec(f"o fwd L{l}", tt() - a)
            caches.append(out.cache); h = out.y
        a = tt(); g.fill(0.0); rec("o zero", tt() - a)
        d = dy
        for l in range(L - 1, -1, -1):
            gw = gv[4*l:4*l+4]
            a = tt(); gr = F.lstm_backward(caches[l], d, need_dx=l > 0, dw_ih=gw[0], dw_hh=gw[1], db_ih=gw[2], db_hh=gw[3])
            rec(f"o bwd L{l}", tt() - a); d = gr.dx
        step += 1
        a = tt(); F.adam_step(p, g, m, v, step, lr=1e-3); rec("o adam", tt() - a)
        rec("o TOTAL", tt() - t0)
        del caches, out, gr, d, h
        # torch
        t0 = tt()
        y = mod(xt)[0]; a = tt(); rec("t fwd(grad)", a - t0)
        y.backward(dyt); b = tt(); rec("t bwd", b - a)
        opt.step(); opt.zero_grad(); rec("t adam+zero", tt() - b)
        rec("t TOTAL", tt() - t0)
        del y
    fl = 0
    for l in range(L): fl += 2.0 * B * T * ((I if l == 0 else H) + H) * 4 * H
    print(f"== B={B} T={T} I={I} H={H} L={L}  (median of {reps} after 1 warm-up, thread CPU ms)")
    for k, vals in res.items():
        vals = vals[1:]
        print(f"  {k:14s} {1e3*statistics.median(vals):9.2f}  min {1e3*min(vals):9.2f}")
    o_, t_ = statistics.median(res['o TOTAL'][1:]), statistics.median(res['t TOTAL'][1:])
    print(f"  ratio torch/ours train {t_/o_:.2f}; ours {3*fl/o_/1e9:.1f} GF/s torch {3*fl/t_/1e9:.1f}")
