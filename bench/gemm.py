"""GEMM benchmark: neurodivergent._core.gemm vs numpy.matmul (the BLAS numpy links, OpenBLAS here).

    PYTHONPATH=python python3 bench/gemm.py            # full table, 1 and 2 threads
    PYTHONPATH=python python3 bench/gemm.py --quick    # fewer shapes / runs
    PYTHONPATH=python python3 bench/gemm.py --models   # the GEMMs the models call (1 thread, vs torch)
    PYTHONPATH=python python3 bench/gemm.py --models --base /work/main/python/neurodivergent/_core....so
                                                       # ... and vs another build, in the same process
    PYTHONPATH=python python3 bench/gemm.py --covered --base ...   # the main table's shapes, same harness
    options: --threads 1,2  --runs 25  --markdown  --models-filter dW

float32 everywhere. For every shape the two libraries are timed side by side after warm-up, on 1
thread alternately (one call of each per round), on several threads in two interleaved blocks of
calls per library with a pause before each block (OpenBLAS's idle workers spin for ~0.1-0.2 s and
would steal a core from the next block), so that a noisy, shared machine slows both alike; the table shows the median time of >= 20 calls as
GFLOP/s (2*M*N*K / time) and ours / numpy. Both are called through Python with
preallocated outputs (numpy.matmul(..., out=c); _core.gemm(a, b, c, ...)).

Threads: ours via _core.set_num_threads(n); numpy's BLAS via threadpoolctl when it is importable,
otherwise each thread count runs in a subprocess with OPENBLAS_NUM_THREADS / OMP_NUM_THREADS /
MKL_NUM_THREADS set before numpy is imported.

--models: the nd::gemm calls one training step of each model makes (found with a debug trace of nd::gemm's
arguments over bench/rnn.py's and bench/attention.py's grids; see bench/RESULTS.md "## GEMM"), one row per
distinct (op, M, N, K), 1 thread, ours vs torch.matmul / Tensor.addmm_ (torch.set_num_threads(1)), calls
alternated one by one, thread CPU time (the VM is shared: CPU time leaves out the time other processes hold
the core), best and median of --runs calls, GFLOP/s = 2MNK / time, and ours as a fraction of the core's FMA
peak (bench/fma_peak.cpp, measured at the start). Operands are contiguous here (core.gemm takes whole
arrays): where the model passes a strided operand (the GRU's dgates rows are 4H apart for M = 3H, the LSTM's
per-step rows T*H apart) the column `model lda/ldb` gives the model's leading dimensions and the bench uses the
contiguous one.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import platform
import subprocess
import sys
import time

SQUARE = [256, 512, 1024, 2048]
MODEL_M, MODEL_K, MODEL_N = (32, 256), (64, 128, 256), (256, 512, 1024)
# The model's three GEMMs per linear layer (X: (M, K) batch x in, W: (N, K) out x in):
#   forward   Y(M,N)  = X W^T        -> trans_b
#   backward  dX(M,K) = dY W         -> no transpose   (benchmarked as M x N x K with op = NN)
#   backward  dW(N,K) += dY^T X      -> trans_a, beta = 1
SETTLE_S = 0.3  # pause before each block of multi-threaded calls (see bench_one)
BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")


def shapes(quick: bool):
    out = []  # (label, M, N, K, trans_a, trans_b, beta)
    for n in SQUARE[:3] if quick else SQUARE:
        out.append(("square", n, n, n, False, False, 0.0))
    for M in MODEL_M:
        for K in MODEL_K:
            for N in MODEL_N:
                if quick and (K, N) not in ((64, 256), (256, 1024)):
                    continue
                out.append(("model NN", M, N, K, False, False, 0.0))
    for M in MODEL_M:  # linear forward: X (M, K) @ W(N, K)^T
        for K, N in ((64, 256), (128, 512), (256, 1024)):
            out.append(("fwd  NT", M, N, K, False, True, 0.0))
    for M in MODEL_M:  # weight gradient: dW (N, K) += dY(M, N)^T X(M, K)
        out.append(("dW   TN", 256, 256, M, True, False, 1.0))
    return out


# (label, trans_a, trans_b, M, N, K, beta, the model's lda / ldb). From the trace (bench/RESULTS.md "## GEMM",
# 2026-11-29): LSTM (G = 4H) and GRU (G = 3H) weight gradients over all B*T rows, trans_a, K = B*T - 1 (the
# shifted dW_hh GEMM of lstm.cpp / gru.cpp; the LSTM's second-layer dW_ih has K = B*T and the same M, N), and
# a second layer's input products; the
# Transformer's linear weight gradients, which csrc/linear.cpp's fused backward calls per block of 256 rows
# (beta = 1; qkv: O = 3D, ff1: O = 4D, ff2: I = 4D) except the attention output projection (D, D, B*T). The
# Transformer's forward and dx products run in linear.cpp's own tile, the recurrent per-step products in
# the cells' kernels or gemm_packed_b (bench/ceiling.py's step table), so they are not in this grid.
def model_shapes():
    out = []
    for B, T in ((32, 24), (32, 168), (256, 168)):
        K = B * T - 1
        for H in (64, 128, 256):  # dW_hh^T (H, 4H) = y^T (H, BT) @ dG (BT, 4H)
            out.append((f"lstm dW B={B} T={T}", True, False, H, 4 * H, K, 0.0, f"{H}/{4 * H}"))
        # GRU dW_hh (3H, H) = dG^T (3H, BT) @ y (BT, H); dG rows 4H apart (H = 64: gru.cpp's own rows, no GEMM)
        for H in (128, 256):
            out.append((f"gru dW B={B} T={T}", True, False, 3 * H, H, K, 0.0, f"{4 * H}/{H}"))
    B, T = 32, 168  # second layers (input = H): the input projection / dW_ih / dx GEMMs
    for H in (64, 128, 256):
        out.append((f"lstm L2 x@w_ih^T B={B} T={T}", False, True, B * T, 4 * H, H, 0.0, f"{H}/{H}"))
    for H in (128, 256):
        out.append((f"gru L2 dW_ih(r,z) B={B} T={T}", True, False, 2 * H, H, B * T, 1.0, f"{4 * H}/{H}"))
        out.append((f"gru L2 dx B={B} T={T}", False, False, B * T, H, 2 * H, 0.0, f"{4 * H}/{H}"))
    for D in (64, 128):
        for name, O, I in (("qkv", 3 * D, D), ("ff1", 4 * D, D), ("ff2", D, 4 * D)):
            out.append((f"tf {name} dW D={D}", True, False, O, I, 256, 1.0, f"{O}/{I}"))
        for B, T in ((32, 96), (256, 336)):
            out.append((f"tf out dW D={D} B={B} T={T}", True, False, D, D, B * T, 1.0, f"{D}/{D}"))
    return out


def import_core():
    try:
        import neurodivergent
        from neurodivergent import _core
    except ImportError:  # running from a checkout without PYTHONPATH: use the working-tree build
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "python"))
        import neurodivergent
        from neurodivergent import _core
    return neurodivergent, _core


def blas_info():
    """Which BLAS numpy runs and its kernel (OpenBLAS core name), via threadpoolctl or ctypes."""
    import numpy as np

    info = {"numpy": np.__version__}
    env = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_VERBOSE") if k in os.environ}
    if env:
        info["env"] = env
    try:
        import threadpoolctl

        for p in threadpoolctl.threadpool_info():
            if p.get("user_api") == "blas":
                info.update(api=p.get("internal_api"), version=p.get("version"), kernel=p.get("architecture"),
                            threads=p.get("num_threads"), lib=os.path.basename(p.get("filepath", "")))
                break
        return info
    except ImportError:
        pass
    try:  # threadpoolctl not installed: find the loaded OpenBLAS and ask it directly
        libs = set()
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1]
                if "openblas" in os.path.basename(path).lower() and ".so" in os.path.basename(path):
                    libs.add(path)
        for path in sorted(libs):
            lib = ctypes.CDLL(path)
            for prefix in ("scipy_openblas_", "openblas_"):
                for suffix in ("64_", ""):
                    core = getattr(lib, f"{prefix}get_corename{suffix}", None)
                    if core is None:
                        continue
                    core.restype = ctypes.c_char_p
                    info.update(api="openblas", kernel=core().decode(), lib=os.path.basename(path))
                    cfg = getattr(lib, f"{prefix}get_config{suffix}", None)
                    if cfg is not None:
                        cfg.restype = ctypes.c_char_p
                        info["version"] = cfg().decode().strip()
                    nth = getattr(lib, f"{prefix}get_num_threads{suffix}", None)
                    if nth is not None:
                        nth.restype = ctypes.c_int
                        info["threads"] = nth()
                    return info
    except OSError:
        pass
    info.setdefault("api", "unknown (see numpy.show_config())")
    return info


def bench_one(core, np, M, N, K, ta, tb, beta, runs, alternate):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((K, M) if ta else (M, K), dtype=np.float32)
    b = rng.standard_normal((N, K) if tb else (K, N), dtype=np.float32)
    c_np = rng.standard_normal((M, N), dtype=np.float32)
    c_nd = c_np.copy()
    av, bv = (a.T if ta else a), (b.T if tb else b)
    if beta == 0.0:
        f_np = lambda: np.matmul(av, bv, out=c_np)  # noqa: E731
    else:  # numpy has no in-place beta: matmul into a temp, then add (what a user would write)
        tmp = np.empty_like(c_np)
        f_np = lambda: np.add(c_np, np.matmul(av, bv, out=tmp), out=c_np)  # noqa: E731
    f_nd = lambda: core.gemm(a, b, c_nd, ta, tb, 1.0, beta)  # noqa: E731
    flops = 2.0 * M * N * K
    warm = max(2, int(0.02 * 60e9 / flops))  # ~20 ms of warm-up at 60 GFLOP/s, at least 2 calls
    for _ in range(min(warm, 200)):
        f_np()
        f_nd()
    t_np, t_nd = [], []
    pc = time.perf_counter
    if alternate:
        # one call of each per round, alternating which goes first
        for r in range(runs):
            for f, ts in (((f_np, t_np), (f_nd, t_nd)) if r % 2 == 0 else ((f_nd, t_nd), (f_np, t_np))):
                s = pc()
                f()
                ts.append(pc() - s)
    else:
        # Several threads: blocks of calls, with a pause before each block. OpenBLAS's worker threads
        # keep spinning for ~0.1-0.2 s after a call (measured here: our 2-thread 512^3 GEMM drops from
        # ~117 to ~17-40 GFLOP/s when started right after numpy calls, and recovers after a 0.2 s pause),
        # so alternating single calls would measure the two thread pools fighting over 2 cores.
        per = -(-runs // 2)
        for _ in range(2):
            for f, ts in ((f_np, t_np), (f_nd, t_nd)):
                time.sleep(SETTLE_S)
                f()
                for _ in range(per):
                    s = pc()
                    f()
                    ts.append(pc() - s)
    return flops / float(np.median(t_np)) / 1e9, flops / float(np.median(t_nd)) / 1e9


def bench_naive(core, np, runs=5):
    rows = []
    for M, N, K in ((64, 64, 64), (32, 256, 64)):
        rng = np.random.default_rng(0)
        a = rng.standard_normal((M, K), dtype=np.float32)
        b = rng.standard_normal((K, N), dtype=np.float32)
        c = np.empty((M, N), np.float32)
        res = {}
        for naive in (True, False):
            ts = []
            for _ in range(runs + 1):
                s = time.perf_counter()
                core.gemm(a, b, c, naive=naive)
                ts.append(time.perf_counter() - s)
            res[naive] = 2.0 * M * N * K / float(np.median(ts[1:])) / 1e9
        rows.append((M, N, K, res[True], res[False]))
    return rows


def worker(threads, quick, runs):
    """Runs in a process whose BLAS thread count is already fixed; returns a dict (JSON-able)."""
    nd, core = import_core()
    import numpy as np

    core.set_num_threads(threads)
    limiter = None
    try:
        import threadpoolctl

        limiter = threadpoolctl.threadpool_limits(limits=threads, user_api="blas")
    except ImportError:
        pass
    try:
        rows = []
        for label, M, N, K, ta, tb, beta in shapes(quick):
            g_np, g_nd = bench_one(core, np, M, N, K, ta, tb, beta, runs, alternate=threads == 1)
            rows.append(dict(label=label, M=M, N=N, K=K, ta=ta, tb=tb, beta=beta, numpy=g_np, ours=g_nd))
        naive = bench_naive(core, np) if threads == 1 else []
        return dict(threads=threads, isa=core.gemm_isa(), blas=blas_info(), rows=rows, naive=naive,
                    package=os.path.dirname(nd.__file__))
    finally:
        if limiter is not None:
            limiter.restore_original_limits()


def bench_models(runs, filt, markdown, base_so=None, covered=False):
    """The model-shape grid (or, covered=True, the main table's shapes): ours vs torch (and a base build),
    1 thread, thread CPU time, calls alternated."""
    nd, core = import_core()
    import numpy as np
    import torch

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from ceiling import fma_peak

    base = None
    if base_so:  # another build's module, loaded beside ours under its own name, timed in the same rounds
        import importlib.machinery
        import importlib.util

        loader = importlib.machinery.ExtensionFileLoader("_core", base_so)
        spec = importlib.util.spec_from_file_location("_core", base_so, loader=loader)
        base = importlib.util.module_from_spec(spec)
        loader.exec_module(base)
        base.set_num_threads(1)
    core.set_num_threads(1)
    torch.set_num_threads(1)
    peak = fma_peak()
    print(f"# model GEMM shapes, float32, 1 thread, ours (isa={core.gemm_isa()}, {os.path.dirname(nd.__file__)}) vs "
          f"torch {torch.__version__}; thread CPU time, {runs} calls each alternated; fma peak {peak:.1f} GFLOP/s")
    print(f"# cpu: {cpu_model()}; load average at start: {os.getloadavg()[0]:.1f}")
    if base:
        print(f"# base: {base_so} (timed in the same rounds; 'base med' and 'ours/base med' columns)")
    head = ["shape", "op", "M", "N", "K", "model lda/ldb", "ours best", "ours med", "torch best", "torch med",
            "ours/torch med", "ours med % of fma peak"] + (["base med", "ours/base med"] if base else [])
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join("---" for _ in head) + "|")
    else:
        print("  ".join(head))
    rng = np.random.default_rng(0)
    tt = time.thread_time
    if covered:
        grid = [(lab, ta, tb, M, N, K, beta, "") for lab, M, N, K, ta, tb, beta in shapes(False)]
    else:
        grid = model_shapes()
    for label, ta, tb, M, N, K, beta, note in grid:
        if filt and filt not in label:
            continue
        a = rng.standard_normal((K, M) if ta else (M, K), dtype=np.float32)
        b = rng.standard_normal((N, K) if tb else (K, N), dtype=np.float32)
        c = rng.standard_normal((M, N), dtype=np.float32)
        c_t = torch.from_numpy(c.copy())
        a_t, b_t = torch.from_numpy(a), torch.from_numpy(b)
        av, bv = (a_t.T if ta else a_t), (b_t.T if tb else b_t)
        if beta == 0.0:
            f_t = lambda: torch.matmul(av, bv, out=c_t)  # noqa: E731
        else:
            f_t = lambda: c_t.addmm_(av, bv)  # noqa: E731
        f_o = lambda: core.gemm(a, b, c, ta, tb, 1.0, beta)  # noqa: E731
        c_b = c.copy()
        f_b = (lambda: base.gemm(a, b, c_b, ta, tb, 1.0, beta)) if base else None  # noqa: E731
        flops = 2.0 * M * N * K
        inner = max(1, int(2e7 / flops))  # >= ~0.3 ms per timing
        fs = [f_o, f_t] + ([f_b] if base else [])
        ts_all = [[] for _ in fs]
        for _ in range(2):
            for f in fs:
                f()
        for r in range(runs):
            order = list(range(len(fs)))
            order = order[r % len(fs):] + order[:r % len(fs)]  # rotate who goes first
            for i in order:
                s0 = tt()
                for _ in range(inner):
                    fs[i]()
                ts_all[i].append((tt() - s0) / inner)
        t_o, t_t = ts_all[0], ts_all[1]
        g = lambda t: flops / t / 1e9  # noqa: E731
        mo, mt = float(np.median(t_o)), float(np.median(t_t))
        op = ("T" if ta else "N") + ("T" if tb else "N") + (" b=1" if beta else "")
        cells = [label, op, str(M), str(N), str(K), note or "-", f"{g(min(t_o)):.1f}", f"{g(mo):.1f}",
                 f"{g(min(t_t)):.1f}", f"{g(mt):.1f}", f"{mt / mo:.2f}", f"{100 * g(mo) / peak:.0f}%"]
        if base:
            mb = float(np.median(ts_all[2]))
            cells += [f"{g(mb):.1f}", f"{mb / mo:.2f}"]
        print(("| " + " | ".join(cells) + " |") if markdown else "  ".join(cells), flush=True)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def print_results(results, markdown):
    first = results[0]
    print(f"# GEMM float32, ours (_core.gemm, isa={first['isa']}) vs numpy.matmul")
    print(f"# package: {first['package']}")
    b = first["blas"]
    print(f"# numpy {b.get('numpy')}: {b.get('api')} {b.get('version', '')} kernel={b.get('kernel')} "
          f"lib={b.get('lib')} env={b.get('env', {})}")
    print(f"# cpu: {cpu_model()}, {os.cpu_count()} logical CPUs; median GFLOP/s (2MNK / time), side by side")
    ths = [r["threads"] for r in results]
    head = ["shape", "op", "M", "N", "K"]
    for t in ths:
        head += [f"numpy {t}T", f"ours {t}T", f"ratio {t}T"]
    table = []
    for i, row in enumerate(first["rows"]):
        op = ("T" if row["ta"] else "N") + ("T" if row["tb"] else "N") + (" b=1" if row["beta"] else "")
        line = [row["label"].split()[0], op, str(row["M"]), str(row["N"]), str(row["K"])]
        for r in results:
            rr = r["rows"][i]
            line += [f"{rr['numpy']:.1f}", f"{rr['ours']:.1f}", f"{rr['ours'] / rr['numpy']:.2f}"]
        table.append(line)
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join("---" for _ in head) + "|")
        for line in table:
            print("| " + " | ".join(line) + " |")
    else:
        w = [max(len(h), *(len(l[j]) for l in table)) for j, h in enumerate(head)]
        print("  ".join(h.rjust(w[j]) for j, h in enumerate(head)))
        for line in table:
            print("  ".join(x.rjust(w[j]) for j, x in enumerate(line)))
    for r in results:
        for M, N, K, g_naive, g_fast in r["naive"]:
            print(f"# naive triple loop at {M}x{N}x{K} ({r['threads']}T): {g_naive:.2f} GFLOP/s; "
                  f"fast: {g_fast:.1f} GFLOP/s ({g_fast / g_naive:.0f}x)")
    for r in results:
        ratios = [rr["ours"] / rr["numpy"] for rr in r["rows"]]
        gm = math.exp(sum(math.log(x) for x in ratios) / len(ratios))
        print(f"# {r['threads']}T: geometric-mean ratio {gm:.2f}, min {min(ratios):.2f}, "
              f"shapes below 0.80: {sum(x < 0.8 for x in ratios)}/{len(ratios)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    ap.add_argument("--runs", type=int, default=25, help="timed rounds per shape (>= 20 for the record)")
    ap.add_argument("--quick", action="store_true", help="fewer shapes")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--models", action="store_true", help="the model-shape grid (1 thread, vs torch)")
    ap.add_argument("--models-filter", default="", help="only model shapes whose label contains this")
    ap.add_argument("--covered", action="store_true",
                    help="the main table's shapes through the --models harness (1 thread, vs torch and --base)")
    ap.add_argument("--base", default="", help="--models: also time this _core*.so (e.g. a build of main)")
    ap.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.models or args.covered:
        bench_models(args.runs, args.models_filter, args.markdown, args.base or None, covered=args.covered)
        return

    if args.worker:
        print(json.dumps(worker(args.worker, args.quick, args.runs)))
        return

    results = []
    try:
        import threadpoolctl  # noqa: F401

        in_process = True
    except ImportError:
        in_process = False
    for t in [int(x) for x in args.threads.split(",")]:
        if in_process:
            results.append(worker(t, args.quick, args.runs))
            continue
        env = dict(os.environ)
        for k in BLAS_ENV:
            env[k] = str(t)
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", str(t), "--runs", str(args.runs)]
        if args.quick:
            cmd.append("--quick")
        out = subprocess.run(cmd, env=env, check=True, stdout=subprocess.PIPE, text=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
    print_results(results, args.markdown)


if __name__ == "__main__":
    main()
