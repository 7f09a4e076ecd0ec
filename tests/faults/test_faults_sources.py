"""A source that answers garbage, half a body, or nothing at all: the run stops that source with
a message naming the request, keeps every page that landed before, and the next run goes on from
there to the posts of a clean run."""

from __future__ import annotations

import pytest
from fake_apis import Reply, not_json
from fake_networks import FakeMastodon, mastodon_status
from faultkit import lake_ids, quick_http, write_config

from flows.config import load_config
from flows.lake.lake import Lake
from flows.stages.collect import collect

POSTS, PAGE = 50, 10


def run(folder, api):
    config = write_config(
        folder, pipeline={"sources": "mastodon"}, mastodon={"instances": api.url, "page_size": PAGE}
    )
    [report] = collect(load_config(config))
    return report


def garbage(api: FakeMastodon) -> None:
    api.fail(not_json(), lambda request: len(api.requests) >= 3, times=100)


def half_a_body(api: FakeMastodon) -> None:
    cut = Reply(200, [mastodon_status(1, "mastodon.example", 1)] * 5, cut=True)
    api.fail(cut, lambda request: len(api.requests) >= 3, times=100)


def hanging(api: FakeMastodon) -> None:
    api.hold(lambda request: len(api.requests) >= 3)


@pytest.mark.parametrize(
    "fault, says",
    [
        (garbage, "with a body that is not JSON"),
        (half_a_body, "RemoteProtocolError"),
        (hanging, "ReadTimeout"),
    ],
)
def test_a_failing_source_keeps_what_landed_and_the_next_run_finishes(
    tmp_path, monkeypatch, fault, says
):
    quick_http(monkeypatch)
    statuses = [mastodon_status(5000 + n, "mastodon.example", n) for n in range(POSTS)]
    with FakeMastodon(statuses) as api:
        run(tmp_path / "clean", api)
        clean = sorted(lake_ids(tmp_path / "clean" / "lake"))
        assert len(clean) == POSTS

        api.requests.clear()
        fault(api)
        report = run(tmp_path, api)  # pages 1 and 2 answered, then the fault
        problems = " ".join(filter(None, [report.error, *report.warnings]))
        assert says in problems and f"{api.url}/api/v1/timelines/tag/dataengineering" in problems
        landed = lake_ids(tmp_path / "lake")
        assert len(landed) == len(set(landed)) == 2 * PAGE
        cursor = Lake(str(tmp_path / "lake")).read_cursor("mastodon", "dataengineering")
        assert cursor.walk is not None  # the walk stopped at page 3, to go on from there

        api.release()
        api.faults.clear()
        again = run(tmp_path, api)
    assert again.error is None and again.new == POSTS - 2 * PAGE
    assert sorted(lake_ids(tmp_path / "lake")) == clean
