"""LSTM layer kernels alone, per-call thread CPU time (robust on a shared VM), 1 thread, float32.

    PYTHONPATH=python python3 bench/lstm_cpu_time.py                      # the default shapes
    PYTHONPATH=python python3 bench/lstm_cpu_time.py 256,96,256,256 32,96,1,64 --reps 9
    python3 bench/lstm_cpu_time.py --ab /tmp/old/python python --rounds 3 32,96,8,64   # two builds, A/B
    python3 bench/lstm_cpu_time.py --inproc /tmp/old/_core.so python/neurodivergent/_core*.so --reps 6 256,96,1,256

Shapes are B,T,I,H (I = H is a second layer's shape). GFLOP/s count 2*B*T*(I+H)*4H for the forward and
twice that for the backward (dy on every step, dx computed). Medians and minima of --reps calls (default
7), forward and backward alternated.

--ab DIR... compares builds (each DIR is put first on PYTHONPATH: a tree holding a `neurodivergent`
package with its _core): every round runs one process per DIR in turn, and the table gives, per shape
and build, the minimum over rounds of the per-process minima (the least disturbed call on a loaded VM).
On a shared VM the noise between processes is +-10-15% even so: compare against a shape / pass whose
code did not change (e.g. the forward when only the backward changed) to read the noise floor.

--inproc OLD.so NEW.so loads two _core builds into ONE process (under different package names) and
alternates their calls one by one (order flipped every repetition): both see the same machine state,
which on the loaded VM is far steadier than one process per build (whole processes were seen 30% apart
on identical code). Prints medians, new/old, and whether the two builds' outputs are bitwise equal.

--variants "old:VAR=v,VAR=v;new:VAR=v" runs ONE build's forward under environment settings that its kernels
read per call (ND_LSTM_FWD_PANEL_BYTES, ND_LSTM_FWD_STEP_GEMM, ND_LSTM_FWD_PACKED_B, ND_LSTM_FWD_STEP_CAT,
ND_LSTM_FWD_FUSE_I), alternated call by call in one process
(order reversed every other repetition, output arrays allocated once per variant): medians, minima, ratio to
the first variant, the paired ratio, and whether the outputs are bitwise equal to the first variant's.

--gemm adds, per shape, the ceiling: T calls of nd::gemm with the recurrent step's shape (B,H)@(H,4H).
"""
import argparse
import os
import re
import subprocess
import sys
import time

from _variants import apply_env, parse_variants  # bench/ is the script's directory

DEFAULT = [(256, 96, 1, 64), (32, 96, 1, 64), (256, 96, 1, 128), (256, 96, 8, 256), (32, 168, 1, 256),
           (256, 24, 64, 256), (256, 96, 256, 256)]


def measure(shapes, reps, fwd_only, gemm=False):
    import numpy as np

    import neurodivergent as nd
    from neurodivergent.nn import functional as F

    nd.set_num_threads(1)
    rng = np.random.default_rng(0)
    for (B, T, I, H) in shapes:
        x = rng.normal(size=(B, T, I)).astype(np.float32)
        w_ih = (rng.normal(size=(4 * H, I)) * 0.1).astype(np.float32)
        w_hh = (rng.normal(size=(4 * H, H)) * 0.1).astype(np.float32)
        b = np.zeros(4 * H, np.float32)
        dy = np.ones((B, T, H), np.float32)
        fl = 2 * B * T * (I + H) * 4 * H
        fw, bw = [], []
        for _ in range(reps):
            c = time.thread_time()
            o = F.lstm_forward(x, w_ih, w_hh, b, b)
            fw.append(time.thread_time() - c)
            if not fwd_only:
                c = time.thread_time()
                F.lstm_backward(o.cache, dy)
                bw.append(time.thread_time() - c)
            del o
        f, fm = np.median(fw), np.min(fw)
        line = f"B={B} T={T} I={I} H={H}: fwd {f * 1e3:.1f} ms (min {fm * 1e3:.3f}) {fl / f / 1e9:.1f} GF/s"
        if bw:
            bb, bm = np.median(bw), np.min(bw)
            line += f"  bwd {bb * 1e3:.1f} ms (min {bm * 1e3:.3f}) {2 * fl / bb / 1e9:.1f} GF/s"
        if gemm:
            line += gemm_ceiling(B, T, H, reps)
        print(line, flush=True)


