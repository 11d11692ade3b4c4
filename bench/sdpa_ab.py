"""A/B of two builds of the attention forward in one process (thread CPU time, calls alternated).

    PYTHONPATH=python python3 bench/sdpa_ab.py BASE_CORE.so [B T d_model ...] [--reps N] [--torch]

Loads this tree's neurodivergent._core and a second _core extension (an earlier build) side by side and
times _core.attention_forward on the same q, k, v (B, 4, T, d_model / 4), float32, 1 thread, alternating
the two (and torch's sdpa with --torch); prints the min and median per call and whether y is bitwise equal.
"""
import argparse
import importlib.machinery
import importlib.util
import os
import statistics
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402

from neurodivergent import _core as ours  # noqa: E402


def load(so):
    ld = importlib.machinery.ExtensionFileLoader("_core", so)
    m = importlib.util.module_from_spec(importlib.util.spec_from_file_location("_core", so, loader=ld))
    ld.exec_module(m)
    return m


def main():
    p = argparse.ArgumentParser()
    p.add_argument("base")
    p.add_argument("cfg", nargs="*", type=int, default=[32, 336, 128])
    p.add_argument("--reps", type=int, default=15)
    p.add_argument("--torch", action="store_true")
    a = p.parse_args()
    base = load(a.base)
    for m in (ours, base):
        m.set_num_threads(1)
    tf = None
    if a.torch:
        import torch
        torch.set_num_threads(1)
        tf = torch.nn.functional.scaled_dot_product_attention
    rng = np.random.default_rng(0)
    for B, T, D in zip(a.cfg[0::3], a.cfg[1::3], a.cfg[2::3]):
        q, k, v = (rng.standard_normal((B, 4, T, D // 4)).astype(np.float32) for _ in range(3))
        outs = {n: (np.empty_like(q), np.empty((B, 4, T), np.float32)) for n in ("ours", "base")}
        mods = {"ours": ours, "base": base}
        ts = {"ours": [], "base": [], "torch": []}
        tq = None
        if tf is not None:
            import torch
            tq = [torch.from_numpy(x) for x in (q, k, v)]
        for r in range(a.reps):
            order = ["ours", "base"] if r % 2 == 0 else ["base", "ours"]
            if tf is not None:
                order.append("torch")
            for n in order:
                t0 = time.thread_time()
                if n == "torch":
                    with torch.no_grad():
                        tf(*tq)
                else:
                    y, lse = outs[n]
                    mods[n].attention_forward(y, lse, q, k, v, None)
                ts[n].append(time.thread_time() - t0)
        same = np.array_equal(outs["ours"][0], outs["base"][0])
        line = f"B={B} T={T} d_model={D}:"
        for n in ("ours", "base", "torch"):
            if ts[n]:
                line += f" {n} min {min(ts[n]) * 1e3:.3f} med {statistics.median(ts[n]) * 1e3:.3f} ms;"
        print(line, "y bitwise equal" if same else "y differs (rounding)")


if __name__ == "__main__":
    sys.exit(main())
