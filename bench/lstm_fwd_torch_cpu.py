"""LSTM stack forward, ours vs torch, thread CPU time, calls alternated one by one in one process (1 thread).

    PYTHONPATH=python python3 bench/lstm_fwd_torch_cpu.py --reps 15 --filter H=64
    PYTHONPATH=python python3 bench/lstm_fwd_torch_cpu.py --reps 15 --filter B=32,H=128

The same two sides as bench/rnn.py (its Ours / Torch / build: our F.lstm_forward per layer, torch.nn.LSTM with
the same weights under no_grad) and its grid (--filter as there), but timed with time.thread_time (CPU time of
this thread: on the shared VM less disturbed than rnn.py's wall clock) and the order flipped every repetition.
Prints per configuration the medians, their ratio (torch / ours) and the paired ratio (median over repetitions
of torch's call time / ours).
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--filter", default="")
    args = ap.parse_args()
    import numpy as np
    import torch

    import neurodivergent as nd
    from neurodivergent.nn import functional as F
    from rnn import Ours, Torch, build, configs

    torch.set_num_threads(1)
    nd.set_num_threads(1)
    filt = {kv.split("=")[0]: int(kv.split("=")[1]) for kv in args.filter.split(",") if kv}
    print("| B | T | I | H | L | fwd ours ms (min) | fwd torch ms (min) | torch/ours | paired |")
    print("|---|---|---|---|---|---|---|---|---|")
    rs = []
    for (B, T, I, H, L) in configs(False, filt):
        torch_, mod, x, _ = build("lstm", B, T, I, H, L)
        ours, tor = Ours(F, "lstm", mod, L), Torch(torch_, mod)
        xt = torch.from_numpy(x)
        ours.forward(x), tor.forward(xt)  # warm-up (pool, allocator)
        to, tt = [], []
        for r in range(args.reps):
            for side in ((0, 1) if r % 2 == 0 else (1, 0)):
                t0 = time.thread_time()
                out = ours.forward(x) if side == 0 else tor.forward(xt)
                dt = time.thread_time() - t0
                del out
                (to if side == 0 else tt).append(dt)
        to, tt = np.array(to), np.array(tt)
        ratio, paired = np.median(tt) / np.median(to), np.median(tt / to)
        rs.append(ratio)
        print(f"| {B} | {T} | {I} | {H} | {L} | {1e3*np.median(to):.2f} ({1e3*to.min():.2f}) | "
              f"{1e3*np.median(tt):.2f} ({1e3*tt.min():.2f}) | {ratio:.2f} | {paired:.2f} |", flush=True)
    rs = np.array(rs)
    print(f"\nforward torch/ours: min {rs.min():.2f} median {np.median(rs):.2f} max {rs.max():.2f}; "
          f"under 2x: {int((rs < 2).sum())}/{len(rs)}; under 1.25x: {int((rs < 1.25).sum())}/{len(rs)}")


if __name__ == "__main__":
    main()
