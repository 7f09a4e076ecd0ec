"""Typed cursors: a lake written before cursors were typed keeps working.

tests/data/old_cursors.json is the ``_state/cursors.json`` that main at 6ae5474 wrote (format 1,
JSON inside strings), made by this script with that commit's code and fakes::

    # git worktree add /tmp/oldmain 6ae5474
    # PYTHONPATH=/tmp/oldmain:/tmp/oldmain/tests python make_old_cursors.py
    import functools, os, shutil
    from pathlib import Path
    from fake_apis import (T0, FakeBluesky, FakeMastodon, FakeReddit, FakeTime, FakeX,
        bluesky_post, mastodon_status, not_json, reddit_link, serving, x_tweet)
    from flows import sources
    from flows.collect import collect_source
    from flows.config import Config, PipelineConfig, TwitterConfig
    from flows.sources.bluesky import BlueskySettings, BlueskySource
    from flows.sources.file import FileSettings
    from flows.sources.mastodon import MastodonSettings
    from flows.sources.reddit import RedditSettings
    from flows.sources.sample import SampleSettings

    ROOT = Path("/tmp/old-cursors")
    # old_csv and MTIME_NS: as below

    def collect(name, settings, hashtag="dataengineering", limit=0):
        config = Config(twitter=TwitterConfig(hashtag=hashtag, limit=limit),
                        pipeline=PipelineConfig(sources=(name,), lake=str(ROOT / "lake")),
                        source_settings={name: settings})
        collect_source(config, name, f"old-{name}-{hashtag}")

    (ROOT / "files").mkdir(parents=True)
    for name in ("a", "b"):
        path = ROOT / "files" / f"{name}.csv"
        path.write_text(old_csv(name, 10))
        os.utime(path, ns=(MTIME_NS, MTIME_NS))
    os.environ.update(X_BEARER_TOKEN="test-bearer-token", BLUESKY_HANDLE="me.bsky.social",
                      BLUESKY_APP_PASSWORD="app-pass-word-1234", REDDIT_CLIENT_ID="app-id",
                      REDDIT_CLIENT_SECRET="app-secret-value")
    sources._SOURCES["bluesky"] = functools.partial(BlueskySource, **FakeTime().options())
    sample = SampleSettings(posts=1500, batch_size=500)
    collect("sample", sample, limit=1100)
    collect("sample", sample, hashtag="duckdb")
    collect("file", FileSettings(paths=(str(ROOT / "files" / "*.csv"),)), limit=14)
    x = FakeX([x_tweet(n, start=T0) for n in range(30)]
              + [x_tweet(n, "duckdb", start=T0) for n in range(12)])
    mastodon_a = FakeMastodon([mastodon_status(n, "a.example", n) for n in range(1, 51)])
    mastodon_b = FakeMastodon([mastodon_status(n, "b.example", n) for n in range(1, 51)])
    bluesky = FakeBluesky([bluesky_post(n) for n in range(30)]
                          + [bluesky_post(n, "duckdb") for n in range(5)])
    bluesky.fail(not_json(), when=lambda r: r.query.get("cursor") == "20", times=5)
    reddit = FakeReddit([reddit_link(n) for n in range(30)])
    with serving(x, mastodon_a, mastodon_b, bluesky, reddit):
        print(mastodon_a.url, mastodon_b.url)  # OLD_INSTANCES below
        collect("x", sources.x.XSettings(base_url=f"{x.url}/2", max_results=10), limit=25)
        collect("x", sources.x.XSettings(base_url=f"{x.url}/2", max_results=10), hashtag="duckdb")
        collect("mastodon", MastodonSettings(instances=(mastodon_a.url, mastodon_b.url),
                                             page_size=20), limit=70)
        bluesky_settings = BlueskySettings(base_url=f"{bluesky.url}/xrpc", page_size=10)
        collect("bluesky", bluesky_settings)
        collect("bluesky", bluesky_settings, hashtag="duckdb")
        collect("reddit", RedditSettings(subreddits=("dataengineering",), base_url=reddit.url,
                                         token_url=f"{reddit.url}/api/v1/access_token",
                                         page_size=10), limit=45)
    shutil.copy(ROOT / "lake" / "_state" / "cursors.json", "old_cursors.json")

So each kind of old cursor is there: the sample stopped by its limit (``resume`` "1100") and
finished; the file source with a.csv imported and b.csv stopped at its 4th row; X stopped in the
middle of its third page (an unfinished walk with ``skip``) and finished (``newest_id``); Mastodon
with instance A finished (a JSON map of floors) and B's walk unfinished; Bluesky's walk left at a
page that was never JSON, and finished (``newest_time``); Reddit with its subreddit finished and
its search walk unfinished.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fake_apis import T0, serving
from fake_networks import (
    FakeBluesky,
    FakeMastodon,
    FakeReddit,
    FakeX,
    bluesky_post,
    mastodon_status,
    reddit_link,
    x_tweet,
)

from flows.config import Config, PipelineConfig, TwitterConfig
from flows.cursors import (
    CURSOR_TYPES,
    CURSORS_FORMAT,
    CursorError,
    FileCursor,
    FilePosition,
    JetstreamCursor,
    SampleCursor,
    Walk,
    WalkCursor,
    dump_cursors,
    load_cursors,
)
from flows.lake.lake import Lake
from flows.sources.bluesky import BlueskySettings, post_view_to_post
from flows.sources.file.source import FileSettings
from flows.sources.mastodon import MastodonSettings, status_to_post
from flows.sources.reddit import RedditSettings, link_to_post
from flows.sources import registry
from flows.sources.registry import SOURCE_SETTINGS
from flows.sources.sample.source import SampleSettings, generate_posts
from flows.sources.x import XSettings
from flows.sources.x_payload import x_tweet_post
from flows.stages.collect import collect_source

OLD_CURSORS = Path(__file__).parent / "data" / "old_cursors.json"
OLD_FILES = "/tmp/old-cursors/files"
OLD_INSTANCES = ("http://127.0.0.1:39651", "http://127.0.0.1:34585")  # Mastodon A and B
MTIME_NS = 1_700_000_000_000_000_000
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def old_csv(name: str, rows: int) -> str:
    """A file of the original project's table, as the script wrote it."""
    lines = ["username,created_utc,likes,retweets,replies,source,content,url"]
    for n in range(rows):
        lines.append(
            f"user{n % 3},2022-11-{10 + n:02d}T10:00:00,{n},{n % 4},{n % 2},Twitter Web App,"
            f"Post {n} of {name} #dataengineering,https://twitter.com/user{n % 3}/status/"
            f"{old_tweet_id(name, n)}"
        )
    return "\n".join(lines) + "\n"


