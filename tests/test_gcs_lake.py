"""The lake on ``gs://`` through gcsfs, against a GCS emulator on 127.0.0.1: the same `Lake` code
as on a local folder (writes, de-duplication, cursors, manifest, the create-only lock)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

# gcsfs otherwise probes each bucket over gRPC, which the emulator lacks, for 60 s; read at import
os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"

import pyarrow as pa  # noqa: E402
import pytest  # noqa: E402

from flows.cursors import Walk, WalkCursor  # noqa: E402
from flows.lake.lake import Lake  # noqa: E402
from flows.lake.lock import LakeBusy  # noqa: E402
from flows.schema import POST_SCHEMA  # noqa: E402
from servers import fake_gcs  # noqa: E402

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    with fake_gcs(tmp_path_factory.mktemp("gcs") / "emulator.log") as url:
        yield url


@pytest.fixture
def lake_url(endpoint, request):
    import gcsfs

    bucket = request.node.name.replace("_", "-")[:60].strip("-").lower()
    gcsfs.GCSFileSystem(endpoint_url=endpoint, token="anon", project="t").mkdir(bucket)
    return f"gs://{bucket}/lake"


def gcs_lake(url: str, endpoint: str) -> Lake:
    # a client of its own, with empty listing caches, as another process would have
    options = {"endpoint_url": endpoint, "token": "anon", "project": "t"}
    return Lake(url, skip_instance_cache=True, **options)


def test_writes_dedupe_and_manifest_on_gcs(lake_url, endpoint, posts):
    lake = gcs_lake(lake_url, endpoint)
    with lake.writer("r1") as writer:
        batch = pa.concat_tables([posts(range(5)), posts([1, 2]), posts(range(10, 13), day=1)])
        first = writer.write(batch)
    assert (first.new, first.duplicates) == (8, 2)
    assert first.files == [
        "posts/source=x/date=2026-11-01/r1-00000.parquet",
        "posts/source=x/date=2026-11-02/r1-00000.parquet",
    ]
    with lake.writer("r2") as writer:  # a new run, a new process: de-duplicates against the lake
        again = writer.write(posts(range(8)))
    assert (again.new, again.duplicates) == (3, 5)
    assert again.files == ["posts/source=x/date=2026-11-01/r2-00000.parquet"]

    reopened = gcs_lake(lake_url, endpoint)
    assert reopened.count_posts() == 11
    stored = reopened.read_posts(first.files[0])
    assert stored.schema.equals(POST_SCHEMA, check_metadata=False)
    assert stored.column("post_id").to_pylist() == [f"x:{i}" for i in range(5)]

    pending = reopened.pending_files("lite -> bigquery://p/d")
    assert sorted(pending) == sorted(first.files + again.files)
    reopened.mark_loaded(first.files, "lite -> bigquery://p/d")
    assert gcs_lake(lake_url, endpoint).pending_files("lite -> bigquery://p/d") == again.files


def test_cursors_round_trip_on_gcs(lake_url, endpoint):
    lake = gcs_lake(lake_url, endpoint)
    assert lake.read_cursor("x", "dataengineering") == WalkCursor()
    newest = datetime(2026, 11, 2, tzinfo=timezone.utc)
    cursor = WalkCursor({"": "42"}, Walk(top="50", token="tok"), newest)
    lake.save_cursor("x", "dataengineering", cursor)
    lake.save_cursor("x", "duckdb", WalkCursor({"": "7"}))
    assert gcs_lake(lake_url, endpoint).read_cursor("x", "dataengineering") == cursor
    assert gcs_lake(lake_url, endpoint).read_cursor("x", "duckdb").floors == {"": "7"}


def test_the_lock_on_gcs_has_one_holder(lake_url, endpoint):
    lake = gcs_lake(lake_url, endpoint)
    with lake.lock("collect", wait=5):
        with pytest.raises(LakeBusy):
            with gcs_lake(lake_url, endpoint).lock("collect", wait=0.5):
                pass
    with gcs_lake(lake_url, endpoint).lock("collect", wait=5):  # released: free again
        pass


def test_a_lock_on_gcs_outlives_its_ttl_while_held_and_frees_when_its_holder_dies(
    lake_url, endpoint
):
    holder = f"""
import os, sys, time
from flows.lake.lake import Lake
lake = Lake({lake_url!r}, endpoint_url={endpoint!r}, token="anon", project="t")
with lake.lock("analyze", ttl=1):
    print("held", flush=True)
    time.sleep(600)
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, env=env)
    try:
        assert process.stdout.readline() == b"held\n"
        with pytest.raises(LakeBusy):  # twice its ttl, and still held: renewed
            with gcs_lake(lake_url, endpoint).lock("analyze", wait=2):
                pass
        process.kill()  # dies holding it: no release, no more renewals
        process.wait()
        started = time.monotonic()
        with gcs_lake(lake_url, endpoint).lock("analyze", wait=10):
            assert time.monotonic() - started < 3  # within about its ttl, not hours
    finally:
        process.kill()
        process.wait()


def test_the_gcs_bucket_block_works_where_the_lake_is(lake_url, endpoint, posts, monkeypatch):
    import google.auth
    from google.auth.credentials import AnonymousCredentials
    from prefect_gcp import GcpCredentials
    from prefect_gcp.cloud_storage import GcsBucket

    # application-default credentials, as on the VM, but anonymous: the emulator checks none
    monkeypatch.setattr(google.auth, "default", lambda *_, **__: (AnonymousCredentials(), "t"))
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", endpoint)
    bucket, folder = lake_url.removeprefix("gs://").split("/", 1)
    # as blocks/make_gcp_blocks.py makes it: [gcp_config] data_lake_bucket and bucket_filename
    credentials = GcpCredentials(project="t")
    block = GcsBucket(bucket=bucket, bucket_folder=folder, gcp_credentials=credentials)

    lake = gcs_lake(lake_url, endpoint)
    with lake.writer("r1") as writer:
        path = writer.write(posts(range(4))).files[0]
    assert block.read_path(path) == lake.fs.cat_file(lake._path(path))
    block.write_path("notes/readme.txt", b"written by the block")
    assert lake.fs.cat_file(lake._path("notes/readme.txt")) == b"written by the block"
