"""Recurrent layer benchmark: neurodivergent's LSTM / GRU kernels vs torch.nn.LSTM / torch.nn.GRU (CPU, float32).

    PYTHONPATH=python python3 bench/rnn.py                    # full grid, LSTM (+ GRU when available), 1 and 2 threads
    PYTHONPATH=python python3 bench/rnn.py --quick            # a subset
    options: --cell lstm|gru|both  --threads 1 2  --no-mem  --markdown  --filter B=32,H=64  --passes 3

Grid (the issue's): batch {32, 256} x seq {24, 96, 168} x input {1, 8} x hidden {64, 128, 256} x layers {1, 2}.
For each configuration, side by side in one process (calls alternated one by one, a short pause before
each on 2 threads so that the other library's idle OpenMP workers stop spinning), median times of:
  fwd    forward alone;
  train  forward + backward + Adam step: ours = F.<cell>_forward per layer, F.<cell>_backward per layer
         accumulating into views of one flat float32 gradient buffer (zeroed first), F.adam_step over the
         flat parameter buffer; torch = module(x), y.backward(dy), torch.optim.Adam (default, foreach) step,
         zero_grad. Two layers: two single-layer calls on our side, num_layers=2 in torch.
Same weights (copied from the torch module), same inputs, same thread count: each thread count runs in
its own subprocess with torch.set_num_threads(n) and neurodivergent.set_num_threads(n) (OMP / BLAS env
set before the imports).
GFLOP/s: forward = 2*B*T*(I+H)*G per layer (G = 4H for LSTM, 3H for GRU); backward = 2x forward, so a
training step counts 3x the forward FLOPs (Adam's are negligible). speed-up = torch time / our time.
Clock: process CPU time at 1 thread (--clock auto, the default since 2026-11-29; earlier grids used wall time
throughout): on a shared VM wall time also counts the other processes; wall time with more threads.
--passes N runs the whole grid N times in a row (each configuration's passes minutes apart) and reports, per
configuration, the median over the passes of the times and of the per-pass speed-ups, and every pass's speed-up:
on a shared VM one pass's cell can be disturbed by the host (a cell read 1.48x and 1.02x minutes apart), so a
per-configuration floor is only claimed from such a median.
Peak memory (unless --no-mem): one child process per (library, configuration), 1 thread, running
only that library's training step twice; `peak` is ru_maxrss of the child and `+run` the increase over
the RSS measured right before the first step (i.e. excluding the imported libraries).
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
BATCH, SEQ, INPUT, HIDDEN, LAYERS = (32, 256), (24, 96, 168), (1, 8), (64, 128, 256), (1, 2)
QUICK = [(32, 96, 8, 64, 1), (32, 96, 8, 128, 1), (32, 96, 8, 256, 1), (256, 96, 8, 64, 1), (256, 96, 8, 256, 1),
         (32, 96, 8, 128, 2), (256, 24, 1, 128, 2)]
GATES = {"lstm": 4, "gru": 3}
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "ND_NUM_THREADS")


def import_nd():
    try:
        import neurodivergent  # noqa: F401
    except ImportError:
        sys.path.insert(0, os.path.join(ROOT, "python"))
    import neurodivergent
    import neurodivergent.nn.functional as F
    from neurodivergent import _core
    return neurodivergent, F, _core


def flops_fwd(cell, B, T, I, H, L):
    G = GATES[cell] * H
    f = 0.0
    for layer in range(L):
        f += 2.0 * B * T * ((I if layer == 0 else H) + H) * G
    return f


def configs(quick, filt):
    grid = QUICK if quick else list(itertools.product(BATCH, SEQ, INPUT, HIDDEN, LAYERS))
    out = []
    for c in grid:
        d = dict(zip("BTIHL", c))
        if all(d[k] == v for k, v in filt.items()):
            out.append(c)
    return out


# ------------------------------------------------------------------------------------------ the two sides
class Ours:
    """One flat float32 parameter buffer and one flat gradient buffer with per-tensor views (layer order as
    torch: w_ih, w_hh, b_ih, b_hh per layer), Adam state alongside."""

    def __init__(self, F, cell, tmod, L):
        import numpy as np

        self.F, self.cell, self.L = F, cell, L
        self.fwd = getattr(F, f"{cell}_forward")
        self.bwd = getattr(F, f"{cell}_backward")
        tensors = []
        for layer in range(L):
            for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                tensors.append(getattr(tmod, f"{n}_l{layer}").detach().numpy())
        n = sum(t.size for t in tensors)
        self.p = np.empty(n, np.float32)
        self.g = np.zeros(n, np.float32)
        self.m = np.zeros(n, np.float32)
        self.v = np.zeros(n, np.float32)
        self.pv, self.gv, o = [], [], 0
        for t in tensors:
            self.p[o:o + t.size] = t.reshape(-1)
            self.pv.append(self.p[o:o + t.size].reshape(t.shape))
            self.gv.append(self.g[o:o + t.size].reshape(t.shape))
            o += t.size
        self.step_no = 0

    def forward(self, x):
        caches, h = [], x
        for layer in range(self.L):
            out = self.fwd(h, *self.pv[4 * layer:4 * layer + 4])
            caches.append(out.cache)
            h = out.y
        return h, caches

    def train_step(self, x, dy):
        _, caches = self.forward(x)
        self.g.fill(0.0)
        d = dy
        for layer in range(self.L - 1, -1, -1):
            gw = self.gv[4 * layer:4 * layer + 4]
            g = self.bwd(caches[layer], d, need_dx=layer > 0, dw_ih=gw[0], dw_hh=gw[1], db_ih=gw[2], db_hh=gw[3])
            d = g.dx
        self.step_no += 1
        self.F.adam_step(self.p, self.g, self.m, self.v, self.step_no, lr=1e-3)


class Torch:
    def __init__(self, torch, mod):
        self.torch, self.mod = torch, mod
        self.opt = torch.optim.Adam(mod.parameters(), lr=1e-3)

    def forward(self, x):
        with self.torch.no_grad():
            return self.mod(x)[0]

    def train_step(self, x, dy):
        y = self.mod(x)[0]
        y.backward(dy)
        self.opt.step()
        self.opt.zero_grad()


def build(cell, B, T, I, H, L, seed=0):
    import numpy as np
    import torch

    torch.manual_seed(seed)
    cls = torch.nn.LSTM if cell == "lstm" else torch.nn.GRU
    mod = cls(I, H, num_layers=L, batch_first=True)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    dy = rng.standard_normal((B, T, H)).astype(np.float32)
    return torch, mod, x, dy


# ------------------------------------------------------------------------------------------ timing worker
def time_pair(fa, fb, reps, pause, clock=time.perf_counter):
    ta, tb = [], []
    for _ in range(reps):
        for f, acc in ((fa, ta), (fb, tb)):
            if pause:
                time.sleep(pause)
            t0 = clock()
            f()
            acc.append(clock() - t0)
    return statistics.median(ta), statistics.median(tb)


def worker(args):
    nd, F, core = import_nd()
    import numpy as np
    import torch

    n = args.threads[0]
    torch.set_num_threads(n)
    nd.set_num_threads(n) if hasattr(nd, "set_num_threads") else core.set_num_threads(n)
    pause = 0.02 if n > 1 else 0.0
    clock = pick_clock(args.clock, n)
    rows = []
    for cell in args.cells:
        for (B, T, I, H, L) in configs(args.quick, args.filter):
            torch_, mod, x, dy = build(cell, B, T, I, H, L)
            ours = Ours(F, cell, mod, L)
            tor = Torch(torch, mod)
            xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)
            ff = flops_fwd(cell, B, T, I, H, L)
            # warm-up (and a rough time to choose the number of repetitions)
            t0 = time.perf_counter()
            ours.train_step(x, dy)
            tor.train_step(xt, dyt)
            est = time.perf_counter() - t0
            reps = int(min(args.max_reps, max(args.min_reps, args.budget / max(est, 1e-6))))
            rf = min(3 * reps, args.max_reps * 2)
            fo, ft = time_pair(lambda: ours.forward(x), lambda: tor.forward(xt), rf, pause, clock)
            to, tt = time_pair(lambda: ours.train_step(x, dy), lambda: tor.train_step(xt, dyt), reps, pause, clock)
            # same numbers? (forward outputs of the trained weights are not comparable: compare at start)
            row = dict(cell=cell, threads=n, B=B, T=T, I=I, H=H, L=L, reps=reps, clock=clock.__name__,
                       fwd_ours=fo, fwd_torch=ft, train_ours=to, train_torch=tt,
                       gf_fwd_ours=ff / fo / 1e9, gf_fwd_torch=ff / ft / 1e9,
                       gf_train_ours=3 * ff / to / 1e9, gf_train_torch=3 * ff / tt / 1e9)
            rows.append(row)
            print(json.dumps(row), flush=True)
            del ours, tor, mod
    return rows


def check_same(cell):
    """Sanity: our forward on torch's weights gives torch's output (float32 rounding)."""
    nd, F, core = import_nd()
    import numpy as np

    torch, mod, x, dy = build(cell, 4, 9, 3, 20, 2)
    ours = Ours(F, cell, mod, 2)
    y, _ = ours.forward(x)
    with torch.no_grad():
        yt = mod(torch.from_numpy(x))[0].numpy()
    return float(np.max(np.abs(y - yt)))


def mem_child(args):
    """Runs one library's training step twice for one configuration; prints peak RSS and increase (MiB)."""
    lib, cell = args.mem_child[0], args.mem_child[1]
    B, T, I, H, L = (int(v) for v in args.mem_child[2:7])
    nd, F, core = import_nd()
    torch, mod, x, dy = build(cell, B, T, I, H, L)
    torch.set_num_threads(1)
    core.set_num_threads(1)
    if lib == "ours":
        obj = Ours(F, cell, mod, L)
        run = lambda: obj.train_step(x, dy)  # noqa: E731
    else:
        obj = Torch(torch, mod)
        xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)
        run = lambda: obj.train_step(xt, dyt)  # noqa: E731
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


