"""Cross-validation: fold boundaries (hand-checked, scikit-learn TimeSeriesSplit semantics written out
from its documented definition), hypothesis properties, panels, blocked / custom splitters, refit per
fold without leakage, scores against hand computation, NeuralForecast-style rolling windows."""
import logging
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurodivergent.data.datasets import load_dataset
from neurodivergent.data.forecast import ForecastFrame
from neurodivergent.data.frame import TimeSeriesDataFrame
from neurodivergent.models.mlp import MLP, MLPConfig
from neurodivergent.training.config import Metric, TrainingConfig
from neurodivergent.validation import metrics as M
from neurodivergent.validation.cross_validation import (
    BlockedTimeSeriesCrossValidator,
    CrossValidationSplitter,
    CustomCrossValidator,
    CVResults,
    TimeSeriesCrossValidator,
    blocked_folds,
    check_folds,
    cross_validation,
    time_positions,
    time_series_folds,
)

FAST = TrainingConfig().with_max_epochs(2).with_batch_size(16).with_verbose(False).with_seed(3)


def _tiny_mlp(inp=12, h=6):
    return MLP(MLPConfig().with_input_size(inp).with_horizon(h).with_hidden_size(8).with_num_layers(1))


def _as_lists(folds):
    return [(list(tr), list(te)) for tr, te in folds]


def _one_series(n, start=0):
    return TimeSeriesDataFrame.from_arrays(None, np.arange(start, start + n), np.arange(n, dtype=float) + 1.0,
                                           freq=1)


# ------------------------------------------------------------------------------------ a tiny exact model
class _Cfg:
    def __init__(self, input_size=2, horizon=3):
        self.input_size, self.horizon = input_size, horizon


class LastValue:
    """A fake forecaster: predicts the last input value. Records every fit (class-level)."""

    fits = []

    def __init__(self, config=None):
        self.config = config if config is not None else _Cfg()
        self.alias = "LastValue"
        self.fitted = False

    def fit(self, data, config=None):
        LastValue.fits.append((data, config))
        self.fitted = True

    def fit_with_config(self, data, config):
        self.fit(data, config)

    def predict(self, data):
        assert self.fitted
        data.check_length(self.config.input_size)
        last = data.y[data.offsets[1:] - 1]
        h = self.config.horizon
        return ForecastFrame.from_arrays(data.ids, data.future_ds(h), {"LastValue": np.repeat(last[:, None], h, 1)})


@pytest.fixture(autouse=True)
def _reset_fits():
    LastValue.fits.clear()
    yield


# ==================================================================================== fold boundaries
# scikit-learn's TimeSeriesSplit (documented definition): test_size defaults to n // (n_splits + 1); fold i
# tests [n - (n_splits - i) * k, n - (n_splits - i - 1) * k); training is [0, test_start - gap), cut to its
# last max_train_size samples when that is set.
SKLEARN_CASES = [
    # TimeSeriesSplit() on 6 samples (its docstring example)
    (dict(n=6, n_splits=5), [([0], [1]), ([0, 1], [2]), ([0, 1, 2], [3]), ([0, 1, 2, 3], [4]),
                             ([0, 1, 2, 3, 4], [5])]),
    # TimeSeriesSplit(n_splits=3, test_size=2, gap=2) on 12 samples (its docstring example)
    (dict(n=12, n_splits=3, test_size=2, gap=2), [([0, 1, 2, 3], [6, 7]), ([0, 1, 2, 3, 4, 5], [8, 9]),
                                                  ([0, 1, 2, 3, 4, 5, 6, 7], [10, 11])]),
    # TimeSeriesSplit(max_train_size=3) on 6 samples
    (dict(n=6, n_splits=5, max_train=3), [([0], [1]), ([0, 1], [2]), ([0, 1, 2], [3]), ([1, 2, 3], [4]),
                                          ([2, 3, 4], [5])]),
    # TimeSeriesSplit(n_splits=2, test_size=3, gap=1) on 10 samples
    (dict(n=10, n_splits=2, test_size=3, gap=1), [([0, 1, 2], [4, 5, 6]), ([0, 1, 2, 3, 4, 5], [7, 8, 9])]),
    # TimeSeriesSplit(n_splits=3) on 10 samples: test_size = 10 // 4 = 2
    (dict(n=10, n_splits=3), [([0, 1, 2, 3], [4, 5]), ([0, 1, 2, 3, 4, 5], [6, 7]),
                              ([0, 1, 2, 3, 4, 5, 6, 7], [8, 9])]),
]


