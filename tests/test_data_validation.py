import re

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from neurodivergent.data import TimeSeriesDataFrame


def csv(tmp_path, text, name="data.csv", raw=None):
    p = tmp_path / name
    p.write_bytes(raw if raw is not None else text.encode("utf-8"))
    return str(p)


def days(n, start="2015-01-01"):
    return np.datetime64(start) + np.arange(n) * np.timedelta64(1, "D")


def test_missing_columns_named_and_found_listed(tmp_path):
    with pytest.raises(ValueError, match=r"missing column 'y' \(target_col\); columns found: \['unique_id', 'ds', 'value'\]"):
        TimeSeriesDataFrame.from_csv(csv(tmp_path, "unique_id,ds,value\nA,1,2\n"))
    with pytest.raises(ValueError, match=r"missing columns 'ds' \(time_col\), 'y' \(target_col\)"):
        TimeSeriesDataFrame.from_csv(csv(tmp_path, "unique_id,x\nA,1\n"))
    with pytest.raises(ValueError, match=r"missing column 'series' \(id_col\)"):
        TimeSeriesDataFrame.from_csv(csv(tmp_path, "unique_id,ds,y\nA,1,2\n"), id_col="series")
    with pytest.raises(ValueError, match=r"case-sensitive: 'y' -> 'Y'"):
        TimeSeriesDataFrame.from_csv(csv(tmp_path, "unique_id,ds,Y\nA,1,2\n"))
    with pytest.raises(ValueError, match=r"missing column 'region' \(static_cols\)"):
        TimeSeriesDataFrame.from_csv(csv(tmp_path, "unique_id,ds,y\nA,1,2\n"), static_cols=["region"])


def test_empty_file_and_no_rows(tmp_path):
    with pytest.raises(ValueError, match="the file is empty"):
        TimeSeriesDataFrame.from_csv(csv(tmp_path, ""))
    with pytest.raises(ValueError, match="the file is empty"):
        TimeSeriesDataFrame.from_csv(csv(tmp_path, "\n\r\n  \n"))
    with pytest.raises(ValueError, match=r"no data rows after the header \['unique_id', 'ds', 'y'\]"):
        TimeSeriesDataFrame.from_csv(csv(tmp_path, "unique_id,ds,y\n\n"))
    with pytest.raises(ValueError, match="no data rows"):
        TimeSeriesDataFrame.from_arrays([], [], [])


def test_wrong_delimiter_suggests_detected(tmp_path):
    with pytest.raises(ValueError, match=r"looks ';'-separated: pass delimiter=';'"):
        TimeSeriesDataFrame.from_csv(csv(tmp_path, "unique_id;ds;y\nA;2020-01-01;1,5\n"))
    with pytest.raises(ValueError, match=r"looks '\\t' \(tab\)-separated: pass delimiter='\\t'"):
        TimeSeriesDataFrame.from_csv(csv(tmp_path, "unique_id\tds\ty\nA\t1\t1\n"))


def test_non_utf8_bytes_offset_and_line(tmp_path):
    raw = "unique_id,ds,y\nA,1,1\nCaf".encode() + b"\xe9" + b",2,2\n"
    with pytest.raises(ValueError, match=r"not valid UTF-8: byte 0xe9 at byte offset 24 \(line 3, column 4"):
        TimeSeriesDataFrame.from_csv(csv(tmp_path, "", raw=raw))


def test_wrong_field_count(tmp_path):
    with pytest.raises(ValueError, match=r"expected 3.*line 3 has 2"):
        TimeSeriesDataFrame.from_csv(csv(tmp_path, "unique_id,ds,y\nA,1,1\nA,2\n"))


def test_non_numeric_y_names_values_series_ds(tmp_path):
    text = "unique_id,ds,y\nA,2020-01-01,1\nA,2020-01-02,abc\nB,2020-01-01,x1\n"
    with pytest.raises(ValueError, match=r"'y' must be numeric; 2 non-numeric value\(s\): 'abc' \(series 'A', "
                                         r"ds=2020-01-02, line 3\), 'x1' \(series 'B', ds=2020-01-01, line 4\)"):
        TimeSeriesDataFrame.from_csv(csv(tmp_path, text))
    with pytest.raises(ValueError, match=r"'price' must be numeric.*static_cols"):
        TimeSeriesDataFrame.from_arrays(["A", "A"], [1, 2], [1, 2], price=np.array(["cheap", "dear"]))


