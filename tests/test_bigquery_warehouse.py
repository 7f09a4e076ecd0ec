"""The BigQuery warehouse against a BigQuery emulator and a GCS emulator on 127.0.0.1, through
the production client code (google-cloud-bigquery, gcsfs): the dataset and tables it creates,
load jobs from the lake's ``gs://`` files, MERGE idempotence, every view and every dashboard
query equal to DuckDB's on the same rows, and `analyze` from a gs:// lake into BigQuery."""

from __future__ import annotations

import io
import logging
import math
import os
import re
from datetime import timedelta
from types import SimpleNamespace

# gcsfs otherwise probes each bucket over gRPC, which the emulator lacks, for 60 s; read at import
os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import pytest  # noqa: E402
from google.auth.credentials import AnonymousCredentials  # noqa: E402

from dashboard import queries  # noqa: E402
from flows.lake.lake import Lake  # noqa: E402
from flows.lake.runs import CollectionRun, RunLog  # noqa: E402
from flows.warehouse.errors import WarehouseError  # noqa: E402
from flows.schema import CONVERSATION_SCHEMA, posts_table  # noqa: E402
from flows.warehouse.bigquery_warehouse import BigQueryWarehouse, bigquery_schema  # noqa: E402
from flows.warehouse.open import open_warehouse  # noqa: E402
from flows.warehouse.tables import POST_NLP  # noqa: E402
from flows.warehouse.tables import POSTS as POSTS_TABLE  # noqa: E402
from flows.warehouse.views import VIEW_NAMES  # noqa: E402
from servers import bigquery_emulator, fake_gcs  # noqa: E402
from test_collection_health import RUNS  # noqa: E402
from test_dashboard import FIRST_DAY, dashboard_rows  # noqa: E402
from test_refresh_warehouse import deletions_table, metrics_table, recent_posts  # noqa: E402
from test_signals import SPIKED, assert_one_spike, hourly_posts, signals  # noqa: E402
from test_warehouse_duckdb import NO_ROWS, POSTS, RESULTS, older, post, utc  # noqa: E402

PROJECT = "pulse-test"
LOGGER = "flows.warehouse.bigquery_warehouse"


@pytest.fixture(scope="module")
def emulators(tmp_path_factory):
    root = tmp_path_factory.mktemp("gcs-objects")  # where both emulators see the lake's objects
    logs = tmp_path_factory.mktemp("emulator-logs")
    with (
        fake_gcs(logs / "gcs.log", root) as gcs,
        bigquery_emulator(logs / "bq.log", root, PROJECT) as bq,
        pytest.MonkeyPatch.context() as env,
    ):
        # google-cloud-bigquery's own switch: the production client, pointed at the emulator
        env.setenv("BIGQUERY_EMULATOR_HOST", bq)
        yield SimpleNamespace(gcs=gcs, bq=bq)


def dataset_url(name: str) -> str:
    return f"bigquery://{PROJECT}/{re.sub(r'[^A-Za-z0-9_]', '_', name)[:80]}"


def bigquery(url: str, **options) -> BigQueryWarehouse:
    return open_warehouse(url, credentials=AnonymousCredentials(), **options)


@pytest.fixture
def url(emulators, request) -> str:
    return dataset_url(request.node.name)


@pytest.fixture
def lake(emulators, request) -> Lake:
    import gcsfs

    bucket = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:60].strip("-")
    options = {"endpoint_url": emulators.gcs, "token": "anon", "project": PROJECT}
    gcsfs.GCSFileSystem(**options).mkdir(bucket)
    return Lake(f"gs://{bucket}/lake", **options)


def rows(table: pa.Table) -> list[dict]:
    """Rows in a stable order, floats rounded (BigQuery and DuckDB may sum in another order),
    and a NULL list read as empty: BigQuery has no NULL arrays."""
    lists = {f.name for f in table.schema if pa.types.is_list(f.type)}

    def clean(value):
        if isinstance(value, float):
            return round(value, 9)
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        return value

    cleaned = [
        {k: clean([] if v is None and k in lists else v) for k, v in row.items()}
        for row in table.to_pylist()
    ]
    return sorted(cleaned, key=repr)


def assert_same(got: list[dict], want: list[dict], context: str = "") -> None:
    """Equal rows; else the first row that differs, with only the values that differ."""
    assert len(got) == len(want), context
    for mine, theirs in zip(got, want, strict=True):
        differs = {k: (mine.get(k), theirs.get(k)) for k in theirs if mine.get(k) != theirs.get(k)}
        assert mine.keys() == theirs.keys() and not differs, (theirs, differs, context)


