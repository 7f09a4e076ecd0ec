"""The file source: X API v2 pages, flattened tweets, the original table and lake exports."""

from __future__ import annotations

import csv
import gzip
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import make_posts

from flows.config import parse_section
from flows.settings import ConfigError
from flows.schema import POST_SCHEMA
from flows.cursors import FileCursor
from flows.sources.base import Batch, SourceError
from flows.sources.file.source import FileSettings, FileSource

T1, T2, T3, T4, T5 = (f"159000000000000000{i}" for i in range(1, 6))
ALICE = {
    "id": "100",
    "username": "alice_de",
    "name": "Alice Data",
    "created_at": "2015-03-01T08:00:00.000Z",
}
BOB = {
    "id": "200",
    "username": "bobpipes",
    "name": "Bob Pipes",
    "created_at": "2019-07-12T17:45:10.000Z",
}
TWARC = {
    "url": "https://api.twitter.com/2/tweets/search/recent?...",
    "version": "2.14.0",
    "retrieved_at": "2022-11-24T00:00:00+00:00",
}


def metrics(retweets: int, replies: int, likes: int, quotes: int) -> dict:
    return {
        "retweet_count": retweets,
        "reply_count": replies,
        "like_count": likes,
        "quote_count": quotes,
        "bookmark_count": 0,
        "impression_count": 100 * likes,
    }


def tweet(tweet_id: str, author: dict, text: str, created_at: str | None, **fields) -> dict:
    payload = {
        "id": tweet_id,
        "edit_history_tweet_ids": [tweet_id],
        "author_id": author["id"],
        "text": text,
        "conversation_id": T1,
        "lang": "en",
        **fields,
    }
    if created_at is not None:
        payload["created_at"] = created_at
    return payload


ORIGINAL = tweet(
    T1,
    ALICE,
    "Loving #DataEngineering with @bobpipes https://t.co/abc",
    "2022-11-23T10:00:00.000Z",
    source="Twitter Web App",
    public_metrics=metrics(3, 1, 10, 2),
    entities={
        "hashtags": [{"start": 7, "end": 23, "tag": "DataEngineering"}],
        "mentions": [{"start": 29, "end": 38, "username": "bobpipes", "id": "200"}],
        "urls": [
            {
                "start": 39,
                "end": 55,
                "url": "https://t.co/abc",
                "expanded_url": "https://example.com/post",
                "display_url": "example.com/post",
            }
        ],
    },
)
RETWEET = tweet(
    T2,
    BOB,
    "RT @alice_de: Loving #DataEngineering with @bobpipes https://t.co/abc",
    "2022-11-23T11:30:00.000Z",
    source="Twitter for iPhone",
    public_metrics=metrics(3, 0, 0, 0),
    referenced_tweets=[{"type": "retweeted", "id": T1}],
    entities={
        "hashtags": [{"start": 21, "end": 37, "tag": "DataEngineering"}],
        "mentions": [
            {"start": 3, "end": 12, "username": "alice_de", "id": "100"},
            {"start": 43, "end": 52, "username": "bobpipes", "id": "200"},
        ],
        "urls": [
            {
                "start": 53,
                "end": 69,
                "url": "https://t.co/abc",
                "expanded_url": "https://example.com/post",
                "display_url": "example.com/post",
            }
        ],
    },
)
REPLY = tweet(
    T3,
    BOB,
    "@alice_de agreed! #dataengineering #DataEngineering",
    "2022-11-24T09:15:00.000Z",
    source="Twitter for Android",
    public_metrics=metrics(0, 0, 4, 0),
    in_reply_to_user_id="100",
    referenced_tweets=[{"type": "replied_to", "id": T1}],
    entities={
        "hashtags": [
            {"start": 18, "end": 34, "tag": "dataengineering"},
            {"start": 35, "end": 51, "tag": "DataEngineering"},
        ],
        "mentions": [{"start": 0, "end": 9, "username": "alice_de", "id": "100"}],
    },
)
QUOTE = tweet(  # no `entities` requested: tags come from the text
    T4,
    ALICE,
    "Worth a read, @bobpipes: #DataOps meets #dataengineering https://example.org/a.",
    "2022-11-25T18:00:00.000Z",
    source="TweetDeck",
    public_metrics=metrics(1, 2, 7, 0),
    referenced_tweets=[{"type": "quoted", "id": T1}],
)
UNDATED = tweet(T5, ALICE, "created_at was not requested", None)
PAGES = [
    {
        "data": [ORIGINAL, RETWEET],
        "includes": {"users": [ALICE, BOB], "tweets": [ORIGINAL]},
        "meta": {
            "newest_id": T2,
            "oldest_id": T1,
            "result_count": 2,
            "next_token": "b26v89c19zqg8o3f",
        },
        "__twarc": TWARC,
    },
    {
        "data": [REPLY, QUOTE, UNDATED],
        "includes": {"users": [ALICE, BOB], "tweets": [ORIGINAL]},
        "meta": {"newest_id": T5, "oldest_id": T3, "result_count": 3},
        "__twarc": TWARC,
    },
    {"meta": {"result_count": 0}, "__twarc": TWARC},  # the last page of a search that ran dry
]


