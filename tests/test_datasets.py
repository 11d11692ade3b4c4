import os

import numpy as np
import pytest

from neurodivergent.data import DEFAULT_DATASET, Frequency, TimeSeriesDataFrame, dataset_path, list_datasets, load_dataset

NAMES = [d["name"] for d in list_datasets()]


def test_listing():
    assert {"air_passengers", "us_macro_quarterly", "us_employment", "hourly_temperature",
            "seattle_weather_daily"} <= set(NAMES)
    for d in list_datasets():
        for key in ("name", "description", "n_series", "freq", "length", "licence", "source", "season"):
            assert key in d
    assert DEFAULT_DATASET in NAMES


@pytest.mark.parametrize("name", NAMES)
def test_load_every_dataset(name):
    meta = next(d for d in list_datasets() if d["name"] == name)
    df = load_dataset(name)
    assert isinstance(df, TimeSeriesDataFrame)
    assert df.n_series == meta["n_series"]
    assert df.lengths.min() == meta["length"] == df.lengths.max()
    assert df.freq == Frequency.parse(meta["freq"])
    assert df.freq.seasonality == meta["season"]
    assert np.all(np.isfinite(df.y))
    # the inferred frequency agrees with the declared one
    assert TimeSeriesDataFrame.from_csv(dataset_path(name)).freq == df.freq
    # windows of input_size = 2 * season, horizon = season fit in every series
    df.check_length(3 * meta["season"], what="input_size + horizon")


def test_air_passengers_values():
    df = load_dataset("air_passengers")
    y = df.series_y("AirPassengers")
    assert y[:4].tolist() == [112, 118, 132, 129] and y[-1] == 432 and y.sum() == 40363
    assert str(df.future_ds(1)[0, 0])[:10] == "1961-01-01"


def test_unknown_dataset():
    with pytest.raises(ValueError, match=r"unknown dataset 'm5'; available: air_passengers, "):
        load_dataset("m5")


def test_bundled_files_small():
    folder = os.path.dirname(dataset_path("air_passengers"))
    total = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
    assert total < 400_000
    assert os.path.exists(os.path.join(folder, "README.md"))