def test_bigquery_creates_the_dataset_partitioned_tables_and_views(url):
    with bigquery(url, location="europe-west1") as warehouse:
        client = warehouse.client
        assert client.get_dataset(f"{PROJECT}.{warehouse.dataset}").location == "europe-west1"
        posts = client.get_table(warehouse.table_id("posts"))
        assert (posts.time_partitioning.type_, posts.time_partitioning.field) == (
            "DAY",
            "created_at",
        )
        assert posts.clustering_fields == ["source", "hashtag"]
        nlp = client.get_table(warehouse.table_id("post_nlp"))
        assert nlp.clustering_fields == ["model_id", "post_id"]
        entities = next(f for f in nlp.schema if f.name == "entities")
        assert (entities.field_type, entities.mode) == ("RECORD", "REPEATED")
        assert [f.name for f in entities.fields] == ["text", "type"]
        assert next(f for f in posts.schema if f.name == "post_id").mode == "REQUIRED"
        for name in VIEW_NAMES:
            assert client.get_table(warehouse.table_id(name)).table_type == "VIEW"
        columns = warehouse.query("SELECT * FROM top_posts").column_names
        # a view whose SQL is out of date (an older version of this code) is replaced on open
        stale = client.get_table(warehouse.table_id("top_posts"))
        stale.view_query = f"SELECT post_id FROM `{PROJECT}.{warehouse.dataset}.posts`"
        client.update_table(stale, ["view_query"])
        assert warehouse.query("SELECT * FROM top_posts").column_names == ["post_id"]
    with bigquery(url) as reopened:  # opening again changes nothing else, and keeps the data
        assert reopened.query("SELECT * FROM top_posts").column_names == columns
        assert reopened.counts() == NO_ROWS


def test_bigquery_loads_posts_from_the_gcs_lake_with_load_jobs_and_merge_is_idempotent(
    url, lake, posts, caplog
):
    batch = pa.concat_tables([posts(range(20)), posts(range(20, 30), day=1), posts([3, 4])])
    with lake.writer("r1") as writer:
        files = [lake.uri(path) for path in writer.write(batch).files]
    assert len(files) == 2 and all(f.startswith(f"{lake.url}/posts/source=x/date=") for f in files)

    with bigquery(url) as warehouse, caplog.at_level(logging.INFO, logger=LOGGER):
        assert warehouse.load_posts(batch, files) == 30
        load_job = re.search(r"load job (\S+): 30 rows from 2 lake files", caplog.text).group(1)
        # the request the load sends: the lake's gs:// URIs, Parquet, into a staging table
        job = warehouse.client.get_job(load_job)
        assert sorted(job.source_uris) == sorted(files)
        assert job.source_format == "PARQUET"
        assert job.destination.table_id.startswith("_staging_posts_")
        assert re.search(r"MERGE job \S+ into posts: 30 inserted", caplog.text)

        assert warehouse.load_posts(batch, files) == 0  # the same files again: nothing changes
        assert warehouse.counts() == {**NO_ROWS, "posts": 30}
        stored = warehouse.query("SELECT * FROM posts WHERE post_id = ?", ["x:21"]).to_pylist()[0]
        expected = batch.filter(pa.compute.equal(batch["post_id"], "x:21")).to_pylist()[0]
        assert stored == expected  # every column, lists and timestamps included

        # a newer collection refreshes the counters; an older one is ignored (the upload path)
        newer = posts([5], like_count=99, collected_at=expected["collected_at"] + timedelta(days=1))
        older = posts([5], like_count=1, collected_at=expected["collected_at"] - timedelta(days=1))
        assert warehouse.load_posts(newer) == 0
        assert warehouse.load_posts(older) == 0
        likes = warehouse.query("SELECT like_count FROM posts WHERE post_id = 'x:5'").to_pylist()
        assert likes == [{"like_count": 99}]
        # staging tables are dropped after each MERGE
        names = {t.table_id for t in warehouse.client.list_tables(f"{PROJECT}.{warehouse.dataset}")}
        assert names == {*NO_ROWS, *VIEW_NAMES}


def test_bigquery_merges_nlp_results_once_and_finds_analysed_posts(url):
    with bigquery(url) as warehouse:
        warehouse.load_posts(POSTS)
        assert warehouse.load_nlp(RESULTS) == 5
        assert warehouse.load_nlp(RESULTS) == 0
        ids = POSTS.column("post_id").to_pylist()
        assert warehouse.analysed_ids(ids, "lite-1") == {
            "mastodon:1",
            "mastodon:2",
            "mastodon:5",
            "bluesky:abc",
        }
        assert warehouse.analysed_ids(ids, "tweetnlp-1") == {"mastodon:1"}
        assert warehouse.analysed_ids(ids, "other-model") == set()
        assert warehouse.analysed_ids([], "lite-1") == set()
        entities = warehouse.query(
            "SELECT entities FROM post_nlp WHERE post_id = ? AND model_id = ?",
            ["mastodon:1", "lite-1"],
        ).to_pylist()
        assert entities == [
            {
                "entities": [
                    {"text": "DuckDB", "type": "product"},
                    {"text": "Alice", "type": "product"},
                ]
            }
        ]


