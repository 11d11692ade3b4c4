"""Small real datasets bundled with the package (see ``_datasets/README.md`` for sources and
licences). All are long-format CSV files (``unique_id,ds,y``), gzip-compressed where large.

>>> from neurodivergent.data import list_datasets, load_dataset
>>> [d["name"] for d in list_datasets()]      # doctest: +SKIP
>>> df = load_dataset("hourly_temperature")   # 2 series x 8760 hourly points, season 24

``DEFAULT_DATASET`` names the one the command line trains on when none is given.
"""

from __future__ import annotations

import os
from typing import Dict, List

from .frame import TimeSeriesDataFrame

__all__ = ["list_datasets", "load_dataset", "dataset_path", "DEFAULT_DATASET"]

_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_datasets")

DEFAULT_DATASET = "us_employment"

_PUBLIC_DOMAIN_NOAA = "public domain (U.S. Government work, NOAA)"

_DATASETS: Dict[str, Dict[str, object]] = {
    "air_passengers": {
        "file": "air_passengers.csv",
        "description": "Monthly totals of international airline passengers (thousands), 1949-01..1960-12 "
                       "(Box & Jenkins; R's AirPassengers)",
        "n_series": 1, "freq": "MS", "season": 12, "length": 144,
        "licence": "public domain (historical statistics, widely redistributed)",
        "source": "Box, Jenkins & Reinsel, Time Series Analysis (1976), series G; as shipped in statsmodels' test data",
    },
    "us_macro_quarterly": {
        "file": "us_macro_quarterly.csv.gz",
        "description": "10 US macroeconomic quarterly series (real GDP, consumption, investment, government, "
                       "disposable income, CPI, M1, T-bill rate, unemployment, population), 1959Q1..2009Q3",
        "n_series": 10, "freq": "QS", "season": 4, "length": 203,
        "licence": "public domain (U.S. Government data: FRED / BLS)",
        "source": "statsmodels.datasets.macrodata (Federal Reserve Bank of St. Louis FRED; Bureau of Labor Statistics)",
    },
    "us_employment": {
        "file": "us_employment.csv.gz",
        "description": "US employment (thousands, seasonally adjusted) in 22 BLS supersectors, monthly 2006-01..2015-12",
        "n_series": 22, "freq": "MS", "season": 12, "length": 120,
        "licence": "public domain (U.S. Government data: BLS Current Employment Statistics)",
        "source": "vega_datasets us-employment (BLS CES, downloaded 2018-11-11)",
    },
    "hourly_temperature": {
        "file": "hourly_temperature.csv.gz",
        "description": "Hourly air temperature (degrees F) in Seattle and San Francisco during 2010 (local time)",
        "n_series": 2, "freq": "H", "season": 24, "length": 8760,
        "licence": _PUBLIC_DOMAIN_NOAA,
        "source": "vega_datasets seattle-temps / sf-temps (NOAA); the hour 2010-03-14 03:00 missing at the "
                  "DST change was filled by linear interpolation",
    },
    "seattle_weather_daily": {
        "file": "seattle_weather_daily.csv.gz",
        "description": "Daily weather in Seattle 2012-01-01..2015-12-31: temp_max, temp_min (C), "
                       "precipitation (mm), wind (m/s)",
        "n_series": 4, "freq": "D", "season": 7, "length": 1461,
        "licence": _PUBLIC_DOMAIN_NOAA,
        "source": "vega_datasets seattle-weather (NOAA)",
    },
}


def list_datasets() -> List[Dict[str, object]]:
    """One dict per bundled dataset: name, description, n_series, freq, season, length (points per
    series), licence, source, file."""
    return [dict(name=name, **meta) for name, meta in _DATASETS.items()]


def dataset_path(name: str) -> str:
    """The path of a bundled dataset's CSV file."""
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a str, got {type(name).__name__}")
    if name not in _DATASETS:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(sorted(_DATASETS))}")
    return os.path.join(_DIR, str(_DATASETS[name]["file"]))


def load_dataset(name: str) -> TimeSeriesDataFrame:
    """A bundled dataset as a validated TimeSeriesDataFrame."""
    path = dataset_path(name)
    return TimeSeriesDataFrame.from_csv(path, freq=_DATASETS[name]["freq"])