@pytest.mark.parametrize("case,expected", SKLEARN_CASES)
def test_folds_equal_sklearn_time_series_split(case, expected):
    folds = time_series_folds(case["n"], case["n_splits"], case.get("test_size"), case.get("gap", 0), 0, True,
                              case.get("max_train"))
    assert _as_lists(folds) == expected
    # the same folds as rows of a single-series frame, through the validator
    cv = TimeSeriesCrossValidator(n_splits=case["n_splits"], test_size=case.get("test_size"),
                                  gap_size=case.get("gap", 0), max_train_size=case.get("max_train"))
    assert _as_lists(cv.split(_one_series(case["n"], start=100))) == expected


def test_purge_drops_observations_from_the_end_of_training():
    # 20 steps, 2 folds of 3, gap 2, purge 1: tests [14, 17) and [17, 20); training ends 3 steps earlier
    cv = TimeSeriesCrossValidator(n_splits=2, test_size=3, gap_size=2, purge_size=1)
    assert _as_lists(cv.split(_one_series(20))) == [(list(range(0, 11)), [14, 15, 16]),
                                                    (list(range(0, 14)), [17, 18, 19])]


def test_sliding_window_keeps_the_first_folds_length():
    # 20 steps, 3 folds of 4, gap 1: tests [8,12) [12,16) [16,20); first training part [0, 7) has 7 steps
    cv = TimeSeriesCrossValidator(n_splits=3, test_size=4, gap_size=1, expanding_window=False)
    assert _as_lists(cv.split(_one_series(20))) == [(list(range(0, 7)), [8, 9, 10, 11]),
                                                    (list(range(4, 11)), [12, 13, 14, 15]),
                                                    (list(range(8, 15)), [16, 17, 18, 19])]
    # max_train_size shortens a sliding window further
    cv = cv.with_max_train_size(5)
    assert [list(tr) for tr, _ in cv.split(_one_series(20))] == [list(range(2, 7)), list(range(6, 11)),
                                                                 list(range(10, 15))]


def test_fraction_is_the_share_tested_over_all_folds():
    # the guide's 5 splits x 0.2: 144 steps, floor(0.2 * 144 / 5) = 5 steps per fold
    cv = TimeSeriesCrossValidator().with_n_splits(5).with_test_size(0.2).with_gap_size(7).with_purge_size(3)
    data = load_dataset("air_passengers")
    folds = cv.split(data)
    assert [len(te) for _, te in folds] == [5] * 5
    assert folds[0][1][0] == 144 - 25 and folds[-1][1][-1] == 143
    assert folds[0][0][-1] == 144 - 25 - 7 - 3 - 1
    same = cv.with_test_size(5).split(data)
    assert _as_lists(same) == _as_lists(folds)
    info = cv.fold_info(data)
    assert str(info[0]["test_start_ds"]).startswith("1958-12-01")


def test_bad_settings_fail_at_once_with_clear_messages():
    cv = TimeSeriesCrossValidator()
    with pytest.raises(ValueError, match="gap_size must be >= 0"):
        cv.with_gap_size(-1)
    with pytest.raises(ValueError, match="fraction must be in"):
        cv.with_test_size(1.5)
    with pytest.raises(ValueError, match="test_size must be >= 1"):
        cv.with_test_size(0)
    with pytest.raises(TypeError, match="test_size"):
        cv.with_test_size(True)
    with pytest.raises(ValueError, match="n_splits must be >= 1"):
        cv.with_n_splits(0)
    with pytest.raises(ValueError, match="unknown cross-validation metric"):
        cv.with_scoring_metrics(["mae", "owa"])
    with pytest.raises(ValueError, match="alignment"):
        cv.with_alignment("start")
    with pytest.raises(ValueError, match=r"too many splits: n_splits=5 folds of test_size=4 .* leave 0 training"):
        TimeSeriesCrossValidator(n_splits=5, test_size=4).split(_one_series(20))
    with pytest.raises(ValueError, match="less than one test step per fold"):
        TimeSeriesCrossValidator(n_splits=5, test_size=0.1).split(_one_series(20))
    assert cv.with_scoring_metrics([Metric.MAE, "RMSE"]).scoring_metrics == ("mae", "rmse")
    d = TimeSeriesCrossValidator(n_splits=3, test_size=0.25).to_dict()
    assert TimeSeriesCrossValidator.from_dict(d) == TimeSeriesCrossValidator(n_splits=3, test_size=0.25)


