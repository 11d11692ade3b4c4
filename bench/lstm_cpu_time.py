"""LSTM layer kernels alone, per-call thread CPU time (robust on a shared VM), 1 thread, float32.

    PYTHONPATH=python python3 bench/lstm_cpu_time.py                      # the default shapes
    PYTHONPATH=python python3 bench/lstm_cpu_time.py 256,96,256,256 32,96,1,64 --reps 9
    python3 bench/lstm_cpu_time.py --ab /tmp/old/python python --rounds 3 32,96,8,64   # two builds, A/B

Shapes are B,T,I,H (I = H is a second layer's shape). GFLOP/s count 2*B*T*(I+H)*4H for the forward and
twice that for the backward (dy on every step, dx computed). Medians and minima of --reps calls (default
7), forward and backward alternated.

--ab DIR... compares builds (each DIR is put first on PYTHONPATH: a tree holding a `neurodivergent`
package with its _core): every round runs one process per DIR in turn, and the table gives, per shape
and build, the minimum over rounds of the per-process minima (the least disturbed call on a loaded VM).
On a shared VM the noise between processes is +-10-15% even so: compare against a shape / pass whose
code did not change (e.g. the forward when only the backward changed) to read the noise floor.
"""
import argparse
import os
import re
import subprocess
import sys
import time

DEFAULT = [(256, 96, 1, 64), (32, 96, 1, 64), (256, 96, 1, 128), (256, 96, 8, 256), (32, 168, 1, 256),
           (256, 24, 64, 256), (256, 96, 256, 256)]


def measure(shapes, reps, fwd_only):
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
        print(line, flush=True)


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
args = ap.parse_args()
shapes = [tuple(int(v) for v in s.split(",")) for s in args.shapes] or DEFAULT
if args.ab:
    ab(args.ab, args.rounds, shapes, args.reps, args.fwd_only)
else:
    measure(shapes, args.reps, args.fwd_only)
