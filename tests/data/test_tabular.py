"""Generic CSV / Parquet loading: flexible columns and time formats, named errors."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from recsys.data import load_interactions
from recsys.errors import ConfigError, DataError

# 2024-01-01 00:00:00 UTC and one hour later.
T0 = 1_704_067_200.0
T1 = T0 + 3600.0


def write(tmp_path, text, name="events.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_string_ids_and_iso_dates(tmp_path):
    path = write(
        tmp_path,
        "customer,sku,when\nann,shoe-9,2024-01-01T01:00:00\nbob,hat,2024-01-01 00:00:00\n",
    )
    inter = load_interactions(path, user_col="customer", item_col="sku", time_col="when")
    assert inter.name == "events"
    assert inter.frame["timestamp"].tolist() == [T0, T1]  # sorted, zone-less dates are UTC
    assert inter.user_ids.tolist() == ["ann", "bob"]
    assert inter.item_ids.tolist() == ["hat", "shoe-9"]
    assert inter.frame[["user", "item"]].values.tolist() == [[1, 0], [0, 1]]
    assert inter.frame["weight"].tolist() == [1.0, 1.0]


@pytest.mark.parametrize(
    ("stamps", "unit"),
    [((T0, T1), "auto"), ((T0 * 1000, T1 * 1000), "auto"), ((T0 * 1000, T1 * 1000), "ms"),
     ((T0, T1), "s")],
)  # fmt: skip
def test_unix_seconds_and_milliseconds(tmp_path, stamps, unit):
    path = write(tmp_path, f"user,item,timestamp\n1,7,{stamps[0]:.0f}\n2,7,{stamps[1]:.0f}\n")
    inter = load_interactions(path, time_unit=unit)
    assert inter.frame["timestamp"].tolist() == [T0, T1]
    assert inter.user_ids.tolist() == [1, 2]


def test_parquet_with_a_timestamp_column_and_weights(tmp_path):
    path = tmp_path / "events.parquet"
    pd.DataFrame(
        {
            "user": [10, 11, 10],
            "item": ["a", "b", "b"],
            "timestamp": pd.to_datetime(
                ["2024-01-01 01:00", "2024-01-01 00:00", "2024-01-01 00:00"]
            ),
            "qty": [2.0, 0.0, 1.5],
            "unused": ["x", "y", "z"],
        }
    ).to_parquet(path)
    inter = load_interactions(path, weight_col="qty", name="orders")
    assert inter.name == "orders"
    assert inter.frame["timestamp"].tolist() == [T0, T0, T1]
    assert inter.frame["weight"].tolist() == [0.0, 1.5, 2.0]
    assert inter.frame["weight"].dtype == np.float32


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"interactions file .*nope\.csv does not exist"):
        load_interactions(tmp_path / "nope.csv")


def test_empty_file(tmp_path):
    with pytest.raises(DataError, match=r"events\.csv: the file is empty"):
        load_interactions(write(tmp_path, ""))


def test_header_without_rows(tmp_path):
    with pytest.raises(DataError, match="header but no data rows"):
        load_interactions(write(tmp_path, "user,item,timestamp\n"))


def test_missing_column_is_named_with_the_available_ones(tmp_path):
    path = write(tmp_path, "user,product,ts\n1,2,3\n")
    with pytest.raises(
        DataError, match=r"no item column 'item' \(set item_col\); available .*'product', 'ts'"
    ):
        load_interactions(path, time_col="ts")


def test_non_numeric_timestamps(tmp_path):
    path = write(tmp_path, f"user,item,timestamp\n1,2,{T0:.0f}\n1,3,soon\n")
    with pytest.raises(DataError, match=r"1 rows have a non-numeric .* row 2: 'soon'"):
        load_interactions(path, time_unit="s")


def test_missing_timestamps(tmp_path):
    path = write(tmp_path, f"user,item,timestamp\n1,2,{T0:.0f}\n1,3,\n1,4,NaN\n")
    with pytest.raises(DataError, match=r"2 rows have a missing timestamp in column 'timestamp'"):
        load_interactions(path)


def test_unparsable_dates(tmp_path):
    path = write(tmp_path, "user,item,timestamp\n1,2,2024-01-05\n1,3,2024-13-45\n")
    with pytest.raises(DataError, match=r"unparsable timestamp .*'2024-13-45'"):
        load_interactions(path)


def test_null_ids(tmp_path):
    path = write(tmp_path, f"user,item,timestamp\n,2,{T0:.0f}\n1,3,{T1:.0f}\n")
    with pytest.raises(DataError, match=r"1 rows have a missing user id in column 'user'"):
        load_interactions(path)


def test_negative_weights(tmp_path):
    path = write(tmp_path, f"user,item,timestamp,w\n1,2,{T0:.0f},1\n1,3,{T1:.0f},-2\n")
    with pytest.raises(DataError, match=r"1 rows have a negative weight in column 'w'.*-2"):
        load_interactions(path, weight_col="w")


def test_unsupported_file_type(tmp_path):
    with pytest.raises(DataError, match=r"unsupported file type \.json"):
        load_interactions(write(tmp_path, "{}", name="events.json"))


def test_unknown_time_unit_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="time_unit must be one of"):
        load_interactions(write(tmp_path, "user,item,timestamp\n1,2,3\n"), time_unit="days")


def test_dropping_bad_rows_counts_them(tmp_path, caplog):
    path = write(
        tmp_path,
        "user,item,timestamp,w\n"
        f"1,2,{T0:.0f},1\n,3,{T0:.0f},1\n1,,{T0:.0f},1\n1,4,,1\n1,5,{T1:.0f},-1\n1,6,{T1:.0f},2\n",
    )
    with caplog.at_level(logging.WARNING, logger="recsys.data.tabular"):
        inter = load_interactions(path, weight_col="w", on_invalid="drop")
    assert inter.item_ids.tolist() == [2, 6]
    assert "dropped 4 of 6 rows" in caplog.text
    assert "'w: a negative weight': 1" in caplog.text


def test_all_rows_bad_is_an_error_even_when_dropping(tmp_path):
    path = write(tmp_path, "user,item,timestamp\n1,2,\n")
    with pytest.raises(DataError, match="every row is invalid"):
        load_interactions(path, on_invalid="drop")


def test_dates_with_a_zone_are_converted_to_utc(tmp_path):
    path = write(tmp_path, "user,item,timestamp\n1,2,2024-01-01T02:00:00+01:00\n")
    assert load_interactions(path, time_unit="iso").frame["timestamp"].tolist() == [T1]


def test_a_corrupt_parquet_file(tmp_path):
    with pytest.raises(DataError, match=r"events\.parquet: cannot be read as parquet"):
        load_interactions(write(tmp_path, "not parquet at all", name="events.parquet"))


def test_tsv_and_gzip_are_read(tmp_path):
    path = tmp_path / "shop.events.tsv.gz"
    pd.DataFrame({"user": ["u"], "item": [1], "timestamp": [T0]}).to_csv(
        path, sep="\t", index=False
    )
    inter = load_interactions(path)
    assert (len(inter), inter.name) == (1, "shop.events")