def test_nan_message_matches_design(tmp_path):
    ds = np.concatenate([days(5), days(5)])
    y = np.arange(10.0)
    y[[6, 7, 9]] = np.nan
    ids = ["H1"] * 5 + ["H17"] * 5
    with pytest.raises(ValueError, match=re.escape("series 'H17' has 3 missing values in 'y' (first at ds=2015-01-02)")):
        TimeSeriesDataFrame.from_arrays(ids, ds, y)
    # empty cells and NA tokens in a CSV are missing values too
    text = "unique_id,ds,y\nH1,2015-01-01,1\nH1,2015-01-02,\nH1,2015-01-03,NA\n"
    with pytest.raises(ValueError, match=re.escape("series 'H1' has 2 missing values in 'y' (first at ds=2015-01-02)")):
        TimeSeriesDataFrame.from_csv(csv(tmp_path, text))


def test_inf_and_exog_nan_and_many_series():
    with pytest.raises(ValueError, match=re.escape("series 'A' has 1 infinite value in 'y' (first at ds=2015-01-03)")):
        TimeSeriesDataFrame.from_arrays(["A"] * 4, days(4), [1, 2, np.inf, 3])
    with pytest.raises(ValueError, match=re.escape("series 'A' has 1 missing value in 'temp' (first at ds=2015-01-01)")):
        TimeSeriesDataFrame.from_arrays(["A"] * 2, days(2), [1, 2], temp=[np.nan, 1.0])
    ids = np.repeat([f"S{i}" for i in range(8)], 3)
    y = np.zeros(24)
    y[::3] = np.nan
    with pytest.raises(ValueError, match=r"series 'S4' has 1 missing value.*; and 3 more series \(8 in all\)"):
        TimeSeriesDataFrame.from_arrays(ids, np.tile(days(3), 8), y)


def test_unparseable_and_mixed_ds(tmp_path):
    with pytest.raises(ValueError, match=r"'ds' has values that are neither integers nor ISO dates/timestamps: "
                                         r"'2020/01/02' \(series 'A', line 3\)"):
        TimeSeriesDataFrame.from_csv(csv(tmp_path, "unique_id,ds,y\nA,2020-01-01,1\nA,2020/01/02,2\n"))
    with pytest.raises(ValueError, match=r"'ds' mixes integer time steps and dates: '3' at series 'A', line 3 "
                                         r"but '2020-01-01' at series 'A', line 2"):
        TimeSeriesDataFrame.from_csv(csv(tmp_path, "unique_id,ds,y\nA,2020-01-01,1\nA,3,2\n"))
    with pytest.raises(ValueError, match=r"timezone offsets are not supported"):
        TimeSeriesDataFrame.from_arrays(["A"], ["2020-01-01T10:00+01:00"], [1])
    with pytest.raises(ValueError, match=r"sub-second timestamps are not supported"):
        TimeSeriesDataFrame.from_arrays(["A"], ["2020-01-01 10:00:00.5"], [1])
    with pytest.raises(ValueError, match=r"'ds' has 1 empty value\(s\), first at series 'A', line 3"):
        TimeSeriesDataFrame.from_csv(csv(tmp_path, "unique_id,ds,y\nA,2020-01-01,1\nA,,2\n"))


def test_duplicates_named():
    with pytest.raises(ValueError, match=re.escape("duplicate (unique_id, ds) pairs: series 'B' has 1 duplicated "
                                                   "timestamp (first ds=2015-01-02)")):
        TimeSeriesDataFrame.from_arrays(["A", "A", "B", "B", "B", "B"],
                                        np.concatenate([days(2), days(2), days(3)[1:]]), np.arange(6))


def test_gaps_against_inferred_and_declared():
    ds = np.concatenate([days(10), np.delete(days(10), [4, 5])])
    ids = ["A"] * 10 + ["B"] * 8
    with pytest.raises(ValueError, match=re.escape(
            "1 series is not regular at the inferred frequency 'D': series 'B': after ds=2015-01-04 expected "
            "2015-01-05, found 2015-01-07 (2 missing steps)")):
        TimeSeriesDataFrame.from_arrays(ids, ds, np.arange(18))
    with pytest.raises(ValueError, match=r"2 series are not regular at the declared frequency 'W'"):
        TimeSeriesDataFrame.from_arrays(ids, ds, np.arange(18), freq="W")
    with pytest.raises(ValueError, match=r"not on the frequency's grid"):
        TimeSeriesDataFrame.from_arrays(["A"] * 3, ["2020-01-01 00:00", "2020-01-01 01:00", "2020-01-01 02:30"], [1, 2, 3])
    with pytest.raises(ValueError, match=r"freq '1' does not match ds, which holds timestamps"):
        TimeSeriesDataFrame.from_arrays(["A"] * 2, days(2), [1, 2], freq=1)


