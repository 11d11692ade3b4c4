"""The ``neurodivergent`` command.

    neurodivergent train                      # bundled dataset, hold out the last horizon, print metrics
    neurodivergent train --data my.csv --horizon 24 --input-size 96 --model mlp --max-epochs 50 --output forecast.csv
    neurodivergent predict --model-file model.safetensors --data my.csv --output forecast.csv
    neurodivergent cv --dataset us_employment --horizon 12 --n-splits 3 --test-size 12 --max-epochs 5
    neurodivergent datasets
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import List, Optional

import numpy as np

from ._version import __version__

from .data.datasets import DEFAULT_DATASET
MODELS = ("mlp", "lstm", "gru", "transformer", "deepar")


def _positive(kind):
    def parse(s: str):
        try:
            v = kind(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {s!r}") from None
        if v <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {s}")
        return v

    return parse


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="neurodivergent", description="Neural time-series forecasting.")
    p.add_argument("--version", action="version", version=f"neurodivergent {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    t = sub.add_parser("train", help="train a model, evaluate it on the held-out last horizon, write the forecast")
    t.add_argument("--data", help=f"CSV in long format (unique_id, ds, y); default: the bundled '{DEFAULT_DATASET}'")
    t.add_argument("--dataset", help="name of a bundled dataset (see `neurodivergent datasets`)")
    t.add_argument("--model", default="mlp", choices=MODELS, help="model (default: mlp)")
    t.add_argument("--horizon", type=_positive(int), help="steps to forecast (default: the season length)")
    t.add_argument("--input-size", type=_positive(int), help="input window (default: 2 x horizon)")
    t.add_argument("--season", type=_positive(int), help="seasonal period for MASE and seasonal naive "
                   "(default: from the data's frequency)")
    t.add_argument("--hidden-size", type=_positive(int), default=None)
    t.add_argument("--num-layers", type=_positive(int), default=None)
    t.add_argument("--max-epochs", type=_positive(int), default=None)
    t.add_argument("--max-steps", type=_positive(int), default=None)
    t.add_argument("--batch-size", type=_positive(int), default=None)
    t.add_argument("--learning-rate", type=_positive(float), default=None)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=_positive(int), help="kernel threads (default: all cores)")
    t.add_argument("--id-col", default="unique_id")
    t.add_argument("--time-col", default="ds")
    t.add_argument("--target-col", default="y")
    t.add_argument("--freq", help="frequency of ds (default: inferred), e.g. H, D, M, 15min or an integer step")
    t.add_argument("--output", default="forecast.csv", help="where to write the forecast (default: forecast.csv)")
    t.add_argument("--save-model", help="also save the trained model (safetensors) here")
    t.add_argument("--no-holdout", action="store_true",
                   help="train on all data and forecast the future (no evaluation)")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    pr = sub.add_parser("predict", help="forecast with a saved model")
    pr.add_argument("--model-file", required=True)
    pr.add_argument("--data", required=True)
    pr.add_argument("--id-col", default="unique_id")
    pr.add_argument("--time-col", default="ds")
    pr.add_argument("--target-col", default="y")
    pr.add_argument("--freq")
    pr.add_argument("--output", default="forecast.csv")

    sub.add_parser("datasets", help="list the bundled datasets")
    _add_cv_parser(sub)
    _add_search_parser(sub)
    return p


def _test_size(s: str):
    try:
        v = int(s)
    except ValueError:
        try:
            v = float(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an int (steps per fold) or a fraction in (0, 1), got {s!r}") from None
        if not 0.0 < v < 1.0:
            raise argparse.ArgumentTypeError(f"a fractional test size must be in (0, 1), got {s}")
        return v
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {s}")
    return v


def _nonneg_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int, got {s!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {s}")
    return v


def _add_cv_parser(sub) -> None:
    c = sub.add_parser("cv", help="time-series cross-validation: refit the model per fold, print per-fold scores "
                                  "and their mean +- std")
    c.add_argument("--data", help=f"CSV in long format (unique_id, ds, y); default: the bundled '{DEFAULT_DATASET}'")
    c.add_argument("--dataset", help="name of a bundled dataset (see `neurodivergent datasets`)")
    c.add_argument("--model", default="mlp", choices=MODELS, help="model (default: mlp)")
    c.add_argument("--horizon", type=_positive(int), help="steps to forecast (default: the season length)")
    c.add_argument("--input-size", type=_positive(int), help="input window (default: 2 x horizon)")
    c.add_argument("--season", type=_positive(int), help="seasonal period of MASE (default: from the frequency)")
    c.add_argument("--hidden-size", type=_positive(int), default=None)
    c.add_argument("--num-layers", type=_positive(int), default=None)
    c.add_argument("--max-epochs", type=_positive(int), default=None)
    c.add_argument("--max-steps", type=_positive(int), default=None)
    c.add_argument("--batch-size", type=_positive(int), default=None)
    c.add_argument("--learning-rate", type=_positive(float), default=None)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--threads", type=_positive(int), help="kernel threads (default: all cores)")
    c.add_argument("--id-col", default="unique_id")
    c.add_argument("--time-col", default="ds")
    c.add_argument("--target-col", default="y")
    c.add_argument("--freq", help="frequency of ds (default: inferred)")
    c.add_argument("--n-splits", type=_positive(int), default=3, help="folds (default: 3)")
    c.add_argument("--test-size", type=_test_size, help="test steps per fold (int) or the share of the time axis "
                   "tested over all folds (fraction); default: the horizon")
    c.add_argument("--gap-size", type=_nonneg_int, default=0, help="steps between training and test (default: 0)")
    c.add_argument("--purge-size", type=_nonneg_int, default=0,
                   help="further observations dropped from the end of each training part (default: 0)")
    c.add_argument("--sliding", action="store_true", help="sliding training window of fixed length "
                   "(default: expanding)")
    c.add_argument("--max-train-size", type=_positive(int), help="cap on the training length")
    c.add_argument("--alignment", choices=("ds", "end"), default="ds",
                   help="ds: common calendar cutoffs (default); end: series aligned on their last value")
    c.add_argument("--exclude-short", action="store_true",
                   help="leave series that cannot take part in a fold out of it (listed) instead of failing")
    c.add_argument("--metrics", default="mae,mape,rmse,smape,mase",
                   help="comma-separated metrics (mae, mse, rmse, mape, smape, mase)")
    c.add_argument("--output", help="write the per-fold scores to this CSV")
    c.add_argument("--predictions", help="write every test forecast (fold, unique_id, ds, cutoff, y, model) to this CSV")
    c.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _load_data(args):
    from .data.datasets import load_dataset
    from .data.frame import TimeSeriesDataFrame

    if args.data and getattr(args, "dataset", None):
        raise ValueError("give either --data or --dataset, not both")
    if args.data:
        freq = args.freq
        if freq is not None and freq.lstrip("-").isdigit():
            freq = int(freq)
        return TimeSeriesDataFrame.from_csv(args.data, id_col=args.id_col, time_col=args.time_col,
                                            target_col=args.target_col, freq=freq), args.data
    name = getattr(args, "dataset", None) or DEFAULT_DATASET
    return load_dataset(name), f"bundled dataset '{name}'"


def _season(data, args) -> int:
    if args.season:
        return args.season
    freq = getattr(data, "freq", None)
    m = getattr(freq, "seasonality", None) if freq is not None else None
    return int(m) if m else 1


def _build_model(args, horizon: int, input_size: int):
    from .models.gru import GRU, GRUConfig
    from .models.lstm import LSTM, LSTMConfig
    from .models.mlp import MLP, MLPConfig

    from .models.transformer import Transformer, TransformerConfig

    from .models.deepar import DeepAR, DeepARConfig

    cls, cfg_cls = {"mlp": (MLP, MLPConfig), "lstm": (LSTM, LSTMConfig), "gru": (GRU, GRUConfig),
                    "transformer": (Transformer, TransformerConfig), "deepar": (DeepAR, DeepARConfig)}[args.model]
    cfg = cfg_cls().with_input_size(input_size).with_horizon(horizon)
    if args.hidden_size and args.model == "transformer":  # the token width (heads: the config's, 4)
        cfg = cfg.with_d_model(args.hidden_size)
    elif args.hidden_size:
        cfg = cfg.with_hidden_size(args.hidden_size)
    if args.num_layers:
        cfg = cfg.with_num_layers(args.num_layers)
    return cls(cfg)


def _training_config(args):
    from .training.config import TrainingConfig

    tc = TrainingConfig().with_seed(args.seed).with_verbose(not args.quiet)
    tc = tc.with_max_epochs(args.max_epochs or 100).with_max_steps(args.max_steps or 1000)
    tc = tc.with_batch_size(args.batch_size or 32)
    if args.learning_rate:
        tc = tc.with_learning_rate(args.learning_rate)
    return tc


def _table(rows: List[List[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(r, widths)))
                     for r in rows)


def _setup(args):
    """Threads, data, season length, horizon (default: one season), input size (default: two horizons)
    and the model, as `train` and `cv` choose them."""
    if args.threads:
        from . import set_num_threads

        set_num_threads(args.threads)
    data, source = _load_data(args)
    m = _season(data, args)
    horizon = args.horizon or max(m, 1)
    input_size = args.input_size or 2 * horizon
    return data, source, m, horizon, input_size, _build_model(args, horizon, input_size)


def cmd_train(args) -> int:
    from .validation import metrics as M
    from .validation.baselines import seasonal_naive

    data, source, m, horizon, input_size, model = _setup(args)
    tc = _training_config(args)
    print(f"data: {source}: {data.n_series} series, {len(data)} rows, frequency {data.freq}")
    print(f"model: {type(model).__name__} input_size={input_size} horizon={horizon} "
          f"{'d_model' if args.model == 'transformer' else 'hidden_size'}="
          f"{getattr(model.config, 'd_model', None) or model.config.hidden_size} num_layers={model.config.num_layers}")

    if args.no_holdout:
        t0 = time.perf_counter()
        model.fit_with_config(data, tc)
        print(f"trained in {time.perf_counter() - t0:.1f}s")
        fc = model.predict(data)
    else:
        train, test = data.split_last(horizon)
        t0 = time.perf_counter()
        logs = model.fit_with_config(train, tc)
        elapsed = time.perf_counter() - t0
        print(f"trained in {elapsed:.1f}s: {len(logs)} epochs, {logs.get_metric('step')} steps, "
              f"final training loss {logs.get_metric('training_loss'):.4f}")
        fc = model.predict(train)
        S = data.n_series
        y_true = np.stack([test.series_y(i) for i in range(S)])
        y_hat = fc.values(model.alias)
        y_train = [train.series_y(i) for i in range(S)]
        y_snaive = np.stack([seasonal_naive(y, horizon, m) for y in y_train])
        rows = [["model", "MAE", "sMAPE", "MASE"]]
        for name, pred in ((model.alias, y_hat), (f"SeasonalNaive(m={m})", y_snaive)):
            rows.append([name, f"{M.mae(y_true, pred):.4f}", f"{M.smape(y_true, pred):.3f}",
                         f"{M.mase(y_true, pred, y_train, m):.4f}"])
        print(f"\nheld-out last {horizon} steps of each series:")
        print(_table(rows))
    fc.to_csv(args.output)
    print(f"\nforecast ({len(fc)} rows) written to {args.output}")
    print(fc)
    if args.save_model:
        model.save(args.save_model)
        print(f"model saved to {args.save_model}")
    return 0


def cmd_predict(args) -> int:
    from .models.base import load_model

    model = load_model(args.model_file)
    data, _ = _load_data(args)
    fc = model.predict(data)
    fc.to_csv(args.output)
    print(f"forecast ({len(fc)} rows) written to {args.output}")
    return 0


def cmd_datasets(args) -> int:
    from .data.datasets import list_datasets

    rows = [["name", "series", "frequency", "description"]]
    for d in list_datasets():
        rows.append([str(d.get("name")), str(d.get("n_series")), str(d.get("freq")), str(d.get("description"))])
    print(_table(rows))
    return 0


def cmd_cv(args) -> int:
    from .data.csvio import format_floats, write_csv
    from .validation.cross_validation import TimeSeriesCrossValidator

    data, source, m, horizon, input_size, model = _setup(args)
    tc = _training_config(args).with_verbose(False)
    cv = TimeSeriesCrossValidator(
        n_splits=args.n_splits, test_size=args.test_size or horizon, gap_size=args.gap_size,
        purge_size=args.purge_size, expanding_window=not args.sliding, max_train_size=args.max_train_size,
        alignment=args.alignment, short_series="exclude" if args.exclude_short else "raise",
        season_length=m, scoring_metrics=[x.strip() for x in args.metrics.split(",") if x.strip()],
        verbose=not args.quiet)
    print(f"data: {source}: {data.n_series} series, {len(data)} rows, frequency {data.freq}")
    print(f"model: {type(model).__name__} input_size={input_size} horizon={horizon}; {cv.n_splits} folds, "
          f"test_size={cv.test_size}, gap_size={cv.gap_size}, purge_size={cv.purge_size}, "
          f"{'sliding' if args.sliding else 'expanding'} window")
    t0 = time.perf_counter()
    res = cv.cross_validate(model, data, tc)
    print(f"cross-validated in {time.perf_counter() - t0:.1f}s")
    table = res.to_dict("fold")
    rows = [["fold", "train rows", "test rows", *res.metrics]]
    for i in range(res.n_folds):
        rows.append([str(i), str(table["train_rows"][i]), str(table["test_rows"][i]),
                     *(f"{table[k][i]:.4f}" for k in res.metrics)])
    rows.append(["mean +- std", "", "", *(f"{res.mean(k):.4f} +- {res.std(k):.4f}" for k in res.metrics)])
    print(_table(rows))
    for i, exc in enumerate(res.excluded):
        if exc:
            print(f"fold {i}: left out {len(exc)} series: {', '.join(sorted(exc)[:5])}"
                  + (f" and {len(exc) - 5} more" if len(exc) > 5 else ""))
    if args.output:
        header = list(table)
        cols = [format_floats(v) if v.dtype.kind == "f" else [str(x) for x in v.tolist()] for v in table.values()]
        write_csv(args.output, header, cols)
        print(f"per-fold scores written to {args.output}")
    if args.predictions:
        res.predictions.to_csv(args.predictions)
        print(f"forecasts ({len(res.predictions)} rows) written to {args.predictions}")
    return 0


SEARCH_METHODS = ("grid", "random", "bayes", "nsga2")


def _add_search_parser(sub) -> None:
    s = sub.add_parser("search", help="hyperparameter search over forecasting models (space from a JSON / TOML "
                                      "file), each trial scored by time-series cross-validation")
    s.add_argument("--space", required=True, help="JSON or TOML file: {\"parameters\": [{\"name\", \"type\": "
                   "categorical | discrete | continuous, \"values\" | \"low\", \"high\", \"log_scale\"}]}")
    s.add_argument("--method", default="random", choices=SEARCH_METHODS, help="search algorithm (default: random)")
    s.add_argument("--data", help=f"CSV in long format (unique_id, ds, y); default: the bundled '{DEFAULT_DATASET}'")
    s.add_argument("--dataset", help="name of a bundled dataset (see `neurodivergent datasets`)")
    s.add_argument("--model", default="mlp", choices=MODELS, help="model when the space has no model_type (default: mlp)")
    s.add_argument("--horizon", type=_positive(int), help="steps to forecast (default: the season length)")
    s.add_argument("--input-size", type=_positive(int), help="input window (default: 2 x horizon)")
    s.add_argument("--cv-folds", type=_positive(int), default=3, help="cross-validation folds per trial (default: 3)")
    s.add_argument("--metric", default="mae", help="scoring metric: mae, mse, rmse, mape, smape, mase (default: mae)")
    s.add_argument("--n-trials", type=_positive(int), default=20, help="random: trials (default: 20)")
    s.add_argument("--early-stopping", type=_positive(int), help="random: stop after N trials without improvement")
    s.add_argument("--resolution", type=_positive(int), default=5, help="grid: points per continuous dimension (default: 5)")
    s.add_argument("--n-calls", type=_positive(int), default=30, help="bayes: trials (default: 30)")
    s.add_argument("--n-initial-points", type=_positive(int), default=10, help="bayes: random trials first (default: 10)")
    s.add_argument("--batch-size-bayes", type=_positive(int), default=1, dest="bayes_batch",
                   help="bayes: points proposed per round, evaluated in parallel (default: 1)")
    s.add_argument("--objectives", default="accuracy:max,model_size:min",
                   help="nsga2: name:min|max[:weight],... (accuracy, training_time, model_size, a metric); "
                        "default: accuracy:max,model_size:min")
    s.add_argument("--population-size", type=_positive(int), default=20, help="nsga2 (default: 20)")
    s.add_argument("--generations", type=_positive(int), default=10, help="nsga2 (default: 10)")
    s.add_argument("--n-jobs", type=int, default=1, help="trials in parallel worker processes (-1: all cores; default 1)")
    s.add_argument("--threads-per-trial", type=_positive(int), help="kernel threads per trial")
    s.add_argument("--timeout", type=_positive(float), help="time limit of the whole search, in seconds")
    s.add_argument("--seed", type=int, default=0, help="seed of the search and of every trial's training (default: 0)")
    s.add_argument("--max-epochs", type=_positive(int), default=None)
    s.add_argument("--max-steps", type=_positive(int), default=None)
    s.add_argument("--batch-size", type=_positive(int), default=None)
    s.add_argument("--learning-rate", type=_positive(float), default=None)
    s.add_argument("--id-col", default="unique_id")
    s.add_argument("--time-col", default="ds")
    s.add_argument("--target-col", default="y")
    s.add_argument("--freq", help="frequency of ds (default: inferred)")
    s.add_argument("--output", default="search_results.csv", help="results table (default: search_results.csv)")
    s.add_argument("--best-config", help="also write the best configuration (params, model and training configs) as JSON")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress line")


def _search_from_args(args):
    from .tuning import (BayesianOptimization, GridSearch, HyperparameterSpace, MultiObjectiveOptimization,
                         RandomSearch)

    space = HyperparameterSpace.from_file(args.space)
    if args.method == "grid":
        search = GridSearch().with_resolution(args.resolution)
    elif args.method == "random":
        search = RandomSearch().with_n_trials(args.n_trials).with_early_stopping(args.early_stopping)
    elif args.method == "bayes":
        search = (BayesianOptimization().with_n_calls(args.n_calls).with_n_initial_points(args.n_initial_points)
                  .with_batch_size(args.bayes_batch))
    else:
        search = (MultiObjectiveOptimization().with_population_size(args.population_size)
                  .with_generations(args.generations))
        for item in [x.strip() for x in args.objectives.split(",") if x.strip()]:
            parts = item.split(":")
            if len(parts) not in (2, 3):
                raise ValueError(f"--objectives: expected name:min|max[:weight], got {item!r}")
            try:
                weight = float(parts[2]) if len(parts) == 3 else 1.0
            except ValueError:
                raise ValueError(f"--objectives: the weight of {parts[0]!r} must be a number, got {parts[2]!r}") from None
            search = search.add_objective(parts[0], weight=weight, direction=parts[1])
    search = (search.with_parameter_space(space).with_cv_folds(args.cv_folds).with_scoring_metric(args.metric)
              .with_n_jobs(args.n_jobs).with_seed(args.seed).with_verbose(not args.quiet).with_model_type(args.model))
    if args.timeout:
        search = search.with_timeout(args.timeout)
    if args.threads_per_trial:
        search = search.with_threads_per_trial(args.threads_per_trial)
    return search


def cmd_search(args) -> int:
    import json

    from .checkpointing.atomic import atomic_write_text

    search = _search_from_args(args)
    data, source = _load_data(args)
    m = getattr(getattr(data, "freq", None), "seasonality", None)
    horizon = args.horizon or max(int(m or 1), 1)
    search = search.with_horizon(horizon).with_input_size(args.input_size or 2 * horizon)
    tc = _training_config(args)
    search = search.with_training_config(tc)
    print(f"data: {source}: {data.n_series} series, {len(data)} rows, frequency {data.freq}")
    print(f"search: {search.method} over {', '.join(search.parameter_space.names)}; horizon={horizon}, "
          f"{search.cv_folds} folds, metric {search.scoring_metric}, n_jobs={search.n_jobs}")
    t0 = time.perf_counter()
    best = search.fit(data)
    res = search.results
    print(f"{len(res)} trials ({len(res.completed)} completed) in {time.perf_counter() - t0:.1f}s"
          + (f"; stopped: {res.stopped_reason}" if res.stopped_reason else ""))
    if args.method == "nsga2":
        print(f"Pareto front: {len(search.pareto_front)} trials")
        for t in search.pareto_front:
            print(f"  trial {t.number}: {dict(zip(search.pareto_front.objectives, t.value))} {t.params}")
    print(f"best: {search.scoring_metric} {best.score:.6g} with {best.model_type} {best.params}")
    res.to_csv(args.output)
    print(f"results table written to {args.output}")
    if args.best_config:
        atomic_write_text(args.best_config, json.dumps(best.to_dict(), indent=2, sort_keys=True, default=str))
        print(f"best configuration written to {args.best_config}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return {"train": cmd_train, "predict": cmd_predict, "datasets": cmd_datasets,
                "cv": cmd_cv, "search": cmd_search}[args.command](args)
    except (ValueError, TypeError, OSError) as exc:
        print(f"neurodivergent: error: {exc}", file=sys.stderr)
        return 2