def expected(
    tweet_id: str,
    author: dict,
    created: datetime,
    text: str,
    *,
    lang: str | None = "en",
    name: bool = True,
    counts=(None, None, None, None),
    is_repost=False,
    in_reply_to=None,
    quoted_post=None,
    hashtags=(),
    mentions=(),
    links=(),
    client=None,
) -> dict:
    return {
        "post_id": f"x:{tweet_id}",
        "source": "x",
        "native_id": tweet_id,
        "hashtag": "dataengineering",
        "url": f"https://x.com/{author['username']}/status/{tweet_id}",
        "author_handle": author["username"],
        "author_name": author["name"] if name else None,
        "created_at": created,
        "text": text,
        "lang": lang,
        "like_count": counts[0],
        "repost_count": counts[1],
        "reply_count": counts[2],
        "quote_count": counts[3],
        "is_repost": is_repost,
        "in_reply_to": in_reply_to,
        "hashtags": list(hashtags),
        "mentions": list(mentions),
        "links": list(links),
        "client": client,
        "quoted_post": quoted_post,
    }


EXPECTED_X = [
    expected(
        T1,
        ALICE,
        datetime(2022, 11, 23, 10, tzinfo=UTC),
        ORIGINAL["text"],
        counts=(10, 3, 1, 2),
        hashtags=["dataengineering"],
        mentions=["bobpipes"],
        links=["https://example.com/post"],
        client="Twitter Web App",
    ),
    expected(
        T2,
        BOB,
        datetime(2022, 11, 23, 11, 30, tzinfo=UTC),
        ORIGINAL["text"],  # the original's full text and counts, as X shows a retweet
        counts=(10, 3, 1, 2),
        is_repost=True,
        hashtags=["dataengineering"],
        mentions=["bobpipes"],
        links=["https://example.com/post"],
        client="Twitter for iPhone",
    ),
    expected(
        T3,
        BOB,
        datetime(2022, 11, 24, 9, 15, tzinfo=UTC),
        REPLY["text"],
        counts=(4, 0, 0, 0),
        in_reply_to=T1,
        hashtags=["dataengineering"],
        mentions=["alice_de"],
        client="Twitter for Android",
    ),
    expected(
        T4,
        ALICE,
        datetime(2022, 11, 25, 18, tzinfo=UTC),
        QUOTE["text"],
        counts=(7, 1, 2, 0),
        quoted_post=T1,
        hashtags=["dataops", "dataengineering"],
        mentions=["bobpipes"],
        links=["https://example.org/a"],
        client="TweetDeck",
    ),
]


