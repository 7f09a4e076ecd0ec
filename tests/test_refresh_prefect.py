"""The `refresh` flow on a real `prefect server start`, against a local Bluesky AppView: its
state, its summary artifact, and the snapshots it lands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fake_apis import serving
from fake_networks import FakeBluesky, bluesky_post

from flows.lake.facts import METRICS, FactLog
from flows.lake.lake import Lake
from flows.schema import posts_table
from servers import prefect_server
from test_prefect_flows import artifacts, run_flow
from test_warehouse_duckdb import post


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory):
    with prefect_server(tmp_path_factory.mktemp("prefect-home")) as url:
        yield url


def test_the_refresh_flow_reads_the_due_posts_and_publishes_its_counts(prefect_api, tmp_path):
    now = datetime.now(UTC)
    api = FakeBluesky([bluesky_post(n) for n in range(30)])
    lake = Lake(str(tmp_path / "lake"))
    rows = [
        post("bluesky", view["uri"], now - timedelta(hours=3), "ann",
             collected_at=now - timedelta(hours=2))  # collected two hours ago, an hour old then
        for view in api.posts
    ]
    with lake.writer("collect-1") as writer:
        writer.write(posts_table(rows))
    config = tmp_path / "configuration.conf"
    with serving(api):
        config.write_text(
            f"[pipeline]\nsources = bluesky\nlake = {lake.url}\n"
            f"[bluesky]\nappview_url = {api.url}/xrpc\n"
        )
        run_flow(prefect_api, "flows.orchestration.refresh:refresh_flow", config)
    summary = artifacts(prefect_api, "refresh-summary")[0]
    assert "| bluesky | 30 | 30 | 0 | 2 | 0.000 | ok |" in summary
    facts = FactLog(lake, METRICS)
    assert facts.read(facts.pending("nowhere")).num_rows == 30
    # the flow run's id names the run: a retried task's facts and record add up under it
    assert all(entry["run_id"].startswith("refresh-") for entry in facts.entries().values())