def test_bigquery_merges_snapshots_and_deletions_once(url):
    with bigquery(url) as warehouse:
        assert warehouse.load_metrics(metrics_table()) == metrics_table().num_rows
        assert warehouse.load_metrics(metrics_table()) == 0
        assert warehouse.load_deletions(deletions_table()) == 1
        assert warehouse.load_deletions(deletions_table()) == 0
        table = warehouse.client.get_table(warehouse.table_id("post_metrics"))
        assert table.clustering_fields == ["post_id"]


def test_bigquery_merges_collection_runs_once(url):
    with bigquery(url) as warehouse:
        assert warehouse.load_runs(RUNS) == RUNS.num_rows
        assert warehouse.load_runs(RUNS) == 0
        assert warehouse.counts()["collection_runs"] == RUNS.num_rows
        table = warehouse.client.get_table(warehouse.table_id("collection_runs"))
        assert table.clustering_fields == ["source"]
        gaps = next(f for f in table.schema if f.name == "gaps")
        assert (gaps.field_type, gaps.mode) == ("RECORD", "REPEATED")
        stored = warehouse.query("SELECT * FROM collection_runs").to_pylist()
        assert rows(pa.Table.from_pylist(stored)) == rows(RUNS)


def test_bigquery_adds_the_columns_added_since_a_table_was_made(url):
    from google.cloud import bigquery as bq

    project, dataset = url.removeprefix("bigquery://").split("/")
    client = bq.Client(project=project, credentials=AnonymousCredentials())
    client.create_dataset(dataset)
    # tables as an earlier version of the pipeline made them, without some of today's columns
    old = ((older(POSTS_TABLE, "client"), POSTS), (older(POST_NLP, "entities"), RESULTS))
    for spec, table in old:
        body = io.BytesIO()
        pq.write_table(table.select(spec.schema.names), body)
        schema = bigquery_schema(spec.schema)
        client.create_table(bq.Table(f"{project}.{dataset}.{spec.name}", schema=schema))
        config = bq.LoadJobConfig(source_format=bq.SourceFormat.PARQUET, schema=schema)
        client.load_table_from_file(
            body, f"{project}.{dataset}.{spec.name}", rewind=True, job_config=config
        ).result()
    # checked through queries: the emulator's table metadata does not follow DDL, BigQuery's does
    with bigquery(url) as warehouse:
        # the rows there are kept
        assert warehouse.counts() == {**NO_ROWS, "posts": 5, "post_nlp": 5}
        newer = posts_table([post("mastodon", "9", utc(21, 10), "dave", client="ios")])
        assert warehouse.load_posts(pa.concat_tables([POSTS, newer])) == 1
        assert warehouse.load_nlp(RESULTS) == 0
        clients = warehouse.query("SELECT post_id, client FROM posts_enriched").to_pylist()
        assert {r["client"] for r in clients if r["post_id"] != "mastodon:9"} == {None}
        assert {"post_id": "mastodon:9", "client": "ios"} in clients
    with bigquery(url) as reopened:  # opening again changes nothing
        assert reopened.counts() == {**NO_ROWS, "posts": 6, "post_nlp": 5}


def test_an_injected_spike_is_one_signal_on_bigquery(url):
    with bigquery(url) as warehouse:
        warehouse.load_posts(hourly_posts(SPIKED))
        assert_one_spike(signals(warehouse))


# Two computations of one window: emerging_conversations shows the later one.
CONVERSATIONS = pa.Table.from_pylist(
    [
        {
            "hashtag": "dataengineering", "window_start": utc(14, 0), "window_end": utc(21, 0),
            "conversation_id": f"20261114-{rank}", "label": label, "size": size,
            "previous_size": 3, "growth": size - 3, "negative_share": 0.25,
            "positive_share": None, "example_post_ids": ["mastodon:1"],
            "example_urls": ["https://mastodon.example/alice/1"], "computed_at": computed,
        }
        for computed in (utc(21, 1), utc(21, 2))
        for rank, (label, size) in enumerate([("iceberg · tables", 9), ("outage · cloud", 5)])
    ],
    schema=CONVERSATION_SCHEMA,
)