def write_jsonl(path: Path, records: list, *, broken: dict[int, str] | None = None) -> Path:
    lines = [json.dumps(record) for record in records]
    for index, text in sorted((broken or {}).items()):
        lines.insert(index, text)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def flattened(page: dict) -> list[dict]:
    """What `twarc2 flatten` writes for a page: each tweet with its expansions inline."""
    users = {user["id"]: user for user in page["includes"]["users"]}
    included = {t["id"]: t for t in page["includes"]["tweets"]}
    return [
        {
            **t,
            "author": users[t["author_id"]],
            "__twarc": TWARC,
            **(
                {"in_reply_to_user": users[t["in_reply_to_user_id"]]}
                if "in_reply_to_user_id" in t
                else {}
            ),
            **(
                {
                    "referenced_tweets": [
                        {**ref, **included[ref["id"]]} for ref in t["referenced_tweets"]
                    ]
                }
                if "referenced_tweets" in t
                else {}
            ),
        }
        for t in page["data"]
    ]


def fetch(
    *paths, cursor: FileCursor | None = None, limit: int | None = None, batch_size: int = 10_000
) -> list[Batch]:
    source = FileSource(FileSettings(paths=tuple(str(p) for p in paths), batch_size=batch_size))
    return list(source.fetch("DataEngineering", cursor or FileCursor(), limit))


def rows(batches: list[Batch]) -> list[dict]:
    for batch in batches:
        assert batch.posts.schema.equals(POST_SCHEMA)
    return [row for batch in batches for row in batch.posts.to_pylist()]


def without_collected_at(posts: list[dict]) -> list[dict]:
    return [{k: v for k, v in post.items() if k != "collected_at"} for post in posts]