@settings(max_examples=150, deadline=None)
@given(T=st.integers(2, 120), n_splits=st.integers(1, 6), k=st.integers(1, 15), gap=st.integers(0, 6),
       purge=st.integers(0, 6), expanding=st.booleans(), max_train=st.one_of(st.none(), st.integers(1, 40)))
def test_fold_properties(T, n_splits, k, gap, purge, expanding, max_train):
    try:
        folds = time_series_folds(T, n_splits, k, gap, purge, expanding, max_train)
    except ValueError as exc:
        assert T - n_splits * k - gap - purge <= 0, exc
        return
    assert len(folds) == n_splits
    tests = [set(te) for _, te in folds]
    lengths = [len(tr) for tr, _ in folds]
    for i, (tr, te) in enumerate(folds):
        assert len(te) == k and te.stop <= T and len(tr) >= 1
        assert not set(tr) & set(te)                              # no overlap
        assert max(tr) < min(te)                                  # no test index before a training index
        assert min(te) - max(tr) - 1 == gap + purge               # the gap (and purge) is respected
        assert list(te) == list(range(te.start, te.stop))
        for j in range(i):
            assert not tests[i] & tests[j]                        # test stretches never overlap
        if max_train is not None:
            assert len(tr) <= max_train
    assert folds[-1][1].stop == T
    if expanding and max_train is None:
        assert all(tr.start == 0 for tr, _ in folds)
    if not expanding:
        assert len(set(lengths)) == 1                             # sliding: one fixed length


# ==================================================================================== panels
def _panel(spec, freq="D"):
    """spec: {id: (start date, n)} -> a frame with y = position."""
    ids, ds, y = [], [], []
    for sid, (start, n) in spec.items():
        d = np.arange(np.datetime64(start, "D"), np.datetime64(start, "D") + np.timedelta64(n, "D"))
        ids += [sid] * n
        ds.append(d)
        y.append(np.arange(n, dtype=float) + 10.0)
    return TimeSeriesDataFrame.from_arrays(ids, np.concatenate(ds), np.concatenate(y), freq=freq)


def test_ds_alignment_uses_common_calendar_cutoffs():
    data = _panel({"a": ("2020-01-01", 30), "b": ("2020-01-11", 20)})   # both end 2020-01-30
    pos, T = time_positions(data)
    assert T == 30 and list(pos[30:32]) == [10, 11]
    cv = TimeSeriesCrossValidator(n_splits=2, test_size=5, gap_size=1)
    folds = cv.split(data)
    for tr, te in folds:
        assert data.ds[te].min() > data.ds[tr].max()
        for sid in ("a", "b"):
            rows = te[data.row_ids[te] == sid]
            assert len(rows) == 5
    # series b starts on day 10: its training rows of fold 0 are days 10..18 (positions < 20 - 1)
    tr0 = folds[0][0]
    assert (data.row_ids[tr0] == "b").sum() == 9
    # the same panel aligned on ends gives the same folds here
    assert _as_lists(cv.with_alignment("end").split(data)) == _as_lists(folds)


def test_series_that_miss_part_of_the_test_stretch_raise_or_are_excluded(caplog):
    data = _panel({"a": ("2020-01-01", 30), "b": ("2020-01-01", 27), "c": ("2020-01-01", 30)})
    cv = TimeSeriesCrossValidator(n_splits=2, test_size=4)
    with pytest.raises(ValueError, match=r"fold 1: 1 series do not cover the whole test stretch .*'b'"):
        cv.split(data)
    with caplog.at_level(logging.WARNING, logger="neurodivergent"):
        folds = cv.with_short_series("exclude").split(data)
    assert "leaving out 1 series" in caplog.text
    info = cv.with_short_series("exclude").fold_info(data)
    assert info[0]["excluded"] == {} and list(info[1]["excluded"]) == ["b"]
    assert set(data.row_ids[folds[1][1]]) == {"a", "c"} and set(data.row_ids[folds[1][0]]) == {"a", "c"}
    assert set(data.row_ids[folds[0][1]]) == {"a", "b", "c"}
    # aligned on their ends, every series has the whole stretch
    assert len(cv.with_alignment("end").split(data)) == 2


