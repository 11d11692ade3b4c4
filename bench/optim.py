"""Optimizer benchmark: the fused C++ step (training/optimizers.py) vs torch.optim on one flat buffer.

    PYTHONPATH=python python3 bench/optim.py               # 1M and 10M params, 1 and 2 threads
    PYTHONPATH=python python3 bench/optim.py --quick       # fewer rounds, Adam only
    options: --sizes 1000000,10000000  --threads 1,2  --rounds 15  --markdown  --no-others

float32. Every contender updates its own copy of an n-element parameter vector with a fixed random
gradient (n = 1M fits in this machine's 32 MiB L3 with its state, 10M does not). Contenders:

- ours: ``Optimizer.Adam(AdamConfig()).bind(p).step(g)`` (called from Python, as the trainer does);
- torch.optim.Adam(foreach=True), (fused=True) where this PyTorch offers it on CPU, (foreach=False);
- the ceiling: a copy over the same working set as the step (Adam touches 4 arrays of n floats, so an
  array of 2n floats is copied into another), timed as ``numpy.copyto`` (1 thread) and
  ``_core.copy_into`` (parallel memcpy over the kernel threads); its GB/s counts read + write; and
  ``_core.scale_inplace`` over one array as large as all the step's arrays together (an in-place
  read-modify-write stream, the access pattern of the step without its arithmetic).

GB/s = bytes the step must move / median time (Adam 28 B per parameter: read p, g, m, v, write p, m, v;
SGD with momentum 20; centered RMSprop with momentum 36). ``bw frac`` = our GB/s / the best ceiling GB/s
at that thread count (1.0 = moves bytes as fast as a plain copy; the target "within 2x of memory
bandwidth" is >= 0.5). A copy into another buffer also pays the write-allocate read of the destination
(not counted, as usual), which an in-place update does not: that is why the in-place stream is the
fairer ceiling. The step reads g without writing it, so it can beat the in-place stream slightly.
The machine is shared and noisy: the contenders run in interleaved blocks (pause, one untimed warm-up
call, then ``--calls`` timed calls), round after round, and the table shows medians over all timed calls.
Threads: ours via ``_core.set_num_threads``, torch via ``torch.set_num_threads``.

With the default ``--others`` the same is done for AdamW, SGD (momentum 0.9, nesterov) and RMSprop
(centered, momentum 0.9) against their torch foreach twins.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))

from neurodivergent import _core  # noqa: E402
from neurodivergent.training.optimizers import (AdamConfig, AdamWConfig, Optimizer, RMSpropConfig,  # noqa: E402
                                                SGDConfig)

SETTLE_S = 0.05  # pause before each block: lets the other runtime's idle OpenMP workers stop spinning

# name -> (our spec, bytes moved per float32 parameter, arrays touched, torch constructor)
KINDS = {
    "Adam": (Optimizer.Adam(AdamConfig()), 28, 4, lambda torch, t, **kw: torch.optim.Adam([t], lr=1e-3, **kw)),
    "AdamW": (Optimizer.AdamW(AdamWConfig()), 28, 4, lambda torch, t, **kw: torch.optim.AdamW([t], lr=1e-3, **kw)),
    "SGD": (Optimizer.SGD(SGDConfig().with_momentum(0.9).with_nesterov(True)), 20, 3,
            lambda torch, t, **kw: torch.optim.SGD([t], lr=1e-3, momentum=0.9, nesterov=True, **kw)),
    "RMSprop": (Optimizer.RMSprop(RMSpropConfig().with_centered(True).with_momentum(0.9)), 36, 5,
                lambda torch, t, **kw: torch.optim.RMSprop([t], lr=1e-3, centered=True, momentum=0.9, **kw)),
}


def torch_contenders(torch, kind, n, p0, g):
    """label -> step function, for the torch variants this PyTorch accepts on CPU."""
    out = {}
    make = KINDS[kind][3]
    variants = [("foreach", dict(foreach=True))]
    if kind == "Adam":
        variants += [("fused", dict(fused=True)), ("single", dict(foreach=False))]
    for label, kw in variants:
        t = torch.tensor(p0.copy(), requires_grad=True)
        t.grad = torch.tensor(g.copy())
        try:
            opt = make(torch, t, **kw)
            opt.step()  # creates the state; raises here if the variant is unsupported on CPU
        except (RuntimeError, ValueError, TypeError) as exc:
            print(f"# torch {kind}({label}) unavailable on CPU: {str(exc).splitlines()[0]}", file=sys.stderr)
            continue
        out[f"torch {label}"] = opt.step
    return out


def bench(kind, n, nt, rounds, calls, torch):
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal(n).astype(np.float32)
    g = (rng.standard_normal(n) * 1e-2).astype(np.float32)
    spec, bpp, narr, _ = KINDS[kind]
    p = p0.copy()
    opt = spec.bind(p)
    opt.step(g)
    fns = {"ours": lambda: opt.step(g)}
    if torch is not None:
        fns.update(torch_contenders(torch, kind, n, p0, g))
    # the copy ceilings, over the same working set (src + dst = the step's arrays: same cache regime)
    src = np.ones(n * narr // 2, np.float32)
    dst = np.zeros_like(src)
    copy_bytes = 2 * src.nbytes
    fns["copy numpy"] = lambda: np.copyto(dst, src)
    fns["copy memcpy"] = lambda: _core.copy_into(dst, src)
    # in-place read-modify-write over the same working set (narr * n floats), like the step itself
    rmw = np.ones(n * narr, np.float32)
    fns["scale in place"] = lambda: _core.scale_inplace(rmw, 1.0)
    _core.set_num_threads(nt)
    if torch is not None:
        torch.set_num_threads(nt)
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            time.sleep(SETTLE_S)
            f()
            for _ in range(calls):
                t0 = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    return med, n * bpp, copy_bytes


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000000,10000000")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--calls", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-others", dest="others", action="store_false")
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args(argv)
    if a.quick:
        a.rounds, a.others = 5, False
    try:
        import torch
        torch_v = torch.__version__
    except ImportError:
        torch, torch_v = None, "not installed"
    sizes = [int(s) for s in a.sizes.split(",")]
    threads = [int(s) for s in a.threads.split(",")]
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numpy {np.__version__}, "
          f"torch {torch_v}, rounds {a.rounds} x {a.calls} calls, float32")

    rows = []
    hdr = ["optimizer", "params", "threads", "contender", "ms/step", "GB/s", "torch foreach / ours",
           "bw frac (ours / best ceiling)"]
    for kind in (["Adam", "AdamW", "SGD", "RMSprop"] if a.others else ["Adam"]):
        for n in sizes:
            for nt in threads:
                med, nbytes, cbytes = bench(kind, n, nt, a.rounds, a.calls, torch)
                narr = KINDS[kind][2]
                ours = med["ours"]
                ceil_bytes = {k: (2 * n * narr * 4 if k == "scale in place" else cbytes) for k in med}
                ceiling = max(ceil_bytes[k] / v for k, v in med.items() if k.startswith(("copy", "scale")))
                ref = med.get("torch foreach", float("nan"))
                for k, v in med.items():
                    ratio = f"{ref / v:.2f}" if k == "ours" else (f"{v / ours:.2f}x ours" if k.startswith("torch") else "")
                    frac = f"{(nbytes / v) / ceiling:.2f}" if k == "ours" else ""
                    moved = ceil_bytes[k] if k.startswith(("copy", "scale")) else nbytes
                    rows.append([kind, f"{n / 1e6:g}M", str(nt), k, f"{v * 1e3:.3f}", f"{moved / v / 1e9:.1f}",
                                 ratio, frac])
                sys.stdout.flush()
    if a.markdown:
        print("| " + " | ".join(hdr) + " |")
        print("|" + "---|" * len(hdr))
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        w = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(hdr)]
        print("  ".join(h.ljust(w[i]) for i, h in enumerate(hdr)))
        for r in rows:
            print("  ".join(c.ljust(w[i]) for i, c in enumerate(r)))


if __name__ == "__main__":
    main()