def fingerprint(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def test_api_pages_map_field_by_field(tmp_path):
    path = write_jsonl(tmp_path / "search.jsonl", PAGES)
    before = datetime.now(UTC)
    batches = fetch(path)
    after = datetime.now(UTC)
    posts = rows(batches)
    assert without_collected_at(posts) == EXPECTED_X
    assert len({post["collected_at"] for post in posts}) == 1
    assert before <= posts[0]["collected_at"] <= after
    (batch,) = batches
    assert batch.cursor.imported == (fingerprint(path),)
    assert batch.cursor.newest_time == datetime(2022, 11, 25, 18, tzinfo=UTC)
    assert batch.cursor.position is None
    assert batch.warnings == (f"{path} line 2: tweet {T5}: no 'created_at'; skipped",)


def test_flattened_tweets_map_like_pages(tmp_path):
    path = write_jsonl(tmp_path / "flat.jsonl.gz", flattened(PAGES[0]) + flattened(PAGES[1]))
    batches = fetch(path)
    assert without_collected_at(rows(batches)) == EXPECTED_X
    assert batches[-1].warnings == (f"{path} line 5: no 'created_at'; skipped",)


def test_a_lone_surrogate_in_a_text_does_not_stop_the_batch(tmp_path):
    tweets = flattened(PAGES[0])
    tweets[0] = {**tweets[0], "text": "half an emoji \ud83d here #DataEngineering"}
    path = write_jsonl(tmp_path / "cut.jsonl", tweets)  # json.dumps writes it as \\ud83d
    posts = rows(fetch(path))
    assert len(posts) == len(tweets)
    assert posts[0]["text"] == "half an emoji \ufffd here #DataEngineering"


def test_long_post_text_comes_from_note_tweet(tmp_path):
    long_text = "A thread-length thought on #DataEngineering " + "and more " * 40
    page = {
        "data": [
            {
                **ORIGINAL,
                "text": long_text[:270] + "… https://t.co/x",
                "note_tweet": {
                    "text": long_text,
                    "entities": {"hashtags": [{"start": 27, "end": 43, "tag": "DataEngineering"}]},
                },
            }
        ],
        "includes": {"users": [ALICE]},
    }
    (post,) = rows(fetch(write_jsonl(tmp_path / "long.jsonl", [page])))
    assert (post["text"], post["hashtags"], post["links"]) == (long_text, ["dataengineering"], [])


def test_a_repost_is_known_by_its_reference_or_its_text(tmp_path):
    by_reference = {**RETWEET, "text": "Loving #DataEngineering"}
    by_text = {**ORIGINAL, "id": T5, "text": "RT @bobpipes: hello"}
    page = {"data": [by_reference, by_text, QUOTE, REPLY], "includes": {"users": [ALICE, BOB]}}
    posts = rows(fetch(write_jsonl(tmp_path / "reposts.jsonl", [page])))
    assert [p["is_repost"] for p in posts] == [True, True, False, False]


ORIGINAL_ROWS = [
    {
        "username": "alice_de",
        "created_utc": datetime(2022, 11, 23, 10, tzinfo=UTC),
        "likes": 10,
        "retweets": 3,
        "replies": 1,
        "source": '<a href="https://mobile.twitter.com" rel="nofollow">Twitter Web App</a>',
        "content": "Loving #DataEngineering with @bobpipes https://example.com/post.",
        "url": f"https://twitter.com/alice_de/status/{T1}",
    },
    {
        "username": "bobpipes",
        "created_utc": datetime(2022, 11, 23, 11, 30, tzinfo=UTC),
        "likes": 0,
        "retweets": 3,
        "replies": 0,
        "source": "Twitter for iPhone",
        "content": "RT @alice_de: Loving #DataEngineering",
        "url": f"https://twitter.com/bobpipes/status/{T2}",
    },
]
EXPECTED_ORIGINAL = [
    expected(
        T1,
        ALICE,
        datetime(2022, 11, 23, 10, tzinfo=UTC),
        ORIGINAL_ROWS[0]["content"],
        lang=None,
        name=False,
        counts=(10, 3, 1, None),
        hashtags=["dataengineering"],
        mentions=["bobpipes"],
        links=["https://example.com/post"],
        client="Twitter Web App",
    ),
    expected(
        T2,
        BOB,
        datetime(2022, 11, 23, 11, 30, tzinfo=UTC),
        ORIGINAL_ROWS[1]["content"],
        lang=None,
        name=False,
        counts=(0, 3, 0, None),
        is_repost=True,
        hashtags=["dataengineering"],
        mentions=["alice_de"],
        client="Twitter for iPhone",
    ),
]


def write_original_parquet(path: Path) -> Path:
    # pandas wrote the original project's table: nanosecond timestamps
    table = pa.Table.from_pylist(ORIGINAL_ROWS).cast(
        pa.schema(
            [
                ("username", pa.string()),
                ("created_utc", pa.timestamp("ns", tz="UTC")),
                ("likes", pa.int64()),
                ("retweets", pa.int64()),
                ("replies", pa.int64()),
                ("source", pa.string()),
                ("content", pa.string()),
                ("url", pa.string()),
            ]
        )
    )
    pq.write_table(table, path)
    return path


def write_csv(path: Path, records: list[dict], **extra_rows) -> Path:
    def cell(value):
        if isinstance(value, datetime):
            return str(value)  # pandas' to_csv style: "2022-11-23 10:00:00+00:00"
        if isinstance(value, list):
            return json.dumps(value)
        return "" if value is None else value

    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows({k: cell(v) for k, v in record.items()} for record in records)
    return path


@pytest.mark.parametrize("container", ["parquet", "csv"])
def test_original_project_table(tmp_path, container):
    if container == "parquet":
        path = write_original_parquet(tmp_path / "tweets.parquet")
    else:
        path = write_csv(tmp_path / "tweets.csv", ORIGINAL_ROWS)
    batches = fetch(path)
    assert without_collected_at(rows(batches)) == EXPECTED_ORIGINAL
    assert batches[-1].warnings == ()


@pytest.mark.parametrize("container", ["parquet", "csv", "jsonl"])
def test_posts_in_the_post_schema_round_trip(tmp_path, container):
    table = make_posts(range(4))
    table = table.set_column(
        table.schema.get_field_index("in_reply_to"),
        "in_reply_to",
        pa.array([None, "x:1", None, None], pa.string()),
    )
    records = table.to_pylist()
    path = tmp_path / f"export.{container}"
    if container == "parquet":
        pq.write_table(table, path)
    elif container == "csv":
        write_csv(path, records)
    else:
        write_jsonl(
            path,
            [
                {k: v.isoformat() if isinstance(v, datetime) else v for k, v in r.items()}
                for r in records
            ],
        )
    (batch,) = fetch(path)
    assert batch.posts.equals(table)  # its own hashtag and collection time are kept


def test_malformed_records_are_skipped_and_reported(tmp_path):
    pages = write_jsonl(
        tmp_path / "pages.jsonl", PAGES, broken={1: '{"data": [{"id": "9", ', 3: "[1, 2]"}
    )
    table = write_csv(
        tmp_path / "old.csv",
        [
            *ORIGINAL_ROWS,
            {**ORIGINAL_ROWS[0], "created_utc": "yesterday"},
            {**ORIGINAL_ROWS[0], "url": "https://example.com/"},
        ],
    )
    batches = fetch(pages, table)
    assert [p["native_id"] for p in rows(batches)] == [T1, T2, T3, T4, T1, T2]
    warnings = [w for batch in batches for w in batch.warnings]
    assert warnings[0].startswith(f"{pages} line 2: malformed JSON (")
    assert warnings[1:] == [
        f"{pages} line 3: tweet {T5}: no 'created_at'; skipped",
        f"{pages} line 4: not a JSON object; skipped",
        f"{table} line 4: not an ISO 8601 time: 'yesterday'; skipped",
        f"{table} line 5: no tweet id: 'url' 'https://example.com/' is not a status URL "
        "and there is no 'id'; skipped",
    ]


def test_a_file_of_bad_lines_lists_the_first_and_counts_the_rest(tmp_path):
    path = write_jsonl(
        tmp_path / "bad.jsonl", [flattened(PAGES[0])[0]], broken={i: "{oops" for i in range(1, 31)}
    )
    (batch,) = fetch(path)
    assert batch.posts.num_rows == 1
    assert len(batch.warnings) == 21
    assert batch.warnings[-1] == f"{path}: 10 more records skipped, not listed"


def test_imported_files_are_skipped_until_they_change(tmp_path):
    path = write_jsonl(tmp_path / "pages.jsonl", PAGES)
    cursor = fetch(path)[-1].cursor
    assert fetch(path, cursor=cursor) == []
    write_jsonl(path, PAGES[:1])
    os.utime(path, ns=(1, 1))  # a new size and modification time: a new fingerprint
    (batch,) = fetch(path, cursor=FileCursor.from_json(cursor.to_json()))
    assert batch.posts.column("native_id").to_pylist() == [T1, T2]
    assert batch.cursor.imported == (*cursor.imported, fingerprint(path))


def test_batches_of_batch_size_and_resume_after_a_crash(tmp_path):
    path = write_jsonl(tmp_path / "flat.jsonl", flattened(PAGES[0]) + flattened(PAGES[1]))
    batches = fetch(path, batch_size=2)
    assert [b.posts.num_rows for b in batches] == [2, 2]
    assert batches[0].cursor.imported == ()  # the file is not finished yet
    assert batches[0].cursor.newest_time == datetime(2022, 11, 23, 11, 30, tzinfo=UTC)
    assert batches[-1].cursor.imported == (fingerprint(path),)
    assert batches[-1].cursor.position is None
    # a run that died after the first batch goes on with the posts after it
    rest = fetch(path, cursor=batches[0].cursor, batch_size=2)
    assert [p["native_id"] for p in rows(rest)] == [T3, T4]
    assert rest[-1].cursor == batches[-1].cursor


def test_limit_stops_mid_file_and_the_next_run_goes_on(tmp_path):
    path = write_jsonl(tmp_path / "pages.jsonl", PAGES)
    first = fetch(path, limit=3)
    assert [p["native_id"] for p in rows(first)] == [T1, T2, T3]  # T3 is the first of page 2
    assert first[-1].cursor.imported == ()
    second = fetch(path, cursor=first[-1].cursor, limit=3)
    assert [p["native_id"] for p in rows(second)] == [T4]
    assert second[-1].cursor.imported == (fingerprint(path),)
    assert fetch(path, limit=0) == []


def test_a_run_goes_on_in_the_file_it_stopped_in_before_new_files(tmp_path):
    later = write_jsonl(tmp_path / "b.jsonl", flattened(PAGES[0]))
    first = fetch(tmp_path / "*.jsonl", limit=1)
    assert [p["native_id"] for p in rows(first)] == [T1]
    write_jsonl(tmp_path / "a.jsonl", flattened(PAGES[1]))  # sorts before b.jsonl
    second = fetch(tmp_path / "*.jsonl", cursor=first[-1].cursor, limit=1)
    assert [p["native_id"] for p in rows(second)] == [T2]
    assert second[-1].cursor.imported == ()  # b.jsonl may be done, but only the next run knows
    third = fetch(tmp_path / "*.jsonl", cursor=second[-1].cursor)
    assert [p["native_id"] for p in rows(third)] == [T3, T4]
    assert set(third[-1].cursor.imported) == {fingerprint(later), fingerprint(tmp_path / "a.jsonl")}


def test_globs_expand_relative_to_the_current_directory(tmp_path, monkeypatch):
    (tmp_path / "in" / "2022").mkdir(parents=True)
    flat = flattened(PAGES[0]) + flattened(PAGES[1])[:2]
    for index, record in enumerate(flat):
        write_jsonl(
            tmp_path / "in" / ("2022" if index % 2 else "") / f"part-{index}.jsonl", [record]
        )
    (tmp_path / "in" / "notes.txt").write_text("not matched")
    monkeypatch.chdir(tmp_path)
    (batch,) = fetch("in/**/*.jsonl", "in/part-0.jsonl")  # a file named twice is read once
    assert batch.posts.column("native_id").to_pylist() == [T2, T4, T1, T3]  # sorted by path
    assert len(batch.cursor.imported) == 4


def test_a_path_that_matches_nothing_says_how_to_fix_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_jsonl(tmp_path / "a.jsonl", PAGES)
    for pattern in ("missing/*.jsonl", "nothere.csv", "."):
        with pytest.raises(SourceError, match=r"\[file\] paths.*configuration\.conf") as error:
            fetch("a.jsonl", pattern)
        assert repr(pattern) in str(error.value)
    with pytest.raises(SourceError, match=r"paths is empty"):
        fetch()


def test_an_unknown_file_names_itself_and_the_formats(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("when,what\n2022-01-01,hello\n")
    with pytest.raises(SourceError) as error:
        fetch(path)
    message = str(error.value)
    assert f"{path}: not a file the file source knows (csv; columns: what, when)" in message
    for accepted in (
        "X API v2 response pages",
        "twarc2 flatten",
        "username, created_utc",
        "POST_SCHEMA",
    ):
        assert accepted in message
    (tmp_path / "array.json").write_text(json.dumps(PAGES))
    with pytest.raises(SourceError, match="a JSON array, not JSON lines"):
        fetch(tmp_path / "array.json")


def test_an_empty_file_is_imported_with_no_posts(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    (batch,) = fetch(path)
    assert batch.posts.num_rows == 0
    assert batch.cursor.imported == (fingerprint(path),)


def test_settings_are_checked():
    with pytest.raises(ValueError, match=r"^batch_size: "):
        FileSettings(batch_size=0)
    settings = parse_section(
        FileSettings, {"paths": "a.jsonl,\n exports/*.parquet", "batch_size": "500"}, "file", "test"
    )
    assert settings == FileSettings(paths=("a.jsonl", "exports/*.parquet"), batch_size=500)
    with pytest.raises(ConfigError, match=r"\[file\] batch_size"):
        parse_section(FileSettings, {"batch_size": "-1"}, "file", "test")
