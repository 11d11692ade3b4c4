"""GEMM benchmark: neurodivergent._core.gemm vs numpy.matmul (the BLAS numpy links, OpenBLAS here).

    PYTHONPATH=python python3 bench/gemm.py            # full table, 1 and 2 threads
    PYTHONPATH=python python3 bench/gemm.py --quick    # fewer shapes / runs
    options: --threads 1,2  --runs 25  --markdown

float32 everywhere. For every shape the two libraries are timed side by side after warm-up, on 1
thread alternately (one call of each per round), on several threads in two interleaved blocks of
calls per library with a pause before each block (OpenBLAS's idle workers spin for ~0.1-0.2 s and
would steal a core from the next block), so that a noisy, shared machine slows both alike; the table shows the median time of >= 20 calls as
GFLOP/s (2*M*N*K / time) and ours / numpy. Both are called through Python with
preallocated outputs (numpy.matmul(..., out=c); _core.gemm(a, b, c, ...)).

Threads: ours via _core.set_num_threads(n); numpy's BLAS via threadpoolctl when it is importable,
otherwise each thread count runs in a subprocess with OPENBLAS_NUM_THREADS / OMP_NUM_THREADS /
MKL_NUM_THREADS set before numpy is imported.
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
    ap.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()

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
