"""The --passes and --clock options of bench/rnn.py and bench/attention.py: one row per configuration from
several passes over the same grid, and the clock the timings are taken with."""
import statistics
import time

TIMES = ("fwd_ours", "fwd_torch", "train_ours", "train_torch", "gf_fwd_ours", "gf_fwd_torch", "gf_train_ours",
         "gf_train_torch")


def ratio(r, mode):
    """torch time / our time of one row (the median of the per-pass ratios for an aggregated row)."""
    return r.get(f"{mode}_x", r[f"{mode}_torch"] / r[f"{mode}_ours"])


def aggregate(rows, key_fields, extra=()):
    """Rows of several passes -> one row per configuration (the values of ``key_fields``): times (and ``extra``
    fields) are the medians over the passes, the speed-ups the medians of the per-pass speed-ups (each pass
    alternates the two libraries call by call, so its ratio is a paired measurement; a pass disturbed by the
    host is outvoted), and every pass's speed-up is kept in <mode>_x_passes."""
    groups = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in key_fields), []).append(r)
    out = []
    for rs in groups.values():
        if len(rs) == 1:
            out.append(rs[0])
            continue
        a = dict(rs[0])
        for k in TIMES + tuple(extra):
            a[k] = statistics.median(r[k] for r in rs)
        for mode in ("fwd", "train"):
            xs = [r[f"{mode}_torch"] / r[f"{mode}_ours"] for r in rs]
            a[f"{mode}_x"] = statistics.median(xs)
            a[f"{mode}_x_passes"] = xs
        a["passes"] = len(rs)
        out.append(a)
    return out


def add_arguments(p):
    """--clock and --passes on an argparse parser."""
    p.add_argument("--clock", default="auto", choices=["auto", "cpu", "wall"],
                   help="cpu: process CPU time (fair on a loaded machine, 1 thread only); wall: perf_counter; "
                        "auto: cpu at 1 thread, wall otherwise (bench/rnn.py used wall time throughout before "
                        "2026-11-29)")
    p.add_argument("--passes", type=int, default=1,
                   help="run the whole grid this many times in a row and report per configuration the median of "
                        "the per-pass speed-ups, with every pass's value")


def pick_clock(name, threads):
    """The timer for --clock ``name`` at ``threads`` threads."""
    return time.process_time if name == "cpu" or (name == "auto" and threads == 1) else time.perf_counter


def pass_columns(r):
    """The 'fwd x per pass' and 'train x per pass' cells of a row."""
    return ["/".join(f"{x:.2f}" for x in r.get(f"{m}_x_passes", [ratio(r, m)])) for m in ("fwd", "train")]