@pytest.fixture(scope="module")
def twins(emulators, tmp_path_factory):
    """The same rows in DuckDB and in BigQuery: the test edge cases, and the dashboard's rows."""
    twins = {}
    for name, (posts, results) in {
        "edge_cases": (POSTS, RESULTS),
        "dashboard": dashboard_rows(n=240, seed=5),
    }.items():
        duck = open_warehouse(f"duckdb:///{tmp_path_factory.mktemp(name) / 'w.duckdb'}")
        big = bigquery(dataset_url(f"twins_{name}"))
        for warehouse in (duck, big):
            warehouse.load_posts(posts)
            warehouse.load_nlp(results)
            warehouse.load_runs(RUNS)
            # posts of the last hours, read again and one deleted: rising_posts is not empty
            warehouse.load_posts(recent_posts())
            warehouse.load_metrics(metrics_table())
            warehouse.load_deletions(deletions_table())
            warehouse.load_posts(hourly_posts(SPIKED))  # signals is not empty
            warehouse.load_conversations(CONVERSATIONS)
        twins[name] = (duck, big)
    yield twins
    for pair in twins.values():
        for warehouse in pair:
            warehouse.close()


@pytest.mark.parametrize("data", ["edge_cases", "dashboard"])
@pytest.mark.parametrize("view", VIEW_NAMES)
def test_every_bigquery_view_equals_the_duckdb_view(twins, data, view):
    duck, big = twins[data]
    want = rows(duck.query(f"SELECT * FROM {view}"))
    got = rows(big.query(f"SELECT * FROM {view}"))
    assert len(got) == len(want) > 0
    assert_same(got, want)


def test_the_dashboard_queries_answer_the_same_on_bigquery(twins):
    duck, big = twins["dashboard"]
    everything = queries.Filters()
    narrow = queries.Filters(
        start=FIRST_DAY + timedelta(days=2), sources=("bluesky",), topics=("science_&_technology",)
    )
    built = [queries.facets(), queries.newest_post(), queries.latest_runs()]
    for filters in (everything, narrow):
        built += [
            queries.headline(filters),
            queries.sentiment_by_day(filters),
            queries.topics_by_day(filters),
            queries.top_entities(filters, 5),
            queries.top_authors(filters, 5),
            queries.top_posts(filters, 5),
            queries.rising_posts(filters, 5),
            queries.collection_health(filters, FIRST_DAY + timedelta(days=1)),
        ]
    for sql, params in built:
        want = duck.query(sql, list(params))
        got = big.query(sql, list(params))
        assert got.column_names == want.column_names, sql
        assert_same(rows(got), rows(want), sql)
    # the narrow filter really narrows
    assert (
        big.query(*queries.headline(narrow)).to_pylist()[0]["posts"]
        < big.query(*queries.headline(everything)).to_pylist()[0]["posts"]
    )


def test_bigquery_errors_say_what_failed(url):
    with bigquery(url) as warehouse:
        with pytest.raises(
            WarehouseError, match=r"BigQuery could not query in bigquery://.*no_such_view"
        ):
            warehouse.query("SELECT * FROM no_such_view")
        with pytest.raises(WarehouseError, match="lack the columns"):
            warehouse.load_nlp(pa.table({"post_id": ["x:1"]}))
    with pytest.raises(WarehouseError, match="is closed"):
        warehouse.counts()


def test_analyze_loads_a_gcs_lake_into_bigquery_once(
    url, lake, posts, emulators, monkeypatch, tmp_path
):
    import google.auth

    from flows.stages.analyze import analyze
    from flows.config import load_config

    # application-default credentials, as on the VM, but anonymous: the emulators check none
    monkeypatch.setattr(google.auth, "default", lambda *_, **__: (AnonymousCredentials(), PROJECT))
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulators.gcs)
    with lake.writer("r1") as writer:
        writer.write(pa.concat_tables([posts(range(12)), posts(range(12, 20), day=2)]))
    RunLog(lake).record(CollectionRun.from_row(RUNS.to_pylist()[0]))
    conf = tmp_path / "configuration.conf"
    conf.write_text(f"[pipeline]\nlake = {lake.url}\nwarehouse = {url}\nnlp_backend = lite\n")
    config = load_config(conf)

    first = analyze(config)
    assert (first.files, first.posts_loaded, first.analysed) == (2, 20, 20)
    # the lite backend's sentence vectors are stored as it classifies (conversations read them)
    assert first.totals == {
        **NO_ROWS, "posts": 20, "post_nlp": 20, "collection_runs": 1, "post_embeddings": 20
    }
    assert first.runs_loaded == 1
    assert first.warehouse == url
    again = analyze(config)
    assert (again.files, again.posts_loaded, again.analysed, again.runs_loaded) == (0, 0, 0, 0)
    with bigquery(url) as warehouse:
        daily = warehouse.query("SELECT SUM(posts) AS n FROM daily_sentiment").to_pylist()
        assert daily == [{"n": 20}]
        assert math.isclose(sum(first.sentiment.values()), 20)
    assert not lake.pending_files(f"{first.model_id} -> {url}")