def measure_mem(cells, cfgs):
    out = {}
    for cell in cells:
        for c in cfgs:
            for lib in ("ours", "torch"):
                r = subprocess.run([sys.executable, __file__, "--mem-child", lib, cell, *map(str, c)],
                                   env=sub_env(1), capture_output=True, text=True)
                if r.returncode != 0:
                    sys.stderr.write(r.stderr)
                    out[(cell, c, lib)] = None
                    continue
                out[(cell, c, lib)] = json.loads(r.stdout.strip().splitlines()[-1])
    return out


# ------------------------------------------------------------------------------------------ report
def print_mem(mem, markdown):
    """The peak-memory pass alone: one line per cell and configuration."""
    keys = sorted({(k[0], k[1]) for k in mem})
    print("| cell | B | T | I | H | L | peak MiB ours | peak MiB torch | +run MiB ours | +run MiB torch |"
          if markdown else "cell B T I H L peak_ours peak_torch run_ours run_torch")
    if markdown:
        print("|---|---|---|---|---|---|---|---|---|---|")
    for cell, c in keys:
        o, t = mem.get((cell, c, "ours")), mem.get((cell, c, "torch"))
        vals = [f"{o['peak']:.0f}" if o else "-", f"{t['peak']:.0f}" if t else "-",
                f"{o['run']:.0f}" if o else "-", f"{t['run']:.0f}" if t else "-"]
        cells = [cell, *map(str, c), *vals]
        print("| " + " | ".join(cells) + " |" if markdown else " ".join(cells), flush=True)