def old_tweet_id(name: str, n: int) -> int:
    return 1590000000000000000 + 1000 * ord(name) + n


def old_cursors() -> dict:
    return json.loads(OLD_CURSORS.read_text())


def file_key(name: str) -> str:
    return f"{OLD_FILES}/{name}.csv:1363:{MTIME_NS}"


def test_each_old_cursor_becomes_its_kind_with_the_same_meaning():
    cursors = load_cursors(old_cursors())
    a, b = OLD_INSTANCES
    assert cursors == {
        # `resume` "1100" (the next index) of a run stopped by its limit; `newest_id` "1499"
        "sample/dataengineering": SampleCursor(
            1100, datetime(2026, 11, 15, 19, 53, 45, 436777, tzinfo=UTC)
        ),
        "sample/duckdb": SampleCursor(1500, datetime(2026, 11, 23, 23, 35, 8, 686999, tzinfo=UTC)),
        "file/dataengineering": FileCursor(
            (file_key("a"),),
            FilePosition(file_key("b"), 5, 0),
            datetime(2022, 11, 19, 10, tzinfo=UTC),
        ),
        "x/dataengineering": WalkCursor(
            {},
            Walk("", None, "2123687911617462301", "b26v89c19zqg8o3f2123687831925686282", 5),
        ),
        "x/duckdb": WalkCursor(
            {"": "2123687836119990283"}, None, datetime(2026, 11, 20, 8, 0, 11, tzinfo=UTC)
        ),
        "mastodon/dataengineering": WalkCursor(
            {a: "50"}, Walk(b, None, "50", "31"), datetime(2026, 11, 20, 8, 50, tzinfo=UTC)
        ),
        "bluesky/dataengineering": WalkCursor({}, Walk("", None, "2026-11-20T08:28:58.000Z", "20")),
        "bluesky/duckdb": WalkCursor({}, None, datetime(2026, 11, 20, 8, 3, 58, tzinfo=UTC)),
        "reddit/dataengineering": WalkCursor(
            {"r/dataengineering": "t3_lfml"},
            Walk("search", None, "t3_lfml", "t3_lfm7"),
            datetime(2026, 11, 20, 8, 29, tzinfo=UTC),
        ),
    }
    saved = dump_cursors(cursors)
    assert saved["format"] == CURSORS_FORMAT and load_cursors(saved) == cursors


