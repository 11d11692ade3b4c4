import re

import numpy as np
import pytest

from neurodivergent.data import ForecastFrame, Frequency, TimeSeriesDataFrame


def days(n, start="2020-01-01"):
    return np.datetime64(start) + np.arange(n) * np.timedelta64(1, "D")


@pytest.fixture
def panel():
    ids = ["b"] * 4 + ["a"] * 6
    ds = np.concatenate([days(4), days(6)])
    y = np.arange(10.0)
    return TimeSeriesDataFrame.from_arrays(ids, ds, y, temp=y * 2, static={"grp": {"a": "x", "b": "y"}})


def test_csr_layout_and_accessors(panel):
    assert panel.ids.tolist() == ["b", "a"]
    assert panel.offsets.tolist() == [0, 4, 10]
    assert panel.lengths.tolist() == [4, 6] and panel.lengths.dtype == np.int64
    assert len(panel) == 10 and panel.n_series == 2
    assert panel.y.dtype == np.float64 and panel.ds.dtype == np.dtype("datetime64[s]")
    assert panel.columns == ["unique_id", "ds", "y", "temp", "grp"]
    assert panel.series_y("a").tolist() == [4, 5, 6, 7, 8, 9]
    assert panel.series_y(0).base is not None  # a view
    assert not panel.series_y(0).flags.writeable
    assert panel.series_ds(1)[0] == np.datetime64("2020-01-01")
    assert panel.static["grp"].tolist() == ["y", "x"]
    assert panel.freq == Frequency("D")
    assert panel.last_ds().tolist() == [days(4)[-1].astype("datetime64[s]").item(), days(6)[-1].astype("datetime64[s]").item()]
    r = repr(panel)
    assert "n_series=2" in r and "freq='D'" in r and "exog=['temp']" in r
    with pytest.raises(KeyError, match="unknown series id 'zz'"):
        panel.series_y("zz")


def test_unsorted_input_sorted_stably():
    ids = ["s2", "s1", "s2", "s1", "s2"]
    ds = [3, 2, 1, 1, 2]
    y = [30, 20, 10, 11, 21]
    df = TimeSeriesDataFrame.from_arrays(ids, ds, y, x=[0.3, 0.2, 0.1, 0.11, 0.21])
    assert df.ids.tolist() == ["s2", "s1"]
    assert df.ds.tolist() == [1, 2, 3, 1, 2]
    assert df.y.tolist() == [10, 21, 30, 11, 20]
    assert df.exog["x"].tolist() == [0.1, 0.21, 0.3, 0.11, 0.2]


def test_from_arrays_exogenous_and_single_series():
    df = TimeSeriesDataFrame.from_arrays(None, [0, 1, 2], [1.0, 2.0, 3.0], a=[1, 2, 3], b=np.ones(3))
    assert df.ids.tolist() == ["series_0"]
    assert list(df.exog) == ["a", "b"] and df.exog["a"].dtype == np.float64
    assert df.freq == Frequency("int", 1)


def test_single_point_series_have_no_frequency():
    df = TimeSeriesDataFrame.from_arrays(["a", "b"], days(2), [1, 2])
    assert df.freq is None
    with pytest.raises(ValueError, match="frequency is unknown"):
        df.future_ds(2)
    assert str(TimeSeriesDataFrame.from_arrays(["a"], days(1), [1], freq="D").future_ds(1)[0, 0])[:10] == "2020-01-02"


def test_subset_and_split_last(panel):
    sub = panel.subset(["a"])
    assert sub.ids.tolist() == ["a"] and sub.series_y("a").tolist() == [4, 5, 6, 7, 8, 9]
    assert sub.static["grp"].tolist() == ["x"]
    assert panel.subset(["a", "b"]).ids.tolist() == ["a", "b"]
    with pytest.raises(ValueError, match=r"unknown series id\(s\): 'q'"):
        panel.subset(["q"])
    train, test = panel.split_last(2)
    assert train.lengths.tolist() == [2, 4] and test.lengths.tolist() == [2, 2]
    assert test.series_y("a").tolist() == [8, 9] and train.series_y("b").tolist() == [0, 1]
    assert test.exog["temp"].tolist() == [4, 6, 16, 18]
    assert np.array_equal(train.future_ds(2), test.ds.reshape(2, 2))
    with pytest.raises(ValueError, match=r"1 series is shorter than h \+ 1 \(split_last\(h=4\)\) = 5 .*'b' \(4\)"):
        panel.split_last(4)


def test_check_length_message():
    ids = np.repeat(["H1", "H2", "H7", "H9"], [96, 130, 100, 101])
    ds = np.concatenate([np.arange(n) for n in [96, 130, 100, 101]])
    df = TimeSeriesDataFrame.from_arrays(ids, ds, np.zeros(ds.shape[0]))
    with pytest.raises(ValueError, match=re.escape(
            "3 series are shorter than input_size + horizon = 120 (need >= 120 points): 'H1' (96), 'H7' (100), 'H9' (101)")):
        df.check_length(120, what="input_size + horizon")
    df.check_length(96, what="x")
    many = TimeSeriesDataFrame.from_arrays([f"s{i}" for i in range(7)], np.zeros(7, int), np.zeros(7))
    with pytest.raises(ValueError, match=r"7 series are shorter than 2 .*'s4' \(1\) and 2 more$"):
        many.check_length(2)
    with pytest.raises(TypeError):
        df.check_length(2.5)