def fmt_table(rows, mem, markdown):
    hdr = ["cell", "thr", "B", "T", "I", "H", "L", "fwd ours ms", "fwd torch ms", "fwd x", "train ours ms",
           "train torch ms", "train x", "train GF/s ours", "train GF/s torch", "fwd GF/s ours", "peak MiB ours/torch",
           "+run MiB ours/torch"]
    multi = any("passes" in r for r in rows)
    if multi:
        hdr += ["fwd x per pass", "train x per pass"]
    lines = []
    if markdown:
        lines.append("| " + " | ".join(hdr) + " |")
        lines.append("|" + "---|" * len(hdr))
    else:
        lines.append(" ".join(f"{h:>8}" for h in hdr))
    for r in rows:
        m_o = mem.get((r["cell"], (r["B"], r["T"], r["I"], r["H"], r["L"]), "ours"))
        m_t = mem.get((r["cell"], (r["B"], r["T"], r["I"], r["H"], r["L"]), "torch"))
        peak = f"{m_o['peak']:.0f}/{m_t['peak']:.0f}" if m_o and m_t else "-"
        run = f"{m_o['run']:.0f}/{m_t['run']:.0f}" if m_o and m_t else "-"
        vals = [r["cell"], r["threads"], r["B"], r["T"], r["I"], r["H"], r["L"],
                f"{r['fwd_ours'] * 1e3:.2f}", f"{r['fwd_torch'] * 1e3:.2f}", f"{ratio(r, 'fwd'):.2f}",
                f"{r['train_ours'] * 1e3:.2f}", f"{r['train_torch'] * 1e3:.2f}",
                f"{ratio(r, 'train'):.2f}", f"{r['gf_train_ours']:.1f}", f"{r['gf_train_torch']:.1f}",
                f"{r['gf_fwd_ours']:.1f}", peak, run]
        if multi:
            vals += pass_columns(r)
        if markdown:
            lines.append("| " + " | ".join(str(v) for v in vals) + " |")
        else:
            lines.append(" ".join(f"{str(v):>8}" for v in vals))
    return "\n".join(lines)