def test_off_grid_series_are_rejected_for_ds_alignment():
    a = np.arange(np.datetime64("2020-01-01T00"), np.datetime64("2020-01-02T00")).astype("datetime64[s]")
    b = a + np.timedelta64(30, "m")
    data = TimeSeriesDataFrame.from_arrays(["a"] * 24 + ["b"] * 24, np.concatenate([a, b]),
                                           np.arange(48, dtype=float), freq="H")
    with pytest.raises(ValueError, match=r"series 'b' are not on the common 'H' grid .* alignment='end'"):
        time_positions(data)
    assert time_positions(data, "end")[1] == 24


@settings(max_examples=40, deadline=None)
@given(starts=st.lists(st.integers(0, 15), min_size=1, max_size=4), lens=st.lists(st.integers(12, 50), min_size=4,
       max_size=4), n_splits=st.integers(1, 3), k=st.integers(1, 4), gap=st.integers(0, 3), purge=st.integers(0, 2),
       expanding=st.booleans())
def test_panel_fold_properties(starts, lens, n_splits, k, gap, purge, expanding):
    spec = {f"s{i}": (str(np.datetime64("2021-03-01") + np.timedelta64(s, "D")), lens[i]) for i, s in enumerate(starts)}
    data = _panel(spec)
    pos, T = time_positions(data)
    cv = TimeSeriesCrossValidator(n_splits=n_splits, test_size=k, gap_size=gap, purge_size=purge,
                                  expanding_window=expanding, short_series="exclude", verbose=False)
    try:
        folds = cv.split(data)
    except ValueError:
        return  # too many splits or nothing left to test: covered by the messages' own tests
    check_folds(data, folds)
    for tr, te in folds:
        assert not np.intersect1d(tr, te).size
        for sid in np.unique(data.row_ids[te]):
            t = te[data.row_ids[te] == sid]
            r = tr[data.row_ids[tr] == sid]
            assert len(t) == k
            if len(r):
                assert pos[t].min() - pos[r].max() - 1 == gap + purge
        if len(tr):
            assert pos[te].min() - pos[tr].max() - 1 == gap + purge   # one calendar cutoff for all series


# ==================================================================================== blocked and custom
def test_blocked_folds_hand_checked():
    assert _as_lists(blocked_folds(30, 3, 10, 0.3)) == [
        (list(range(0, 7)), [7, 8, 9]), (list(range(10, 17)), [17, 18, 19]), (list(range(20, 27)), [27, 28, 29])]
    # blocks sit at the end of the axis; a gap shortens the training part
    assert _as_lists(blocked_folds(25, 2, 10, 0.2, gap_size=1)) == [
        (list(range(5, 12)), [13, 14]), (list(range(15, 22)), [23, 24])]
    with pytest.raises(ValueError, match="do not fit"):
        blocked_folds(25, 3, 10, 0.2)
    with pytest.raises(ValueError, match="leaves no training steps"):
        blocked_folds(25, 2, 2, 0.5, gap_size=1)


def test_blocked_series_splits_hold_out_groups_of_series():
    data = _panel({s: ("2020-01-01", 40) for s in "abcd"})
    cv = BlockedTimeSeriesCrossValidator().with_n_splits(2).with_block_size(20).with_test_ratio(0.25) \
        .with_series_splits(True)
    folds = cv.split(data)
    ids = data.row_ids
    assert set(ids[folds[0][1]]) == {"a", "b"} and set(ids[folds[0][0]]) == {"c", "d"}
    assert set(ids[folds[1][1]]) == {"c", "d"} and set(ids[folds[1][0]]) == {"a", "b"}
    pos, _ = time_positions(data)
    assert sorted(set(pos[folds[0][1]])) == [15, 16, 17, 18, 19] and sorted(set(pos[folds[0][0]])) == list(range(15))
    assert sorted(set(pos[folds[1][0]])) == list(range(20, 35))
    # no training step is used by two folds
    assert not set(pos[folds[0][0]]) & set(pos[folds[1][0]])
    with pytest.raises(ValueError, match="at least n_splits = 5 series"):
        cv.with_n_splits(5).with_block_size(8).split(data)
    with pytest.raises(ValueError, match="test_ratio must be in"):
        cv.with_test_ratio(1.0)


