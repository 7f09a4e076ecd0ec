"""The `stream` flow on a real `prefect server start`, against a local Jetstream and AppView: it
streams for its minutes, lands the posts and publishes its counts; with no streaming source
configured it says so and ends without failing its hourly schedule."""

from __future__ import annotations

import threading

import httpx
import pytest
from fake_jetstream import FakeAppView, FakeJetstream, did, post_event

from flows.lake.lake import Lake
from servers import prefect_server
from test_prefect_flows import artifacts, run_flow
from test_stream_live import TAG, lake_ids, tagged, write_config


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory):
    with prefect_server(tmp_path_factory.mktemp("prefect-home")) as url:
        yield url


def states(api: str) -> list[str]:
    runs = httpx.post(f"{api}/flow_runs/filter", json={}, timeout=30).json()
    return [run["state_type"] for run in runs]


def test_the_stream_flow_streams_for_its_minutes_and_publishes_its_counts(prefect_api, tmp_path):
    with FakeJetstream() as jetstream, FakeAppView({did(a): f"a{a}.test" for a in range(4)}) as appview:
        config = write_config(tmp_path, jetstream, appview)

        def publish_once_connected() -> None:
            while not jetstream.connections:
                threading.Event().wait(0.05)
            jetstream.publish(tagged(1), post_event(2, 1, "no tag"), tagged(3))

        publisher = threading.Thread(target=publish_once_connected, daemon=True)
        publisher.start()
        run_flow(prefect_api, "flows.orchestration.stream:stream_flow", config, minutes=0.25)
        publisher.join(5)
    assert sorted(lake_ids(tmp_path)) == sorted(
        f"bluesky:at://{did(n % 4)}/app.bsky.feed.post/3mmoojp{n:06d}" for n in (1, 3)
    )
    counts = artifacts(prefect_api, "stream-counts")[0]
    assert "| jetstream | 3 | 2 | 2 | 0 | 0 | 0 |" in counts
    assert Lake(str(tmp_path / "lake")).read_cursor("jetstream", TAG).time_us is not None


def test_the_stream_flow_without_streaming_sources_ends_and_says_why(prefect_api, tmp_path):
    config = tmp_path / "configuration.conf"
    config.write_text(f"[pipeline]\nlake = {tmp_path / 'lake'}\n")
    before = states(prefect_api).count("COMPLETED")
    run_flow(prefect_api, "flows.orchestration.stream:stream_flow", config)
    assert states(prefect_api).count("COMPLETED") == before + 1
    assert not (tmp_path / "lake").exists() or Lake(str(tmp_path / "lake")).manifest() == {}