def summary(rows, mem):
    out = []
    for cell in sorted({r["cell"] for r in rows}):
        for n in sorted({r["threads"] for r in rows}):
            rs = [r for r in rows if r["cell"] == cell and r["threads"] == n]
            if not rs:
                continue
            for mode in ("fwd", "train"):
                sp = [ratio(r, mode) for r in rs]
                small = [s for s, r in zip(sp, rs) if r["H"] <= 64]
                out.append(f"{cell} {n} thread(s) {mode:5}: speed-up min {min(sp):.2f} median {statistics.median(sp):.2f}"
                           f" max {max(sp):.2f}; H<=64 min {min(small) if small else float('nan'):.2f};"
                           f" configs under 1.25x: {sum(s < 1.25 for s in sp)}/{len(sp)}")
            h256 = [r["gf_train_ours"] for r in rs if r["H"] == 256]
            if h256:
                out.append(f"{cell} {n} thread(s) train GFLOP/s at H=256: min {min(h256):.1f} median "
                           f"{statistics.median(h256):.1f} max {max(h256):.1f}")
    if mem:
        worse = [k for k in mem if k[2] == "ours" and mem[k] and mem.get((k[0], k[1], "torch"))
                 and mem[k]["peak"] > mem[(k[0], k[1], "torch")]["peak"]]
        worse_run = [k for k in mem if k[2] == "ours" and mem[k] and mem.get((k[0], k[1], "torch"))
                     and mem[k]["run"] > mem[(k[0], k[1], "torch")]["run"]]
        n = sum(1 for k in mem if k[2] == "ours")
        out.append(f"memory: our peak RSS above torch's in {len(worse)}/{n} configs; "
                   f"our increase during the steps above torch's in {len(worse_run)}/{n}: "
                   + ", ".join(f"{k[0]} {k[1]}" for k in worse_run))
    return "\n".join(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cell", default="both", choices=["lstm", "gru", "both"])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-mem", action="store_true")
    p.add_argument("--mem-only", action="store_true", help="only the peak-memory pass (no timings)")
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--filter", default="", help="e.g. B=32,H=64 (restrict the grid)")
    p.add_argument("--budget", type=float, default=1.0, help="seconds per library per mode and config (approx.)")
    p.add_argument("--min-reps", type=int, default=3)
    p.add_argument("--max-reps", type=int, default=20)
    add_arguments(p)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--cells", nargs="+", help=argparse.SUPPRESS)
    p.add_argument("--mem-child", nargs=7, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.filter = {kv.split("=")[0]: int(kv.split("=")[1]) for kv in args.filter.split(",") if kv}
    if args.mem_child:
        return mem_child(args)
    if args.worker:
        worker(args)
        return
    _, F, core = import_nd()
    cells = ["lstm", "gru"] if args.cell == "both" else [args.cell]
    cells = [c for c in cells if hasattr(F, f"{c}_forward")]
    if not cells:
        sys.exit("no requested cell has kernels yet (neurodivergent.nn.functional.<cell>_forward)")
    for c in cells:
        print(f"# {c}: max |ours - torch| forward on a 2-layer check = {check_same(c):.2e}", flush=True)
    rows = []
    t_start = time.time()
    for n, pass_no in [] if args.mem_only else [(n, k) for k in range(max(1, args.passes)) for n in args.threads]:
        cmd = [sys.executable, __file__, "--worker", "--threads", str(n), "--cells", *cells, "--clock", args.clock,
               "--budget", str(args.budget), "--min-reps", str(args.min_reps), "--max-reps", str(args.max_reps),
               "--filter", ",".join(f"{k}={v}" for k, v in args.filter.items())]
        if args.quick:
            cmd.append("--quick")
        proc = subprocess.Popen(cmd, env=sub_env(n), stdout=subprocess.PIPE, text=True)
        for line in proc.stdout:
            if line.startswith("{"):
                r = json.loads(line)
                rows.append(r)
                print(f"  {'pass %d ' % (pass_no + 1) if args.passes > 1 else ''}{r['cell']} thr={n} B={r['B']} T={r['T']} I={r['I']} H={r['H']} L={r['L']}: "
                      f"fwd {r['fwd_ours'] * 1e3:.2f} vs {r['fwd_torch'] * 1e3:.2f} ms "
                      f"({r['fwd_torch'] / r['fwd_ours']:.2f}x), train {r['train_ours'] * 1e3:.2f} vs "
                      f"{r['train_torch'] * 1e3:.2f} ms ({r['train_torch'] / r['train_ours']:.2f}x, "
                      f"{r['gf_train_ours']:.1f} vs {r['gf_train_torch']:.1f} GFLOP/s)", flush=True)
        proc.wait()
    mem = {} if args.no_mem else measure_mem(cells, configs(args.quick, args.filter))
    if args.mem_only:
        print_mem(mem, args.markdown)
        print(summary(rows, mem))
        return
    print()
    print(f"# {platform.processor() or platform.machine()}, python {platform.python_version()}, "
          f"isa {core.gemm_isa()}/{core.lstm_isa() if hasattr(core, 'lstm_isa') else '-'}, "
          f"{time.time() - t_start:.0f} s" + (f", median of {args.passes} passes" if args.passes > 1 else ""))
    rows = aggregate(rows, ("cell", "threads", "B", "T", "I", "H", "L"))
    print(fmt_table(rows, mem, args.markdown))
    print()
    print(summary(rows, mem))


if __name__ == "__main__":
    main()