class SeasonalSplitter(CrossValidationSplitter):
    """Tests one season per fold, trains on the seasons_per_fold seasons before it."""

    def __init__(self, seasons_per_fold, season=12, n_folds=2):
        self.seasons_per_fold, self.season, self.n_folds = seasons_per_fold, season, n_folds

    def split(self, data):
        folds = []
        for k in range(self.n_folds, 0, -1):
            train, test = [], []
            for a, b in zip(data.offsets[:-1], data.offsets[1:]):
                t0 = b - k * self.season
                train.append(np.arange(max(a, t0 - self.seasons_per_fold * self.season), t0))
                test.append(np.arange(t0, t0 + self.season))
            folds.append((np.concatenate(train), np.concatenate(test)))
        return folds


def test_custom_splitter_folds_and_scores():
    data = load_dataset("us_macro_quarterly")
    cv = CustomCrossValidator().with_splitter(SeasonalSplitter(seasons_per_fold=4, season=4)) \
        .with_scoring_metrics([Metric.MAE, Metric.RMSE, Metric.MAPE])
    folds = cv.split(data)
    assert len(folds) == 2 and all(len(te) == 4 * data.n_series for _, te in folds)
    res = cv.cross_validate(LastValue(_Cfg(2, 3)), data)
    assert res.metrics == ("mae", "rmse", "mape") and res.n_folds == 2
    assert len(LastValue.fits) == 2 and all(d.lengths.max() == 16 for d, _ in LastValue.fits)
    with pytest.raises(TypeError, match="split"):
        CustomCrossValidator().with_splitter(object())
    with pytest.raises(ValueError, match="no splitter"):
        CustomCrossValidator().split(data)


@pytest.mark.parametrize("folds,msg", [
    ([([0, 1, 2], [1, 3])], "in both the training and the test index"),
    ([([0, 2], [3])], "not one contiguous stretch"),
    ([([5, 6], [3])], "test rows before training rows"),
    ([([0, 1], [99])], "out of range"),
    ([([0, 1], [])], "test index is empty"),
    ([], "no folds"),
    ([([0.0, 1.0], [3])], "int row positions"),
])
def test_check_folds_rejects_bad_splitter_output(folds, msg):
    data = _one_series(10)
    with pytest.raises((ValueError, TypeError), match=msg):
        check_folds(data, folds)


# ==================================================================================== cross_validate
def test_rolling_origins_inside_a_fold_with_an_exact_model():
    # one series 1..30, horizon 3, test_size 7: chunks start at the test start, +3, +6
    data = _one_series(30)
    cv = TimeSeriesCrossValidator(n_splits=2, test_size=7, gap_size=1, purge_size=1, verbose=False)
    res = cv.cross_validate(LastValue(_Cfg(2, 3)), data)
    p = res.predictions
    f0 = p["fold"] == 0
    # fold 0 tests steps 16..22 (y = step + 1); origins 16, 19, 22 see the values before them
    assert list(p["ds"][f0]) == list(range(16, 23))
    assert list(p["LastValue"][f0]) == [16, 16, 16, 19, 19, 19, 22]
    assert list(p["cutoff"][f0]) == [15, 15, 15, 18, 18, 18, 21]
    assert list(p["y"][f0]) == list(range(17, 24))
    # fitted on steps 0..13 only (gap 1 and purge 1 before the test start 16)
    trained = [d for d, _ in LastValue.fits]
    assert len(trained) == 2 and list(trained[0].ds) == list(range(0, 14)) and list(trained[1].ds) == list(range(0, 21))
    err = np.abs(np.arange(17, 24) - np.array([16, 16, 16, 19, 19, 19, 22.0]))
    assert res.fold_scores[0]["mae"] == pytest.approx(err.mean())
    assert res.fold_scores[0]["rmse"] == pytest.approx(math.sqrt((err ** 2).mean()))
    # MASE scale: mean |diff| of the history before the test stretch (y = 1..16, m = 1) = 1
    assert res.fold_scores[0]["mase"] == pytest.approx(err.mean())
    assert res.mean_mae() == pytest.approx(np.mean(res.scores("mae")))
    assert res.std_mae() == pytest.approx(np.std(res.scores("mae")))


