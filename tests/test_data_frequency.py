import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from neurodivergent.data.frequency import Frequency, infer_frequency


def D(s):
    return np.datetime64(s, "s")


@pytest.mark.parametrize("text", ["H", "15min", "2H", "D", "W", "M", "MS", "ME", "M@15", "Q", "QS", "QE",
                                  "Y", "YS", "YE", "s", "30s", "3", "1", "2W", "6M"])
def test_str_round_trip(text):
    f = Frequency.parse(text)
    assert Frequency.parse(str(f)) == f
    assert hash(Frequency.parse(str(f))) == hash(f)


def test_aliases_and_seasonality():
    assert Frequency.parse("h") == Frequency("H")
    assert Frequency.parse("T") == Frequency("min")
    assert Frequency.parse("A") == Frequency("Y")
    assert Frequency.parse(1).is_integer and Frequency.parse(1).seasonality == 1
    assert Frequency.parse("H").seasonality == 24
    assert Frequency.parse("2H").seasonality == 12
    assert Frequency.parse("D").seasonality == 7
    assert Frequency.parse("W").seasonality == 52
    assert Frequency.parse("MS").seasonality == 12
    assert Frequency.parse("Q").seasonality == 4
    assert Frequency.parse("Y").seasonality == 1
    assert Frequency.parse("15min").seasonality == 96
    assert Frequency.parse("7min").seasonality == 1


def test_parse_errors():
    with pytest.raises(ValueError, match="cannot parse frequency 'fortnight'"):
        Frequency.parse("fortnight")
    with pytest.raises(TypeError, match="freq must be a str"):
        Frequency.parse(1.5)
    with pytest.raises(ValueError, match="multiple must be >= 1"):
        Frequency("H", 0)
    with pytest.raises(ValueError, match="anchor .* only applies to month-based"):
        Frequency("H", 1, anchor="end")
    with pytest.raises(AttributeError):
        Frequency("H").n = 3


def test_month_end_future():
    f = Frequency.parse("ME")
    out = f.add(D("2020-01-31"), np.arange(1, 5))
    assert [str(x)[:10] for x in out] == ["2020-02-29", "2020-03-31", "2020-04-30", "2020-05-31"]
    # plain M keeps month ends from a month end
    assert str(Frequency.parse("M").add(D("2021-02-28"), 1))[:10] == "2021-03-31"
    # day anchor is kept and clipped
    out = Frequency.parse("M@30").add(D("2021-01-30"), np.arange(1, 3))
    assert [str(x)[:10] for x in out] == ["2021-02-28", "2021-03-30"]


def test_month_start_quarter_year_and_time_of_day():
    assert str(Frequency.parse("MS").add(D("2020-12-01"), 1))[:10] == "2021-01-01"
    assert str(Frequency.parse("QS").add(D("2009-07-01"), 1))[:10] == "2009-10-01"
    assert str(Frequency.parse("YE").add(D("2019-12-31"), 1))[:10] == "2020-12-31"
    assert Frequency.parse("MS").add(D("2020-01-01T06:30:00"), 1) == D("2020-02-01T06:30:00")


def test_hourly_and_integer_range():
    r = Frequency.parse("H").range(D("2020-01-01T22:00"), 4)
    assert r.tolist()[-1] == D("2020-01-02T01:00").item()
    assert Frequency.parse(3).range(np.int64(10), 3).tolist() == [10, 13, 16]
    with pytest.raises(ValueError, match="integer frequency '1' applied to ds of dtype datetime64"):
        Frequency.parse(1).add(D("2020-01-01"), 1)


def test_infer():
    assert infer_frequency([np.array([1, 2, 3]), np.array([5, 6])]) == Frequency("int", 1)
    assert infer_frequency([np.array([0, 5, 10])]) == Frequency("int", 5)
    assert infer_frequency([np.array([D("2020-01-01")])]) is None
    hourly = D("2020-01-01") + np.arange(5) * np.timedelta64(1, "h")
    assert infer_frequency([hourly]) == Frequency("H")
    q = np.arange(np.datetime64("2000-01"), np.datetime64("2003-01"), np.timedelta64(3, "M")).astype("datetime64[D]").astype("datetime64[s]")
    assert str(infer_frequency([q])) == "QS"
    ends = (np.arange(np.datetime64("2000-02"), np.datetime64("2001-02")).astype("datetime64[D]") - np.timedelta64(1, "D")).astype("datetime64[s]")
    assert str(infer_frequency([ends])) == "ME"
    weekly = D("2020-01-06") + np.arange(6) * np.timedelta64(7, "D")
    assert str(infer_frequency([weekly])) == "W"
    m15 = D("2020-01-01") + np.arange(9) * np.timedelta64(15, "m")
    assert str(infer_frequency([m15])) == "15min"
    yearly = np.arange(np.datetime64("1990"), np.datetime64("2000")).astype("datetime64[D]").astype("datetime64[s]")
    assert str(infer_frequency([yearly])) == "YS"


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["H", "D", "W", "MS", "ME", "QS", "YE", "2H", "15min", "3"]),
       st.integers(0, 400), st.integers(2, 40))
def test_property_range_is_regular_and_inferred(text, start_offset, n):
    f = Frequency.parse(text)
    if f.is_integer:
        start = np.int64(start_offset)
    else:
        base = f.add(D("2001-01-01"), 0) if f.anchor != "end" else D("2001-01-31")
        start = f.add(base, start_offset % 50)
    r = f.range(start, n)
    assert np.all(f.is_regular(r))
    assert infer_frequency([r]) == f
    assert np.array_equal(f.add(r[:-1], 1), r[1:])
