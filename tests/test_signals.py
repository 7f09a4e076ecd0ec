"""View `signals` on DuckDB: quiet on flat and slowly growing hashtags, one signal with its
numbers and examples on an injected spike (on BigQuery: tests/test_bigquery_warehouse.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from flows.schema import posts_table
from flows.warehouse.duckdb_warehouse import DuckDBWarehouse
from test_warehouse_duckdb import post

START = datetime(2026, 11, 2, tzinfo=UTC)
HOURS = 10 * 24
SPIKE_HOUR = 9 * 24 + 15  # the tenth day, 15:00


def hourly_posts(counts: list[int], source: str = "mastodon") -> pa.Table:
    """`counts[h]` posts in hour h after START, spread over the hour."""
    rows = []
    for hour, n in enumerate(counts):
        for i in range(n):
            at = START + timedelta(hours=hour, seconds=i * 3600 // n)
            rows.append(post(source, f"{hour}-{i}", at, f"user{i % 5}", like_count=i % 3))
    return posts_table(rows)


FLAT = [6] * HOURS
GROWING = [4 + h // 24 for h in range(HOURS)]  # one more post an hour every day
SPIKED = [60 if h == SPIKE_HOUR else 6 for h in range(HOURS)]


def signals(warehouse) -> list[dict]:
    return warehouse.query("SELECT * FROM signals ORDER BY signal_id").to_pylist()


@pytest.fixture
def duckdb_warehouse(tmp_path):
    with DuckDBWarehouse(tmp_path / "w.duckdb") as warehouse:
        yield warehouse


@pytest.mark.parametrize("counts", [FLAT, GROWING], ids=["flat", "growing"])
def test_no_signal_on_a_flat_or_slowly_growing_hashtag(duckdb_warehouse, counts):
    duckdb_warehouse.load_posts(hourly_posts(counts))
    assert signals(duckdb_warehouse) == []


def assert_one_spike(found: list[dict]) -> None:
    assert len(found) == 1, found
    (signal,) = found
    hour = START + timedelta(hours=SPIKE_HOUR)
    assert (signal["kind"], signal["grain"], signal["source"]) == ("volume", "hour", "mastodon")
    assert signal["window_start"] == hour
    assert signal["window_end"] == hour + timedelta(hours=1)
    assert (signal["value"], signal["baseline"]) == (60.0, 6.0)
    # flat history: no deviation, so the spread is the Poisson noise of the median, sqrt(6)
    assert signal["score"] == pytest.approx(54 / 6**0.5)
    assert len(signal["example_post_ids"]) == 3
    assert signal["example_urls"] == [
        f"https://mastodon.example/user{int(i.split('-')[1]) % 5}/{i.split(':')[1]}"
        for i in signal["example_post_ids"]
    ]
    assert all(i.startswith(f"mastodon:{SPIKE_HOUR}-") for i in signal["example_post_ids"])


def test_an_injected_spike_is_one_signal_with_its_numbers_and_examples(duckdb_warehouse):
    duckdb_warehouse.load_posts(hourly_posts(SPIKED))
    assert_one_spike(signals(duckdb_warehouse))