def test_cross_validate_refits_a_fresh_mlp_per_fold_and_scores_match_predictions():
    data = load_dataset("us_employment")
    model = _tiny_mlp()
    cv = TimeSeriesCrossValidator(n_splits=3, test_size=8, verbose=False)
    res = cv.cross_validate(model, data, config=FAST)
    assert not model.is_fitted                                  # the model passed in is left alone
    assert isinstance(res, CVResults) and res.n_folds == 3
    p = res.predictions
    for f in range(3):
        sel = p["fold"] == f
        y, yh = p["y"][sel], p["MLP"][sel]
        assert res.fold_scores[f]["mae"] == pytest.approx(M.mae(y, yh))
        assert res.fold_scores[f]["smape"] == pytest.approx(M.smape(y, yh))
        assert res.fold_scores[f]["rmse"] == pytest.approx(M.rmse(y, yh))
        per = res.series_scores[f]
        assert len(per) == data.n_series
        sid = "nonfarm"
        rows = sel & (p["unique_id"] == sid)
        hist = data.series_y(sid)[: 120 - 8 * (3 - f)]
        assert per[sid]["mase"] == pytest.approx(M.mase(p["y"][rows], p["MLP"][rows], hist, 12))
        assert res.fold_scores[f]["mase"] == pytest.approx(np.mean([v["mase"] for v in per.values()]))
        assert res.folds[f].train_rows == data.n_series * (120 - 8 * (3 - f))
    # same seed, same folds: bitwise the same scores
    again = cv.cross_validate(model, data, config=FAST)
    assert again.fold_scores == res.fold_scores
    pd = pytest.importorskip("pandas")
    table = res.to_pandas()
    assert list(table.columns) == ["fold", "train_rows", "test_rows", "n_test_series", "mae", "mape", "rmse",
                                   "smape", "mase"]
    assert isinstance(res.to_pandas("series"), pd.DataFrame) and len(res.to_pandas("series")) == 3 * 22
    assert set(res.summary()) == set(res.metrics) and "MLP" in repr(res)


def test_no_leakage_fit_never_sees_the_test_part():
    data = load_dataset("air_passengers")
    cv = TimeSeriesCrossValidator(n_splits=2, test_size=12, verbose=False)
    model = MLP(MLPConfig().with_input_size(24).with_horizon(12).with_hidden_size(16).with_num_layers(1)
                .with_scaler("minmax"))
    base = cv.cross_validate(model, data, config=FAST)
    # wreck every value of fold 0's test stretch and after: fold 0 (fit + its forecast) must not move,
    # fold 1, which trains on part of it, must
    y = np.array(data.y)
    y[132 - 12:] = y[132 - 12:] * 50.0 + 1e4
    changed = TimeSeriesDataFrame.from_arrays(data.row_ids, data.ds, y, freq=data.freq)
    other = cv.cross_validate(model, changed, config=FAST)
    f0 = base.predictions["fold"] == 0
    np.testing.assert_array_equal(base.predictions["MLP"][f0], other.predictions["MLP"][f0])
    assert not np.allclose(base.predictions["MLP"][~f0], other.predictions["MLP"][~f0])


def test_gap_and_purge_rows_are_not_trained_on():
    data = _panel({"a": ("2020-01-01", 40), "b": ("2020-01-05", 36)})
    cv = TimeSeriesCrossValidator(n_splits=2, test_size=4, gap_size=2, purge_size=3, verbose=False)
    cv.cross_validate(LastValue(_Cfg(2, 4)), data)
    last_day = np.datetime64("2020-01-01") + np.timedelta64(40, "D")
    for (train, _), f in zip(LastValue.fits, range(2)):
        test_start = last_day - np.timedelta64(4 * (2 - f), "D")
        assert train.ds.max() == test_start - np.timedelta64(6, "D")          # gap 2 + purge 3 before the test start
        assert list(train.ids) == ["a", "b"]


