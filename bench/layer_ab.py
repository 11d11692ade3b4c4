"""Ours-only timing of one Transformer encoder layer (bench/attention.py's LayerPair, 1 thread): thread CPU time
per call, min and median over --calls calls, forward and forward+backward, for comparing two builds by running
this script once per build, alternated (the same process cannot load two `_core` builds).

    PYTHONPATH=python python3 bench/layer_ab.py --configs 32,24,128 256,24,64 --calls 40
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=["32,24,128"], help="B,T,d_model")
    p.add_argument("--calls", type=int, default=40)
    a = p.parse_args()
    import torch

    torch.set_num_threads(1)
    import neurodivergent as nd
    from neurodivergent.nn import functional as F

    from attention import LayerPair

    nd.set_num_threads(1)
    for cfg in a.configs:
        B, T, D = (int(v) for v in cfg.split(","))
        pair = LayerPair(torch, F, B, T, D)
        out = []
        for name, fn in (("fwd", pair.ours_fwd), ("f+b", pair.ours_train)):
            for _ in range(3):
                fn()
            ts = []
            for _ in range(a.calls):
                t0 = time.thread_time()
                fn()
                ts.append(time.thread_time() - t0)
            out.append(f"{name} min {min(ts) * 1e3:.3f} med {statistics.median(ts) * 1e3:.3f} ms")
        print(f"B={B} T={T} d={D}: " + "  ".join(out), flush=True)


if __name__ == "__main__":
    main()