def test_empty_ids(tmp_path):
    with pytest.raises(ValueError, match=r"'unique_id' has 2 empty value\(s\): line 3, line 4"):
        TimeSeriesDataFrame.from_csv(csv(tmp_path, "unique_id,ds,y\nA,1,1\n,2,2\n  ,3,3\n"))


def test_static_varying_within_series():
    with pytest.raises(ValueError, match=re.escape("static column 'region' varies within a series: series 'B' has "
                                                   "region='north' at ds=2015-01-01 but 'south' at ds=2015-01-02")):
        TimeSeriesDataFrame.from_arrays(["A", "A", "B", "B"], np.tile(days(2), 2), [1, 2, 3, 4],
                                        static={"region": ["x", "x", "north", "south"]})


def test_type_errors():
    with pytest.raises(TypeError, match="static must be a mapping"):
        TimeSeriesDataFrame.from_arrays(["A"], [1], [1], static="region")
    with pytest.raises(TypeError, match=r"static_cols must be a list of column names, not a str \(did you mean \['region'\]"):
        TimeSeriesDataFrame._from_table(["ds", "y"], {}, id_col="unique_id", time_col="ds", target_col="y", freq=None,
                                        static_cols="region", exog_cols=None, lines=None, source="t", id_default=True)
    with pytest.raises(TypeError, match="freq must be a str, an int or a Frequency"):
        TimeSeriesDataFrame.from_arrays(["A"], [1], [1], freq=1.0)
    with pytest.raises(TypeError, match="id_col must be a str"):
        TimeSeriesDataFrame.from_csv("x.csv", id_col=3)


def test_reserved_exog_name():
    with pytest.raises(TypeError):
        TimeSeriesDataFrame.from_arrays(["A"], [1], [1], **{"y": [1]})


# ------------------------------------------------------------------ property tests
@st.composite
def panels(draw):
    n = draw(st.integers(1, 6))
    lengths = draw(st.lists(st.integers(3, 15), min_size=n, max_size=n))
    ids = [f"id{k}" for k in draw(st.lists(st.integers(0, 999), min_size=n, max_size=n, unique=True))]
    return ids, lengths


def build(ids, lengths, rng):
    rows_id = np.repeat(ids, lengths)
    ds = np.concatenate([days(n) for n in lengths])
    y = rng.normal(size=rows_id.shape[0])
    return rows_id, ds, y


@settings(max_examples=40, deadline=None)
@given(panels(), st.sampled_from(["nan", "dup", "gap"]), st.data())
def test_property_injected_fault_reported_with_right_series(panel, fault, data):
    ids, lengths = panel
    rng = np.random.default_rng(0)
    rows_id, ds, y = build(ids, lengths, rng)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    s = data.draw(st.integers(0, len(ids) - 1))
    k = data.draw(st.integers(1, lengths[s] - 2))  # interior position
    r = offsets[s] + k
    if fault == "nan":
        y[r] = np.nan
        expected = re.escape(f"series '{ids[s]}' has 1 missing value in 'y' (first at ds={ds[r]})")
    elif fault == "dup":
        ds = ds.copy()
        ds[r] = ds[r - 1]
        # ds[r+1] still follows, so only a duplicate is introduced at ds[r-1]
        expected = re.escape(f"series '{ids[s]}' has 1 duplicated timestamp (first ds={ds[r]})")
    else:
        keep = np.ones(ds.shape[0], bool)
        keep[r] = False
        rows_id, ds, y = rows_id[keep], ds[keep], y[keep]
        expected = re.escape(f"series '{ids[s]}': after ds={ds[r - 1]} expected") + ".*1 missing step\\)"
    perm = rng.permutation(rows_id.shape[0])  # order of rows must not matter
    with pytest.raises(ValueError, match=expected):
        TimeSeriesDataFrame.from_arrays(rows_id[perm], ds[perm], y[perm], freq="D")


@settings(max_examples=25, deadline=None)
@given(panels())
def test_property_clean_panels_accepted_and_sorted_stably(panel):
    ids, lengths = panel
    rows_id, ds, y = build(ids, lengths, np.random.default_rng(1))
    rng = np.random.default_rng(2)
    perm = rng.permutation(rows_id.shape[0])
    df = TimeSeriesDataFrame.from_arrays(rows_id[perm], ds[perm], y[perm])
    first_seen = list(dict.fromkeys(rows_id[perm].tolist()))
    assert df.ids.tolist() == first_seen
    for sid in ids:
        assert np.array_equal(df.series_y(sid), y[rows_id == sid])
        assert np.all(np.diff(df.series_ds(sid)) > np.timedelta64(0, "s"))
