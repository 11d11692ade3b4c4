"""The --passes option of bench/rnn.py and bench/attention.py: one row per configuration from several passes
over the same grid."""
import statistics

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
