import gzip
import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from neurodivergent.data import ForecastFrame, TimeSeriesDataFrame
from neurodivergent.data.csvio import read_csv


def write(tmp_path, text, name="data.csv", raw=None):
    p = tmp_path / name
    p.write_bytes(raw if raw is not None else text.encode("utf-8"))
    return str(p)


def test_quoted_fields_crlf_bom_and_trailing_blank_lines(tmp_path):
    raw = ("\ufeffunique_id,ds,y\r\n"
           "\"A, the first\",2020-01-01,1.5\r\n"
           "\"A, the first\",2020-01-02,\"2.5\"\r\n"
           "\"B \"\"quoted\"\"\",2020-01-01,3\r\n"
           "\r\n\r\n").encode("utf-8")
    df = TimeSeriesDataFrame.from_csv(write(tmp_path, "", raw=raw))
    assert df.ids.tolist() == ["A, the first", 'B "quoted"']
    assert df.y.tolist() == [1.5, 2.5, 3.0]
    assert df.columns == ["unique_id", "ds", "y"]
    assert str(df.freq) == "D"


def test_line_numbers_skip_blank_lines(tmp_path):
    t = read_csv(write(tmp_path, "a,b\n\n1,2\n\n3,4\n\n"))
    assert t.line_numbers.tolist() == [3, 5]
    assert t.columns["b"].tolist() == ["2", "4"]


def test_integer_ds_and_iso_timestamps(tmp_path):
    df = TimeSeriesDataFrame.from_csv(write(tmp_path, "unique_id,ds,y\nA,1,1\nA,2,2\nA,3,3\n"))
    assert df.ds.dtype == np.int64 and str(df.freq) == "1"
    for stamps in (["2020-01-01 13:00:00", "2020-01-01 14:00:00"], ["2020-01-01T13:00", "2020-01-01T14:00"],
                   ["2020-01-01T13:00:00Z", "2020-01-01T14:00:00Z"]):
        text = "unique_id,ds,y\n" + "".join(f"A,{s},{i}\n" for i, s in enumerate(stamps))
        df = TimeSeriesDataFrame.from_csv(write(tmp_path, text))
        assert df.ds.dtype == np.dtype("datetime64[s]")
        assert df.ds[0] == np.datetime64("2020-01-01T13:00:00") and str(df.freq) == "H"


def test_no_id_column_is_one_series(tmp_path):
    df = TimeSeriesDataFrame.from_csv(write(tmp_path, "ds,y\n2020-01-01,1\n2020-02-01,2\n"))
    assert df.ids.tolist() == ["series_0"] and str(df.freq) == "MS"


def test_custom_columns_exog_static(tmp_path):
    text = ("store;when;sales;price;region\n"
            "s1;2020-01-01;10;1.5;north\n" "s1;2020-01-02;11;1.6;north\n"
            "s2;2020-01-01;20;2.5;south\n" "s2;2020-01-02;21;2.6;south\n")
    df = TimeSeriesDataFrame.from_csv(write(tmp_path, text), id_col="store", time_col="when", target_col="sales",
                                      delimiter=";", static_cols=["region"])
    assert df.columns == ["unique_id", "ds", "y", "price", "region"]
    assert df.exog["price"].tolist() == [1.5, 1.6, 2.5, 2.6]
    assert df.static["region"].tolist() == ["north", "south"]


def test_gzip(tmp_path):
    p = tmp_path / "d.csv.gz"
    p.write_bytes(gzip.compress(b"unique_id,ds,y\nA,1,1\nA,2,2\n"))
    assert len(TimeSeriesDataFrame.from_csv(str(p))) == 2


def test_round_trip_csv_frame_csv(tmp_path):
    d = np.datetime64("2021-03-01T00:00") + np.arange(30) * np.timedelta64(1, "h")
    ids = np.repeat(["x", "y,z"], 15)
    ds = np.concatenate([d[:15], d[:15]])
    y = np.linspace(-1, 1, 30) ** 3 / 7
    df = TimeSeriesDataFrame.from_arrays(ids, ds, y, temp=np.arange(30) * 0.1, static={"k": np.repeat([1, 2], 15)})
    p1, p2 = str(tmp_path / "a.csv"), str(tmp_path / "b.csv")
    df.to_csv(p1)
    back = TimeSeriesDataFrame.from_csv(p1, static_cols=["k"])
    assert back.equals(df)
    back.to_csv(p2)
    assert open(p1).read() == open(p2).read()
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_forecast_frame_csv_round_trip(tmp_path):
    ds = np.datetime64("2020-01-01") + np.arange(3)[None, :] * np.timedelta64(1, "D") + np.zeros((2, 1), "timedelta64[D]")
    ff = ForecastFrame.from_arrays(["a", "b"], ds, {"MLP": np.arange(6.0).reshape(2, 3), "MLP-lo-80": np.zeros((2, 3))})
    p = str(tmp_path / "fc.csv")
    ff.to_csv(p)
    back = TimeSeriesDataFrame.from_csv(p, target_col="MLP")
    assert back.ids.tolist() == ["a", "b"]
    assert back.y.tolist() == list(range(6))
    assert back.exog["MLP-lo-80"].tolist() == [0.0] * 6
    assert str(back.freq) == "D"


ids_st = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"), blacklist_characters="\ufeff"),
                 min_size=1, max_size=8).map(str.strip).filter(bool)
values_st = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(ids_st, st.lists(values_st, min_size=1, max_size=12)), min_size=1, max_size=5,
                unique_by=lambda t: t[0]),
       st.sampled_from(["D", "H", "MS", "1"]), st.booleans())
def test_property_csv_round_trip(tmp_path_factory, series, freq, crlf):
    from neurodivergent.data import Frequency
    f = Frequency.parse(freq)
    start = np.int64(0) if f.is_integer else np.datetime64("2019-01-01T00:00:00")
    ids, ds, ys = [], [], []
    for sid, vals in series:
        ids += [sid] * len(vals)
        ds.append(f.range(start, len(vals)))
        ys += vals
    df = TimeSeriesDataFrame.from_arrays(np.array(ids), np.concatenate(ds), np.array(ys), freq=freq)
    d = tmp_path_factory.mktemp("rt")
    p = str(d / "x.csv")
    df.to_csv(p)
    if crlf:
        data = open(p, "rb").read().replace(b"\n", b"\r\n")
        open(p, "wb").write(b"\xef\xbb\xbf" + data + b"\r\n\r\n")
    back = TimeSeriesDataFrame.from_csv(p, freq=freq)
    assert back.equals(df)
    assert back.ids.tolist() == [s for s, _ in series]