@pytest.fixture
def source_env(monkeypatch) -> None:
    monkeypatch.setenv("X_BEARER_TOKEN", "test-bearer-token")
    monkeypatch.setenv("BLUESKY_HANDLE", "me.bsky.social")
    monkeypatch.setenv("BLUESKY_APP_PASSWORD", "app-pass-word-1234")
    monkeypatch.setenv("REDDIT_CLIENT_ID", "app-id")
    monkeypatch.setenv("REDDIT_CLIENT_SECRET", "app-secret-value")


def lake_ids(lake: Lake, source: str) -> list[str]:
    return [
        post_id
        for path in lake.manifest()
        if path.startswith(f"posts/source={source}/")
        for post_id in lake.read_posts(path).column("post_id").to_pylist()
    ]


def test_a_lake_of_the_old_code_resumes_every_source_where_it_stopped(tmp_path, source_env):
    files = tmp_path / "files"
    files.mkdir()
    for name in ("a", "b"):
        path = files / f"{name}.csv"
        path.write_text(old_csv(name, 10))
        os.utime(path, ns=(MTIME_NS, MTIME_NS))
    x = FakeX([x_tweet(n, start=T0) for n in range(30)])
    instances = [
        FakeMastodon([mastodon_status(n, host, n) for n in range(1, 51)])
        for host in ("a.example", "b.example")
    ]
    bluesky = FakeBluesky([bluesky_post(n) for n in range(30)])
    reddit = FakeReddit([reddit_link(n) for n in range(30)])
    with serving(x, *instances, bluesky, reddit):
        # the old lake, moved to where this test's files and fake instances are
        urls = dict(zip(OLD_INSTANCES, (api.url for api in instances), strict=True))
        text = re.sub("|".join(map(re.escape, urls)), lambda m: urls[m[0]], OLD_CURSORS.read_text())
        state = tmp_path / "lake" / "_state"
        state.mkdir(parents=True)
        (state / "cursors.json").write_text(text.replace(OLD_FILES, str(files.resolve())))
        settings = {
            "sample": SampleSettings(posts=1500, batch_size=500),
            "file": FileSettings(paths=(str(files / "*.csv"),)),
            "x": XSettings(base_url=f"{x.url}/2", max_results=10),
            "mastodon": MastodonSettings(instances=tuple(urls.values()), page_size=20),
            "bluesky": BlueskySettings(base_url=f"{bluesky.url}/xrpc", page_size=10),
            "reddit": RedditSettings(
                subreddits=("dataengineering",),
                base_url=reddit.url,
                token_url=f"{reddit.url}/api/v1/access_token",
                page_size=10,
            ),
        }
        config = Config(
            twitter=TwitterConfig(hashtag="dataengineering"),
            pipeline=PipelineConfig(sources=tuple(settings), lake=str(tmp_path / "lake")),
            source_settings=settings,
        )
        reports = {name: collect_source(config, name, "new") for name in settings}
    assert {name: report.error for name, report in reports.items()} == dict.fromkeys(settings)
    lake = Lake(config.lake)

    # each source goes on with the posts after those the old runs collected: none twice, none lost
    sample = generate_posts(1100, 1500, settings["sample"], "dataengineering", NOW)
    assert sorted(lake_ids(lake, "sample")) == sorted(set(sample.column("post_id").to_pylist()))
    # the file source imports X posts: a.csv was imported, b.csv goes on after its 4th row; the
    # X walk goes on with its third page, after the 5 posts taken from it
    assert sorted(lake_ids(lake, "x")) == sorted(
        [f"x:{old_tweet_id('b', n)}" for n in range(4, 10)]
        + [x_tweet_post(x_tweet(n, start=T0), "", NOW)["post_id"] for n in range(5)]
    )
    assert x.requests[0].query["next_token"] == "b26v89c19zqg8o3f2123687831925686282"
    a, b = instances
    assert a.requests[0].query["since_id"] == "50" and b.requests[0].query["max_id"] == "31"
    assert sorted(lake_ids(lake, "mastodon")) == sorted(
        status_to_post(status, "", NOW)["post_id"] for status in b.statuses[:30]
    )
    assert bluesky.requests[1].query["cursor"] == "20"  # after createSession
    assert sorted(lake_ids(lake, "bluesky")) == sorted(
        post_view_to_post(bluesky_post(n), "", NOW)["post_id"] for n in range(10)
    )
    assert sorted(lake_ids(lake, "reddit")) == sorted(
        link_to_post(reddit_link(n)["data"], "", NOW)["post_id"] for n in range(15)
    )

    # the file is rewritten in the current format; cursors this run did not touch are kept
    saved = json.loads((state / "cursors.json").read_text())
    assert saved["format"] == CURSORS_FORMAT and set(saved["cursors"]) == set(old_cursors())
    cursors = load_cursors(saved)
    old = load_cursors(old_cursors())
    for key in ("sample/duckdb", "x/duckdb", "bluesky/duckdb"):
        assert cursors[key] == old[key]
    assert cursors["sample/dataengineering"].next_index == 1500
    assert cursors["file/dataengineering"] == FileCursor(
        (
            str(files.resolve() / f"a.csv:1363:{MTIME_NS}"),
            str(files.resolve() / f"b.csv:1363:{MTIME_NS}"),
        ),
        None,
        datetime(2022, 11, 19, 10, tzinfo=UTC),
    )
    # the newest post of the part walked this run
    newest = T0 + timedelta(seconds=4)
    assert cursors["x/dataengineering"] == WalkCursor({"": "2123687911617462301"}, None, newest)
    assert cursors["mastodon/dataengineering"].floors == {a.url: "50", b.url: "50"}
    assert cursors["bluesky/dataengineering"] == WalkCursor(
        {}, None, datetime(2026, 11, 20, 8, 28, 58, tzinfo=UTC)
    )
    assert cursors["reddit/dataengineering"].floors == {
        "r/dataengineering": "t3_lfml",
        "search": "t3_lfml",
    }
    assert all(cursor.walk is None for cursor in cursors.values() if isinstance(cursor, WalkCursor))


