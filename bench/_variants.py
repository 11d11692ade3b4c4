"""The --variants option of bench/lstm_cpu_time.py and bench/gru_cpu_time.py: A/B runs inside one process whose
variants differ only by environment variables the kernels read on every call."""
import os


def parse_variants(spec):
    """"name:VAR=v,VAR=v;name2:..." -> ([(name, {VAR: v})...], every VAR named by any variant)."""
    variants = []
    for part in spec.split(";"):
        name, _, kv = part.partition(":")
        variants.append((name, dict(x.split("=", 1) for x in kv.split(",") if x)))
    return variants, {k for _, d in variants for k in d}


def apply_env(env, keys):
    """Set one variant's variables, clearing the other variants' ones (``env`` = {} clears them all)."""
    for k in keys:
        os.environ.pop(k, None)
    os.environ.update(env)
