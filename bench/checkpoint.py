"""Checkpoint write / read speed against a plain file copy of the same size, and a SIGKILL stress test.

    PYTHONPATH=python python bench/checkpoint.py                  # speed table (markdown)
    PYTHONPATH=python python bench/checkpoint.py --sizes 16 64    # checkpoint sizes in MB (approximate)
    PYTHONPATH=python python bench/checkpoint.py --stress 300     # 300 SIGKILLs while saving

Speed: an MLP whose parameters take about a third of the requested size (the checkpoint also holds
Adam's two moment buffers) is fitted for one step; then, median of --repeat runs, in one process:
``model.save_checkpoint`` (atomic: temporary / unnamed file, fsync, link or rename, directory fsync;
SHA-256 of the payload), ``load_checkpoint`` (parse, checksum check, model rebuild), and as baselines a
plain ``shutil.copyfile`` of the same file followed by fsync (write) and reading the file into memory
(read; the page cache is warm for both). MB = 10^6 bytes.

Stress: a child that writes a checkpoint after every step (keep_last_n=2) is killed with SIGKILL at a
random moment (0 to 50 ms after its first checkpoint); after each kill every file in its directory must
load and no temporary file may remain (tests/test_fault_tolerance.py runs 20 of these).
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))

import neurodivergent  # noqa: E402
from neurodivergent import load_checkpoint  # noqa: E402
from neurodivergent.data.datasets import load_dataset  # noqa: E402
from neurodivergent.models.mlp import MLP, MLPConfig  # noqa: E402
from neurodivergent.training import TrainingConfig  # noqa: E402


def fitted_model(mb: float):
    # params ~ mb/3 MB: hidden x hidden dominates (2 hidden layers)
    n = int(mb * 1e6 / 3 / 4)
    hidden = max(16, int((n / 2) ** 0.5))
    m = MLP(MLPConfig().with_input_size(24).with_hidden_size(hidden).with_num_layers(2).with_horizon(12))
    m.fit_with_config(load_dataset("air_passengers"),
                      TrainingConfig().with_max_steps(1).with_verbose(False).with_batch_size(8))
    return m


def timed(fn, repeat):
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def copy_fsync(src, dst):
    shutil.copyfile(src, dst)
    fd = os.open(dst, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)


def read_all(path):
    with open(path, "rb") as f:
        return f.read()


def speed(sizes, repeat, compressions):
    rows = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as d:
        for mb in sizes:
            m = fitted_model(mb)
            for comp in (compressions if mb == sizes[0] else [None]):  # compressed: smallest size only
                suffix = {None: "", "gzip": ".gz", "lzma": ".xz"}[comp]
                counter = iter(range(10**6))

                def save():
                    m.save_checkpoint(os.path.join(d, f"c{next(counter)}.ckpt{suffix}"))

                t_save = timed(save, repeat)
                path = os.path.join(d, f"c0.ckpt{suffix}")
                size = os.path.getsize(path)
                raw = 0
                from neurodivergent.checkpointing import read_file

                tensors, _ = read_file(path)
                raw = sum(v.nbytes for v in tensors.values())
                t_load = timed(lambda: load_checkpoint(path), repeat)
                t_copy = timed(lambda: copy_fsync(path, os.path.join(d, "copy.bin")), repeat)
                t_read = timed(lambda: read_all(path), repeat)
                rows.append((mb, comp or "none", size, raw, t_save, t_load, t_copy, t_read))
                for f in os.listdir(d):
                    os.unlink(os.path.join(d, f))
    print(f"neurodivergent {neurodivergent.__version__}, numpy {np.__version__}, "
          f"{neurodivergent.get_num_threads()} thread(s), median of {repeat}\n")
    print("| tensors MB | compression | file MB | write ms | write MB/s | copy+fsync MB/s | read ms | read MB/s "
          "| plain read MB/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for mb, comp, size, raw, ts, tl, tc, tr in rows:
        print(f"| {raw / 1e6:.1f} | {comp} | {size / 1e6:.1f} | {ts * 1e3:.1f} | {raw / 1e6 / ts:.0f} | "
              f"{size / 1e6 / tc:.0f} | {tl * 1e3:.1f} | {raw / 1e6 / tl:.0f} | {size / 1e6 / tr:.0f} |")
    print("\n(write / read MB/s: uncompressed tensor bytes per second; copy / plain read: file bytes per second)")


def stress(trials, max_delay):
    worker = os.path.join(ROOT, "tests", "checkpoint_worker.py")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.join(ROOT, "python")
    env.update(ND_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")  # the zygote forks
    from neurodivergent.checkpointing.atomic import unnamed_temporaries_supported

    rng = random.Random(7)
    zygote = subprocess.Popen([sys.executable, worker, "zygote"], env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, bufsize=1)
    bad, temporaries, loaded, newest = 0, 0, 0, []
    with tempfile.TemporaryDirectory() as root:
        unnamed = unnamed_temporaries_supported(root)
        t0 = time.perf_counter()
        for trial in range(trials):
            d = os.path.join(root, f"t{trial}")
            os.mkdir(d)
            zygote.stdin.write(d + "\n")
            zygote.stdin.flush()
            pid, saving = None, False
            while pid is None or not saving:
                line = zygote.stdout.readline()
                if not line:
                    raise SystemExit("the zygote died")
                if line.startswith("pid "):
                    pid = int(line.split()[1])
                elif line.strip() in ("saving", "finished"):
                    saving = True
            time.sleep(rng.uniform(0, max_delay))
            os.kill(pid, signal.SIGKILL)
            while zygote.stdout.readline().strip() != "reaped":
                pass
            names = os.listdir(d)
            temporaries += sum(n.endswith(".tmp") for n in names)
            ok = [n for n in names if not n.endswith(".tmp")]
            if not ok:
                bad += 1
            for n in ok:
                try:
                    load_checkpoint(os.path.join(d, n))
                    loaded += 1
                except Exception as exc:  # noqa: BLE001 - counted, reported
                    print(f"trial {trial}: {n} does not load: {exc!r}")
                    bad += 1
            if ok:
                newest.append(max(int(n.split("_")[-1].split(".")[0]) for n in ok))
            shutil.rmtree(d)
        zygote.stdin.close()
        zygote.wait()
        took = time.perf_counter() - t0
    print(f"{trials} SIGKILLs while saving (0-{max_delay * 1e3:.0f} ms after the first checkpoint), {took:.1f} s: "
          f"{loaded} files checked, all loadable: {bad == 0}; temporary files left: {temporaries} "
          f"(unnamed temporaries: {unnamed}); newest checkpoint step at the kill: "
          f"min {min(newest)}, median {statistics.median(newest)}, max {max(newest)}")
    return 1 if bad or (unnamed and temporaries) else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=float, nargs="+", default=[4, 32, 128])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--compression", nargs="+", default=["none", "gzip", "lzma"])
    ap.add_argument("--stress", type=int, default=0, help="number of SIGKILL trials (0: speed only)")
    ap.add_argument("--max-delay", type=float, default=0.05)
    a = ap.parse_args()
    if a.stress:
        raise SystemExit(stress(a.stress, a.max_delay))
    comps = [None if c == "none" else c for c in a.compression]
    speed(a.sizes, a.repeat, comps)


if __name__ == "__main__":
    main()
