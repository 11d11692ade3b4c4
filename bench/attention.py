"""Attention benchmark: neurodivergent's attention kernels and Transformer encoder layer vs PyTorch (CPU, float32).

    PYTHONPATH=python python3 bench/attention.py                 # full grid, 1 thread
    PYTHONPATH=python python3 bench/attention.py --threads 1 2 --quick --markdown
    options: --kind sdpa|layer|both  --no-mem  --filter B=32,T=96  --budget SECONDS  --passes 3

Grid (the issue's): batch {32, 256} x seq {24, 96, 336} x d_model {64, 128}, 4 heads (head width d_model/4).
  sdpa   F.attention_forward (+ F.attention_backward) on q, k, v (B, 4, T, d_model/4) vs
         torch.nn.functional.scaled_dot_product_attention (+ y.backward(dy)); no mask, no dropout.
  layer  one encoder layer (pre-norm, GELU, d_ff = 4 d_model, dropout 0) on x (B, T, d_model): ours is the
         Transformer model's layer (linear / attention / layer-norm / GELU kernels chained by the tape,
         parameter gradients accumulated into one flat buffer) vs torch.nn.TransformerEncoderLayer
         (batch_first, norm_first=True) with the same weights (copied from torch), forward alone and
         forward + backward (gradients of x and of every parameter).
Each thread count runs in its own subprocess with torch.set_num_threads(n) and
neurodivergent.set_num_threads(n) (OMP env set before the imports); calls are alternated one by one and
the median of each is reported. speed-up = torch time / our time. Times are process CPU time at 1 thread
(--clock auto; on a shared, loaded machine wall time mostly measures the other processes) and wall time
with more threads.
--passes N runs the grid N times in a row and reports per configuration the median of the per-pass speed-ups
(and each pass's value): one pass's cell can be disturbed by the host, so per-configuration floors are claimed
from such medians only.
GFLOP/s counts the matrix products only: sdpa forward 4 B H T^2 dh (QK^T and PV), backward 2x that
(recomputed scores: 2.5x for us, counted as 2x for both); layer forward = sdpa + 2 B T (4 d^2 + 2 d d_ff).
Peak memory (unless --no-mem): one child process per (library, kind, configuration), 1 thread, running
forward + backward twice; `peak` is ru_maxrss of the child, `+run` the increase over the RSS right before
the first call (the inputs are allocated before; the imported libraries are excluded).
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

from _passes import add_arguments, aggregate, pass_columns, pick_clock, ratio

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH, SEQ, DMODEL, HEADS = (32, 256), (24, 96, 336), (64, 128), 4
QUICK = [(32, 24, 64), (32, 96, 128), (256, 96, 64), (32, 336, 64), (256, 336, 128)]
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "ND_NUM_THREADS")


def import_nd():
    try:
        import neurodivergent  # noqa: F401
    except ImportError:
        sys.path.insert(0, os.path.join(ROOT, "python"))
    import neurodivergent
    import neurodivergent.nn.functional as F
    return neurodivergent, F


def configs(quick, filt):
    grid = QUICK if quick else list(itertools.product(BATCH, SEQ, DMODEL))
    want = {}
    for part in filter(None, filt.split(",")):
        k, v = part.split("=")
        want[k.strip()] = int(v)
    out = []
    for B, T, D in grid:
        vals = dict(B=B, T=T, D=D)
        if all(vals.get(k) == v for k, v in want.items()):
            out.append((B, T, D))
    return out


def flops(kind, B, T, D):
    dh = D // HEADS
    att = 4.0 * B * HEADS * T * T * dh
    if kind == "sdpa":
        return att
    return att + 2.0 * B * T * (4 * D * D + 2 * D * 4 * D)


# ------------------------------------------------------------------------------------------ the two sides
class SdpaPair:
    def __init__(self, torch, F, B, T, D, seed=0):
        import numpy as np

        rng = np.random.default_rng(seed)
        dh = D // HEADS
        self.F, self.torch = F, torch
        self.q, self.k, self.v, self.dy = (rng.standard_normal((B, HEADS, T, dh)).astype(np.float32) for _ in range(4))
        self.tq, self.tk, self.tv = (torch.from_numpy(a.copy()).requires_grad_(True) for a in (self.q, self.k, self.v))
        self.tdy = torch.from_numpy(self.dy)

    def ours_fwd(self):
        return self.F.attention_forward(self.q, self.k, self.v)

    def ours_train(self):
        out = self.F.attention_forward(self.q, self.k, self.v)
        return self.F.attention_backward(out.cache, self.dy)

    def torch_fwd(self):
        with self.torch.no_grad():
            return self.torch.nn.functional.scaled_dot_product_attention(self.tq, self.tk, self.tv)

    def torch_train(self):
        for t in (self.tq, self.tk, self.tv):
            t.grad = None
        y = self.torch.nn.functional.scaled_dot_product_attention(self.tq, self.tk, self.tv)
        y.backward(self.tdy)

    def max_diff(self):
        import numpy as np

        y = self.ours_fwd().y
        yt = self.torch_fwd().numpy()
        return float(np.max(np.abs(y - yt)))


class LayerPair:
    def __init__(self, torch, F, B, T, D, seed=0):
        import numpy as np

        from neurodivergent.models.transformer import Transformer, TransformerConfig
        from neurodivergent.nn import ParameterBuffer
        from neurodivergent.nn.tape import Tape, Var

        torch.manual_seed(seed)
        self.torch, self.Tape, self.Var = torch, Tape, Var
        self.layer = torch.nn.TransformerEncoderLayer(D, HEADS, 4 * D, dropout=0.0, activation="gelu",
                                                      batch_first=True, norm_first=True)
        cfg = (TransformerConfig().with_input_size(T).with_horizon(1).with_d_model(D).with_num_heads(HEADS)
               .with_num_layers(1).with_d_ff(4 * D).with_patch_len(1).with_stride(1).with_dropout(0.0))
        self.model = Transformer(cfg)
        self.model.params = ParameterBuffer(self.model._parameter_specs())
        sd = self.layer.state_dict()
        for k, v in sd.items():
            self.model.params[f"encoder.layers.0.{k}"][...] = v.numpy()
        rng = np.random.default_rng(seed)
        self.B, self.T, self.D = B, T, D
        self.x = rng.standard_normal((B * T, D)).astype(np.float32)
        self.dy = rng.standard_normal((B * T, D)).astype(np.float32)
        self.tx = torch.from_numpy(self.x.reshape(B, T, D).copy()).requires_grad_(True)
        self.tdy = torch.from_numpy(self.dy.reshape(B, T, D))

    def ours_fwd(self):
        return self.model._encoder_layer(None, self.Var(self.x, -1), 0, self.B, self.T, None).data

    def ours_train(self):
        tape = self.Tape()
        xv = tape.var(self.x)
        out = self.model._encoder_layer(tape, xv, 0, self.B, self.T, None)
        self.model.params.zero_grad()
        return tape.backward(out, self.dy)[xv.id]

    def torch_fwd(self):
        with self.torch.no_grad():
            return self.layer(self.tx)

    def torch_train(self):
        self.layer.zero_grad(set_to_none=True)
        self.tx.grad = None
        self.layer(self.tx).backward(self.tdy)

    def max_diff(self):
        import numpy as np

        # the fast path of TransformerEncoderLayer in eval/no_grad is a different kernel; compare in train mode
        with self.torch.no_grad():
            yt = self.layer(self.tx).numpy().reshape(self.B * self.T, self.D)
        return float(np.max(np.abs(self.ours_fwd() - yt)))


PAIRS = {"sdpa": SdpaPair, "layer": LayerPair}


# ------------------------------------------------------------------------------------------ timing worker
def time_pair(fa, fb, reps, clock=time.perf_counter):
    ta, tb = [], []
    for _ in range(reps):
        for f, acc in ((fa, ta), (fb, tb)):
            t0 = clock()
            f()
            acc.append(clock() - t0)
    return statistics.median(ta), statistics.median(tb)


def worker(args):
    nd, F = import_nd()
    import torch

    n = args.threads[0]
    torch.set_num_threads(n)
    nd.set_num_threads(n)
    clock = pick_clock(args.clock, n)
    for kind in args.kinds:
        for (B, T, D) in configs(args.quick, args.filter):
            pair = PAIRS[kind](torch, F, B, T, D)
            diff = pair.max_diff()
            t0 = time.perf_counter()
            pair.ours_train()
            pair.torch_train()
            est = time.perf_counter() - t0
            reps = int(min(args.max_reps, max(args.min_reps, args.budget / max(est, 1e-6))))
            fo, ft = time_pair(pair.ours_fwd, pair.torch_fwd, reps, clock)
            to, tt = time_pair(pair.ours_train, pair.torch_train, reps, clock)
            f = flops(kind, B, T, D)
            row = dict(kind=kind, threads=n, B=B, T=T, D=D, reps=reps, clock=clock.__name__, max_diff=diff, fwd_ours=fo, fwd_torch=ft,
                       train_ours=to, train_torch=tt, gf_fwd_ours=f / fo / 1e9, gf_fwd_torch=f / ft / 1e9,
                       gf_train_ours=3 * f / to / 1e9, gf_train_torch=3 * f / tt / 1e9)
            print(json.dumps(row), flush=True)
            del pair


def mem_child(args):
    lib, kind = args.mem_child[0], args.mem_child[1]
    B, T, D = (int(v) for v in args.mem_child[2:5])
    nd, F = import_nd()
    import torch

    torch.set_num_threads(1)
    nd.set_num_threads(1)
    pair = PAIRS[kind](torch, F, B, T, D)
    run = pair.ours_train if lib == "ours" else pair.torch_train
    with open("/proc/self/statm") as f:
        base = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    run()
    run()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(dict(peak=peak, run=peak - base)))


def sub_env(n):
    env = dict(os.environ)
    for k in THREAD_ENV:
        env[k] = str(n)
    env["PYTHONPATH"] = os.path.join(ROOT, "python") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def measure_mem(kinds, cfgs):
    out = {}
    for kind in kinds:
        for c in cfgs:
            for lib in ("ours", "torch"):
                r = subprocess.run([sys.executable, __file__, "--mem-child", lib, kind, *map(str, c)],
                                   env=sub_env(1), capture_output=True, text=True)
                if r.returncode != 0:
                    sys.stderr.write(r.stderr)
                    out[(kind, c, lib)] = None
                    continue
                out[(kind, c, lib)] = json.loads(r.stdout.strip().splitlines()[-1])
    return out


# ------------------------------------------------------------------------------------------ report
def report(rows, mem, markdown):
    head = ["kind", "thr", "B", "T", "d_model", "fwd ours ms", "fwd torch ms", "fwd x", "f+b ours ms",
            "f+b torch ms", "f+b x", "GF/s f+b ours/torch", "max|diff|"]
    if mem:
        head += ["peak MiB ours/torch (+run)"]
    multi = any("passes" in r for r in rows)
    if multi:
        head += ["fwd x per pass", "f+b x per pass"]
    lines = []
    if markdown:
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
    else:
        lines.append("  ".join(head))
    for r in rows:
        cells = [r["kind"], str(r["threads"]), str(r["B"]), str(r["T"]), str(r["D"]), f"{r['fwd_ours'] * 1e3:.3f}",
                 f"{r['fwd_torch'] * 1e3:.3f}", f"{ratio(r, 'fwd'):.2f}",
                 f"{r['train_ours'] * 1e3:.3f}", f"{r['train_torch'] * 1e3:.3f}",
                 f"{ratio(r, 'train'):.2f}",
                 f"{r['gf_train_ours']:.1f}/{r['gf_train_torch']:.1f}", f"{r['max_diff']:.1e}"]
        if mem:
            a = mem.get((r["kind"], (r["B"], r["T"], r["D"]), "ours"))
            b = mem.get((r["kind"], (r["B"], r["T"], r["D"]), "torch"))
            cells.append(f"{a['peak']:.0f}/{b['peak']:.0f} (+{a['run']:.0f}/+{b['run']:.0f})" if a and b else "-")
        if multi:
            cells += pass_columns(r)
        lines.append(("| " + " | ".join(cells) + " |") if markdown else "  ".join(cells))
    print("\n".join(lines))
    for kind in sorted({r["kind"] for r in rows}):
        for n in sorted({r["threads"] for r in rows}):
            sel = [r for r in rows if r["kind"] == kind and r["threads"] == n]
            if not sel:
                continue
            sf = [ratio(r, "fwd") for r in sel]
            st = [ratio(r, "train") for r in sel]
            print(f"{kind}, {n} thread(s): speed-up forward median {statistics.median(sf):.2f} (min {min(sf):.2f}), "
                  f"forward+backward median {statistics.median(st):.2f} (min {min(st):.2f}); "
                  f"configs >= 1.25x: fwd {sum(s >= 1.25 for s in sf)}/{len(sf)}, f+b {sum(s >= 1.25 for s in st)}/{len(st)}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kind", default="both", choices=["sdpa", "layer", "both"])
    p.add_argument("--threads", type=int, nargs="+", default=[1])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-mem", action="store_true")
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--filter", default="", help="e.g. B=32,T=96,D=64 (restrict the grid)")
    p.add_argument("--budget", type=float, default=1.0, help="seconds per library per mode and config (approx.)")
    add_arguments(p)
    p.add_argument("--min-reps", type=int, default=3)
    p.add_argument("--max-reps", type=int, default=20)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--kinds", nargs="+", help=argparse.SUPPRESS)
    p.add_argument("--mem-child", nargs=5, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.mem_child:
        mem_child(args)
        return
    if args.worker:
        worker(args)
        return
    kinds = ["sdpa", "layer"] if args.kind == "both" else [args.kind]
    rows = []
    for n in [n for _ in range(max(1, args.passes)) for n in args.threads]:
        cmd = [sys.executable, __file__, "--worker", "--threads", str(n), "--kinds", *kinds, "--filter", args.filter,
               "--budget", str(args.budget), "--min-reps", str(args.min_reps), "--max-reps", str(args.max_reps),
               "--clock", args.clock]
        if args.quick:
            cmd.append("--quick")
        r = subprocess.run(cmd, env=sub_env(n), capture_output=True, text=True)
        if r.returncode != 0:
            sys.stderr.write(r.stderr)
            raise SystemExit(f"worker with {n} thread(s) failed")
        rows += [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    mem = None if args.no_mem else measure_mem(kinds, configs(args.quick, args.filter))
    nd, _ = import_nd()
    print(f"{platform.processor() or platform.machine()}, torch vs neurodivergent {nd.__version__}, "
          f"load average {os.getloadavg()[0]:.1f}")
    if args.passes > 1:
        print(f"median of {args.passes} passes")
    report(aggregate(rows, ("kind", "threads", "B", "T", "D"), extra=("max_diff",)), mem, args.markdown)
    print("command:", " ".join([os.path.basename(sys.executable), "bench/attention.py"] + (argv or sys.argv[1:])))


if __name__ == "__main__":
    main()