def gemm_ceiling(B, T, H, reps):
    import numpy as np

    from neurodivergent._backend import core
    rng = np.random.default_rng(0)
    a = rng.standard_normal((B, H), dtype=np.float32)
    w = rng.standard_normal((H, 4 * H), dtype=np.float32)
    c = np.empty((B, 4 * H), np.float32)
    ts = []
    for _ in range(reps):
        t0 = time.thread_time()
        for _ in range(T):
            core.gemm(a, w, c, False, False, 1.0, 0.0)
        ts.append(time.thread_time() - t0)
    t = np.median(ts)
    return f"  | {T} x gemm({B},{4 * H},{H}) {t * 1e3:.1f} ms {2 * B * T * H * 4 * H / t / 1e9:.1f} GF/s"


def inproc(old_so, new_so, shapes, reps):
    import importlib.util

    import numpy as np

    def load(name, path):
        spec = importlib.util.spec_from_file_location(name + "._core", path)
        m = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(m)
        m.set_num_threads(1)
        return m

    mods = (load("nd_old", old_so), load("nd_new", new_so))
    rng = np.random.default_rng(0)
    print("| shape | fwd old ms | fwd new ms | new/old | paired | bwd old ms | bwd new ms | new/old | paired | bitwise equal |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (B, T, I, H) in shapes:
        G = 4 * H
        x = rng.normal(size=(B, T, I)).astype(np.float32)
        w_ih = (rng.normal(size=(G, I)) * 0.1).astype(np.float32)
        w_hh = (rng.normal(size=(G, H)) * 0.1).astype(np.float32)
        b = np.zeros(G, np.float32)
        dy = np.ones((B, T, H), np.float32)
        tf, tb, res = ([], []), ([], []), [None, None]
        for r in range(reps):
            for k in ((0, 1) if r % 2 == 0 else (1, 0)):
                m = mods[k]
                y, g, c = (np.empty((B, T, n), np.float32) for n in (H, G, H))
                t0 = time.thread_time()
                m.lstm_forward(y, g, c, x, w_ih, w_hh, b, b, None, None, False)
                tf[k].append(time.thread_time() - t0)
                dx, dh0, dc0 = np.empty((B, T, I), np.float32), np.empty((B, H), np.float32), np.empty((B, H), np.float32)
                dwi, dwh = np.zeros((G, I), np.float32), np.zeros((G, H), np.float32)
                dbi, dbh = np.zeros(G, np.float32), np.zeros(G, np.float32)
                t0 = time.thread_time()
                m.lstm_backward(dx, dh0, dc0, dwi, dwh, dbi, dbh, dy, None, None, x, w_ih, w_hh, None, None, y, g, c,
                                False)
                tb[k].append(time.thread_time() - t0)
                res[k] = (y, g, c, dx, dh0, dc0, dwi, dwh, dbi)
        same = all(np.array_equal(u, v) for u, v in zip(*res))
        f0, f1, b0, b1 = (np.median(v) * 1e3 for v in (tf[0], tf[1], tb[0], tb[1]))
        # paired: median over repetitions of new/old of the two calls made back to back
        pf = np.median(np.array(tf[1]) / np.array(tf[0]))
        pb = np.median(np.array(tb[1]) / np.array(tb[0]))
        print(f"| B={B} T={T} I={I} H={H} | {f0:.2f} | {f1:.2f} | {f1 / f0:.2f} | {pf:.2f} | {b0:.2f} | {b1:.2f} "
              f"| {b1 / b0:.2f} | {pb:.2f} | {same} |", flush=True)


def run_variants(spec, shapes, reps):
    import numpy as np

    from neurodivergent._backend import core
    core.set_num_threads(1)
    variants, keys = parse_variants(spec)
    rng = np.random.default_rng(0)
    names = [n for n, _ in variants]
    print("| shape | " + " | ".join(f"fwd {n} ms (min)" for n in names) + " | " +
          " | ".join(f"{n}/{names[0]} (paired)" for n in names[1:]) + " | bitwise equal |")
    print("|---" * (2 + 2 * len(names) - 1) + "|")
    for (B, T, I, H) in shapes:
        G = 4 * H
        x = rng.normal(size=(B, T, I)).astype(np.float32)
        w_ih = (rng.normal(size=(G, I)) * 0.1).astype(np.float32)
        w_hh = (rng.normal(size=(G, H)) * 0.1).astype(np.float32)
        b = (rng.normal(size=G) * 0.1).astype(np.float32)
        outs = [tuple(np.empty((B, T, n), np.float32) for n in (H, G, H)) for _ in variants]
        ts = [[] for _ in variants]
        for r in range(reps):
            for k in (range(len(variants)) if r % 2 == 0 else reversed(range(len(variants)))):
                apply_env(variants[k][1], keys)
                y, g, c = outs[k]
                t0 = time.thread_time()
                core.lstm_forward(y, g, c, x, w_ih, w_hh, b, b, None, None, False)
                ts[k].append(time.thread_time() - t0)
        apply_env({}, keys)
        med = [np.median(t) * 1e3 for t in ts]
        mn = [np.min(t) * 1e3 for t in ts]
        ratios = [f"{med[k] / med[0]:.3f} ({np.median(np.array(ts[k]) / np.array(ts[0])):.3f})"
                  for k in range(1, len(variants))]
        same = all(all(np.array_equal(u, v) for u, v in zip(outs[0], outs[k])) for k in range(1, len(variants)))
        print(f"| B={B} T={T} I={I} H={H} | " + " | ".join(f"{m:.2f} ({n:.2f})" for m, n in zip(med, mn)) +
              " | " + " | ".join(ratios) + f" | {same} |", flush=True)


def ab(dirs, rounds, shapes, reps, fwd_only):
    best = {}  # (shape, dir, kind) -> min ms
    order = []
    for r in range(rounds):
        for d in dirs:
            env = dict(os.environ, PYTHONPATH=os.path.abspath(d))
            cmd = [sys.executable, os.path.abspath(__file__), "--reps", str(reps)] + \
                  (["--fwd-only"] if fwd_only else []) + [",".join(map(str, s)) for s in shapes]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
            for line in out.splitlines():
                shape = line.split(":")[0]
                for kind in ("fwd", "bwd"):
                    m = re.search(kind + r" [\d.]+ ms \(min ([\d.]+)\)", line)
                    if m:
                        key = (shape, d, kind)
                        if key not in best:
                            order.append(key)
                        best[key] = min(best.get(key, float("inf")), float(m.group(1)))
    kinds = ["fwd"] + ([] if fwd_only else ["bwd"])
    print("| shape | " + " | ".join(f"{k} {d} ms" for k in kinds for d in dirs) + " |")
    print("|---" * (1 + len(kinds) * len(dirs)) + "|")
    for shape in dict.fromkeys(k[0] for k in order):
        print(f"| {shape} | " + " | ".join(f"{best[(shape, d, k)]:.3f}" for k in kinds for d in dirs) + " |")


ap = argparse.ArgumentParser()
ap.add_argument("shapes", nargs="*", help="B,T,I,H")
ap.add_argument("--reps", type=int, default=7)
ap.add_argument("--fwd-only", action="store_true")
ap.add_argument("--ab", nargs="+", metavar="DIR", help="compare builds (PYTHONPATH entries), alternated")
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--inproc", nargs=2, metavar=("OLD_SO", "NEW_SO"), help="two _core builds in one process, alternated")
ap.add_argument("--gemm", action="store_true", help="also time T x gemm(B,H)@(H,4H), the step's GEMM ceiling")
ap.add_argument("--variants", default=None, help='"name:VAR=v,VAR=v;name2:..." (see the docstring)')
args = ap.parse_args()
shapes = [tuple(int(v) for v in s.split(",")) for s in args.shapes] or DEFAULT
if args.variants:
    run_variants(args.variants, shapes, args.reps)
elif args.inproc:
    inproc(args.inproc[0], args.inproc[1], shapes, args.reps)
elif args.ab:
    ab(args.ab, args.rounds, shapes, args.reps, args.fwd_only)
else:
    measure(shapes, args.reps, args.fwd_only, args.gemm)