@pytest.mark.parametrize("stamps,h,expected", [
    (["2020-10-31", "2020-11-30", "2020-12-31"], 3, ["2021-01-31", "2021-02-28", "2021-03-31"]),
    (["2020-11-01", "2020-12-01"], 2, ["2021-01-01", "2021-02-01"]),
    (["2020-01-01 22:00", "2020-01-01 23:00"], 2, ["2020-01-02T00:00:00", "2020-01-02T01:00:00"]),
])
def test_future_ds(stamps, h, expected):
    df = TimeSeriesDataFrame.from_arrays(["a"] * len(stamps), stamps, np.arange(len(stamps)))
    out = df.future_ds(h)
    assert out.shape == (1, h)
    assert [str(v)[:len(e)] for v, e in zip(out[0], expected)] == expected


def test_future_ds_integer_steps():
    df = TimeSeriesDataFrame.from_arrays(["a"] * 3 + ["b"] * 2, [0, 2, 4, 10, 12], np.arange(5))
    assert df.future_ds(2).tolist() == [[6, 8], [14, 16]]


def test_constructor_csr_validates():
    df = TimeSeriesDataFrame(["a", "b"], [0, 2, 3], [1, 2, 7], [1.0, 2.0, 3.0])
    assert df.freq == Frequency("int", 1)
    with pytest.raises(ValueError, match="offsets must"):
        TimeSeriesDataFrame(["a"], [0, 2, 3], [1, 2, 3], [1, 2, 3])
    with pytest.raises(ValueError, match="ds must be increasing"):
        TimeSeriesDataFrame(["a"], [0, 2], [2, 1], [1, 2])


def test_to_dict(panel):
    d = panel.to_dict()
    assert list(d) == panel.columns and d["unique_id"].tolist()[:5] == ["b"] * 4 + ["a"]
    assert d["grp"].tolist()[-1] == "x"


def test_forecast_frame():
    ds = np.array([[1, 2, 3], [5, 6, 7]])
    ff = ForecastFrame.from_arrays(np.array(["a", "b"]), ds, {"MLP": np.arange(6.0).reshape(2, 3),
                                                               "MLP-hi-80": np.ones((2, 3))})
    assert ff.columns == ["unique_id", "ds", "MLP", "MLP-hi-80"]
    assert len(ff) == 6 and ff.horizon == 3 and ff.n_series == 2
    assert ff["unique_id"].tolist() == ["a"] * 3 + ["b"] * 3
    assert ff["ds"].tolist() == [1, 2, 3, 5, 6, 7]
    assert ff.values("MLP").shape == (2, 3) and ff.to_numpy("MLP")[1, 0] == 3
    assert "ForecastFrame(n_series=2, horizon=3" in repr(ff) and "MLP-hi-80" in repr(ff)
    ts = ff.to_timeseries("MLP")
    assert ts.y.tolist() == [0, 1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match=r"column 'MLP' must have shape \(2, 3\)"):
        ForecastFrame.from_arrays(["a", "b"], ds, {"MLP": np.zeros((2, 2))})
    with pytest.raises(KeyError, match="no column 'X'"):
        ff["X"]


def test_pandas_round_trip(panel):
    pd = pytest.importorskip("pandas")
    pdf = panel.to_pandas()
    assert list(pdf.columns) == panel.columns
    back = TimeSeriesDataFrame.from_pandas(pdf, static_cols=["grp"])
    assert back.equals(panel)
    tz = pd.DataFrame({"unique_id": ["a", "a"], "ds": pd.to_datetime(["2020-01-01", "2020-01-02"]).tz_localize("UTC"),
                       "y": [1.0, 2.0]})
    assert TimeSeriesDataFrame.from_pandas(tz).freq == Frequency("D")
    nf = pd.DataFrame({"ds": [1, 2], "y": [1.0, None]}, index=pd.Index(["a", "a"], name="unique_id"))
    with pytest.raises(ValueError, match="series 'a' has 1 missing value in 'y'"):
        TimeSeriesDataFrame.from_pandas(nf)
    ff = ForecastFrame.from_arrays(["a"], np.array([[1, 2]]), {"M": np.zeros((1, 2))})
    assert list(ff.to_pandas().columns) == ["unique_id", "ds", "M"]


def test_polars_round_trip(panel):
    pytest.importorskip("polars")
    back = TimeSeriesDataFrame.from_polars(panel.to_polars(), static_cols=["grp"])
    assert back.equals(panel)
    ff = ForecastFrame.from_arrays(["a"], np.array([[1, 2]]), {"M": np.zeros((1, 2))})
    assert ff.to_polars().columns == ["unique_id", "ds", "M"]
    ff = ForecastFrame.from_arrays(["a"], np.array([["2020-01-01", "2020-01-02"]], dtype="datetime64[s]"),
                                   {"M": np.zeros((1, 2))})
    assert ff.to_polars()["ds"].dtype.time_unit == "us"


def test_missing_optional_dependency_message(panel, monkeypatch):
    import builtins
    real = builtins.__import__

    def fake(name, *a, **k):
        if name == "pandas":
            raise ImportError("no pandas")
        return real(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ImportError, match=r"pip install 'neurodivergent\[pandas\]'"):
        panel.to_pandas()