def test_an_old_cursor_that_does_not_fit_its_source_stops_that_source_only(tmp_path):
    state = tmp_path / "lake" / "_state"
    state.mkdir(parents=True)
    old = {"sample/dataengineering": {"newest_id": None, "resume": "token-abc"}}
    (state / "cursors.json").write_text(json.dumps(old))
    with pytest.raises(CursorError, match="'sample/dataengineering' cannot be read"):
        Lake(str(tmp_path / "lake")).read_cursor("sample", "dataengineering")
    config = Config(
        pipeline=PipelineConfig(lake=str(tmp_path / "lake")),
        source_settings={"sample": SampleSettings(posts=10)},
    )
    report = collect_source(config, "sample", "run")
    assert "Remove that entry" in report.error and report.fetched == 0


def test_a_newer_format_is_refused():
    with pytest.raises(CursorError, match="format 3"):
        load_cursors({"format": CURSORS_FORMAT + 1, "cursors": {}})


def test_every_source_has_a_kind_of_cursor():
    """The lake (below the sources) reads cursors by source name: the lists must agree."""
    streams = {cls.name for cls in registry._STREAMS.values()}  # jetstream, mastodon-stream
    assert set(CURSOR_TYPES) == set(SOURCE_SETTINGS) | streams


def test_a_jetstream_cursor_round_trips_through_the_file(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    assert lake.read_cursor("jetstream", "rust") == JetstreamCursor()
    saved = JetstreamCursor(1_779_719_009_132_431, datetime(2026, 5, 25, 14, 23, tzinfo=UTC))
    lake.save_cursor("jetstream", "rust", saved)
    assert Lake(str(tmp_path / "lake")).read_cursor("jetstream", "rust") == saved
    assert str(saved) == "event 2026-05-25 14:23:29, 2026-05-25 14:23"