def test_config_none_uses_the_models_default_fit_and_config_goes_to_fit_with_config():
    data = _one_series(30)
    cv = TimeSeriesCrossValidator(n_splits=2, test_size=3, verbose=False)
    cv.cross_validate(LastValue(_Cfg(2, 3)), data)
    assert [c for _, c in LastValue.fits] == [None, None]
    cv.cross_validate(LastValue(_Cfg(2, 3)), data, config=FAST)
    assert [c for _, c in LastValue.fits[2:]] == [FAST, FAST]
    with pytest.raises(TypeError, match="TrainingConfig"):
        cv.cross_validate(LastValue(_Cfg(2, 3)), data, config={"max_epochs": 1})
    with pytest.raises(TypeError, match="fit"):
        cv.cross_validate(object(), data)


def test_short_training_parts_raise_or_are_excluded_and_recorded(caplog):
    data = _panel({"long": ("2020-01-01", 60), "short": ("2020-02-05", 25)})
    cv = TimeSeriesCrossValidator(n_splits=2, test_size=5, verbose=False)
    model = LastValue(_Cfg(10, 8))                                  # needs 18 training rows
    with pytest.raises(ValueError, match=r"fold 0: 1 series have fewer training rows than input_size \+ "
                                         r"horizon = 18: 'short'"):
        cv.cross_validate(model, data)
    with caplog.at_level(logging.WARNING, logger="neurodivergent"):
        res = cv.with_short_series("exclude").cross_validate(model, data)
    assert "short" in res.excluded[0] and res.excluded[1] == {}
    assert list(res.series_scores[0]) == ["long"] and sorted(res.series_scores[1]) == ["long", "short"]
    assert "leaving out" in caplog.text


def test_metrics_argument_and_result_accessors():
    data = _one_series(30)
    cv = TimeSeriesCrossValidator(n_splits=3, test_size=3, verbose=False)
    res = cv.cross_validate(LastValue(_Cfg(2, 3)), data, metrics=["mae", Metric.SMAPE])
    assert res.metrics == ("mae", "smape")
    assert res.scores("MAE").shape == (3,) and math.isfinite(res.mean(Metric.SMAPE))
    with pytest.raises(KeyError, match="was not computed"):
        res.mean_rmse()
    with pytest.raises(ValueError, match="unknown cross-validation metric"):
        cv.cross_validate(LastValue(_Cfg(2, 3)), data, metrics=["r2"])


def test_blocked_series_splits_forecast_unseen_series_from_their_own_history():
    data = load_dataset("us_employment")
    cv = BlockedTimeSeriesCrossValidator(n_splits=2, block_size=48, test_ratio=0.25, series_splits=True,
                                         verbose=False)
    res = cv.cross_validate(_tiny_mlp(12, 6), data, config=FAST)
    groups = np.array_split(np.arange(22), 2)
    for f in range(2):
        assert sorted(res.series_scores[f]) == sorted(str(data.ids[i]) for i in groups[f])
        assert res.folds[f].n_train_series == 11 and res.folds[f].test_rows == 11 * 12


# ==================================================================================== cross_validation
def test_neuralforecast_style_windows_and_refit_schedule():
    data = _one_series(20)
    out = cross_validation(LastValue(_Cfg(2, 4)), data, n_windows=3, step_size=2)
    assert out.columns == ["unique_id", "ds", "cutoff", "y", "LastValue"]
    # test span 4 + 2 * 2 = 8: cutoffs at steps 11, 13, 15; window j forecasts the 4 steps after its cutoff
    assert list(out["cutoff"]) == [11] * 4 + [13] * 4 + [15] * 4
    assert list(out["ds"]) == [12, 13, 14, 15, 14, 15, 16, 17, 16, 17, 18, 19]
    assert list(out["LastValue"]) == [12.0] * 4 + [14.0] * 4 + [16.0] * 4
    assert list(out["y"]) == [d + 1.0 for d in out["ds"]]
    assert len(LastValue.fits) == 1 and list(LastValue.fits[0][0].ds) == list(range(12))   # refit=False
    LastValue.fits.clear()
    cross_validation(LastValue(_Cfg(2, 4)), data, n_windows=3, step_size=2, refit=True)
    assert [d.ds.max() for d, _ in LastValue.fits] == [11, 13, 15]
    LastValue.fits.clear()
    cross_validation(LastValue(_Cfg(2, 4)), data, n_windows=3, step_size=2, refit=2)
    assert [d.ds.max() for d, _ in LastValue.fits] == [11, 15]
    with pytest.raises(ValueError, match="need 24 test steps"):
        cross_validation(LastValue(_Cfg(2, 4)), data, n_windows=11, step_size=2)
    with pytest.raises(TypeError, match="refit"):
        cross_validation(LastValue(_Cfg(2, 4)), data, refit=0)


