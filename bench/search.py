"""Hyperparameter search throughput: trials per minute with n_jobs 1 and 2 on an M4 Hourly subset.

    PYTHONPATH=python python3 bench/search.py [--series 16 --trials 8 --max-steps 40 --cv-folds 2 --model mlp]

Reads ../shared/data/m4/ through bench/m4.py (never copied into the project). Takes the first
``--series`` series of the most common length (960 hourly values), and runs the same seeded
RandomSearch (hidden_size, num_layers, learning_rate; horizon 48, input 96; each trial a
``--cv-folds``-fold time-series cross-validation of a ``--max-steps``-step training run) with n_jobs = 1
and n_jobs = 2. Each configuration is run with the kernels' default threads (n_jobs=1: all cores; 2
workers: cores // 2 each) and, for the equality check, with one thread per trial. Prints wall time,
trials per minute, the speed-up, and whether both runs chose the same trials and scores.
"""
from __future__ import annotations

import argparse
import collections
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

import m4  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--series", type=int, default=16)
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--max-steps", type=int, default=40)
    ap.add_argument("--cv-folds", type=int, default=2)
    ap.add_argument("--model", default="mlp")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from neurodivergent import TrainingConfig, get_num_threads
    from neurodivergent.tuning import HyperparameterSpace, RandomSearch

    ids, train, _ = m4.load_m4()
    length = collections.Counter(len(t) for t in train).most_common(1)[0][0]
    keep = [i for i, t in enumerate(train) if len(t) == length][: args.series]
    data = m4.to_frame([ids[i] for i in keep], [train[i] for i in keep])
    space = (HyperparameterSpace().add_discrete("hidden_size", [32, 64, 128]).add_discrete("num_layers", [1, 2])
             .add_continuous("learning_rate", 1e-4, 1e-2, log_scale=True))
    tc = TrainingConfig().with_max_steps(args.max_steps).with_batch_size(64).with_seed(args.seed)
    base = (RandomSearch().with_parameter_space(space).with_n_trials(args.trials).with_seed(args.seed)
            .with_horizon(m4.H).with_input_size(2 * m4.H).with_cv_folds(args.cv_folds).with_training_config(tc)
            .with_model_type(args.model).with_verbose(False))
    cores = os.cpu_count() or 1
    print(f"M4 Hourly subset: {len(keep)} series x {length} values; {args.trials} trials of {args.model}, "
          f"{args.cv_folds}-fold CV, {args.max_steps} steps each; {cores} cores, {get_num_threads()} kernel threads")
    runs = {}
    for label, threads in (("default threads", None), ("1 thread per trial", 1)):
        for n_jobs in (1, 2):
            s = base.with_n_jobs(n_jobs).with_threads_per_trial(threads)
            t0 = time.perf_counter()
            s.fit(data)
            wall = time.perf_counter() - t0
            runs[(label, n_jobs)] = (wall, s.results)
            per = [t.duration for t in s.results]
            print(f"{label:>20}, n_jobs={n_jobs}: {wall:6.1f} s, {args.trials / wall * 60:6.1f} trials/min "
                  f"(median trial {np.median(per):.2f} s), best mae {s.results.best_value:.2f}")
        w1, r1 = runs[(label, 1)]
        w2, r2 = runs[(label, 2)]
        same_params = [t.params for t in r1] == [t.params for t in r2]
        same_values = [t.value for t in r1] == [t.value for t in r2]
        print(f"{label:>20}: n_jobs=2 is {w1 / w2:.2f}x n_jobs=1; same trials: {same_params}, "
              f"bitwise same scores: {same_values}")


if __name__ == "__main__":
    main()