def test_cross_validation_on_a_panel_with_an_mlp(tmp_path):
    data = load_dataset("us_macro_quarterly")
    out = cross_validation(_tiny_mlp(8, 4), data, n_windows=2, step_size=4, refit=True, config=FAST)
    assert len(out) == data.n_series * 2 * 4
    assert out.model_columns == ["MLP"] and np.all(out["ds"] > out["cutoff"])
    assert np.all(np.isfinite(out["MLP"]))
    out.to_csv(tmp_path / "cv.csv")
    back = (tmp_path / "cv.csv").read_text().splitlines()
    assert back[0] == "unique_id,ds,cutoff,y,MLP" and len(back) == len(out) + 1
    pd = pytest.importorskip("pandas")
    df = out.to_pandas()
    assert list(df.columns) == out.columns and df["ds"].dtype.kind == "M"


# ==================================================================================== more properties
@settings(max_examples=100, deadline=None)
@given(T=st.integers(4, 200), n_splits=st.integers(1, 5), block=st.one_of(st.none(), st.integers(2, 60)),
       ratio=st.floats(0.05, 0.95), gap=st.integers(0, 4))
def test_blocked_fold_properties(T, n_splits, block, ratio, gap):
    try:
        folds = blocked_folds(T, n_splits, block, ratio, gap)
    except ValueError:
        B = T // n_splits if block is None else block
        assert B * n_splits > T or B < 1 or B - max(1, math.floor(ratio * B)) - gap < 1
        return
    used = set()
    for tr, te in folds:
        assert len(tr) >= 1 and len(te) >= 1
        assert max(tr) < min(te) and min(te) - max(tr) - 1 == gap
        assert not used & set(tr) and not used & set(te)          # blocks never share a step
        used |= set(range(tr.start, te.stop))
    assert folds[-1][1].stop == T


def test_validators_and_results_pickle_and_async_matches_sync():
    import asyncio
    import pickle

    cv = TimeSeriesCrossValidator(n_splits=2, test_size=0.3, gap_size=1, verbose=False)
    assert pickle.loads(pickle.dumps(cv)) == cv
    data = _one_series(40)
    res = cv.cross_validate(LastValue(_Cfg(3, 4)), data)
    back = pickle.loads(pickle.dumps(res))
    assert back.fold_scores == res.fold_scores and back.series_scores == res.series_scores
    res2 = asyncio.run(cv.cross_validate_async(LastValue(_Cfg(3, 4)), data))
    assert res2.fold_scores == res.fold_scores


def test_quantile_models_keep_every_output_column_and_score_the_median():
    from neurodivergent.training.losses import LossFunction, QuantileConfig

    data = load_dataset("us_macro_quarterly")
    cfg = FAST.with_loss_function(LossFunction.Quantile(QuantileConfig([0.1, 0.5, 0.9])))
    res = TimeSeriesCrossValidator(n_splits=2, test_size=4, verbose=False).cross_validate(_tiny_mlp(8, 4), data, cfg)
    p = res.predictions
    assert p.model_columns == ["MLP", "MLP-q-0.1", "MLP-q-0.5", "MLP-q-0.9"]
    np.testing.assert_array_equal(p["MLP"], p["MLP-q-0.5"])
    assert np.all(p["MLP-q-0.1"] <= p["MLP-q-0.9"])
    sel = p["fold"] == 1
    assert res.fold_scores[1]["mae"] == pytest.approx(M.mae(p["y"][sel], p["MLP-q-0.5"][sel]))


def test_validation_split_counts_towards_the_training_rows_a_series_needs():
    data = _one_series(40)
    cv = TimeSeriesCrossValidator(n_splits=1, test_size=10, verbose=False)
    # 30 training rows; input 6 + horizon 4 = 10 fit, but a 0.7 validation part leaves 9
    cv.cross_validate(_tiny_mlp(6, 4), data, config=FAST.with_validation_split(0.2))
    with pytest.raises(ValueError, match="plus the validation part"):
        cv.cross_validate(_tiny_mlp(6, 4), data, config=FAST.with_validation_split(0.7))
