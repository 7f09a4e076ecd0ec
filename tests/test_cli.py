"""`python -m flows` end to end, as a user runs it, in a fresh folder."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from flows.lake.lake import Lake

ROOT = Path(__file__).parent.parent


def cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "flows", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    return done


def warehouse_counts(path: Path) -> tuple[int, int]:
    with duckdb.connect(str(path), read_only=True) as con:
        posts = con.execute("SELECT count(*), count(DISTINCT post_id) FROM posts").fetchone()
        nlp = con.execute("SELECT count(*) FROM post_nlp").fetchone()[0]
    assert posts[0] == posts[1]
    return posts[0], nlp


def test_demo_runs_the_whole_path_and_a_second_run_adds_nothing(tmp_path):
    env = {"PULSE_SAMPLE_POSTS": "600", "PULSE_SAMPLE_BATCH_SIZE": "250"}
    first = cli("demo", cwd=tmp_path, **env)
    assert first.returncode == 0, first.stderr
    assert "| sample | 600 |" in first.stdout
    assert re.search(r"Lake: [\d,]+ posts in " + re.escape(str(tmp_path / "data" / "lake")), first.stdout)
    assert "Open the dashboard: python -m flows dashboard" in first.stdout

    lake = Lake(str(tmp_path / "data" / "lake"))
    listed = [str(tmp_path / "data" / "lake" / path) for path in lake.manifest()]
    lake_ids = pq.read_table(listed, partitioning=None).column("post_id")
    assert len(lake_ids) == len(set(lake_ids.to_pylist())) < 600  # exact duplicates dropped
    posts, results = warehouse_counts(tmp_path / "data" / "warehouse.duckdb")
    assert posts == results == len(lake_ids)
    cursor = lake.read_cursor("sample", "dataengineering")
    assert cursor.next_index == 600

    second = cli("demo", cwd=tmp_path, **env)
    assert second.returncode == 0, second.stderr
    assert "| sample | 0 | 0 |" in second.stdout
    assert "| posts analysed | 0 |" in second.stdout
    assert warehouse_counts(tmp_path / "data" / "warehouse.duckdb") == (posts, results)


def test_collect_then_analyze_with_a_config_file_and_a_limit(tmp_path):
    conf = tmp_path / "my.conf"
    conf.write_text(
        f"[twitter_config]\nlimit = 150\n[pipeline]\nlake = {tmp_path / 'lake'}\n"
        f"warehouse = duckdb:///{tmp_path / 'w.duckdb'}\n[sample]\nposts = 200\n"
    )
    one = cli("collect", "--config", str(conf), cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    assert "| sample | 150 |" in one.stdout and "next post 150" in one.stdout
    two = cli("collect", "--config", str(conf), cwd=tmp_path)
    assert "| sample | 50 |" in two.stdout  # resumed where the limit stopped it
    analysed = cli("analyze", "--config", str(conf), cwd=tmp_path)
    assert analysed.returncode == 0, analysed.stderr
    assert not (tmp_path / "data").exists()  # nothing written outside the configured places


def test_a_configuration_error_stops_before_any_work(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("[pipeline]\nsources = sample, myspace\n")
    done = cli("run", "--config", str(conf), cwd=tmp_path)
    assert done.returncode == 2
    assert "unknown source 'myspace'" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.conf"]


def test_classify_command_needs_no_lake_or_warehouse(tmp_path):
    source = tmp_path / "texts.txt"
    source.write_text("I love this new release, amazing work!\nThe pipeline is down again, awful.\n")
    done = cli("classify", str(source), str(tmp_path / "out.jsonl"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["sentiment"] for r in rows] == ["positive", "negative"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl", "texts.txt"]


def test_bigquery_with_no_google_credentials_says_how_to_get_them(tmp_path, monkeypatch):
    # no gcloud login, no key file, and no metadata server to ask (as on a laptop)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    conf = tmp_path / "c.conf"
    conf.write_text(f"[pipeline]\nlake = {tmp_path / 'lake'}\nwarehouse = bigquery://proj/ds\n")
    done = cli("analyze", "--config", str(conf), cwd=tmp_path)
    assert done.returncode == 2
    assert "no Google credentials for bigquery://proj/ds" in done.stderr, done.stderr
    assert "gcloud auth application-default login" in done.stderr
    assert "Traceback" not in done.stderr


def test_classify_names_a_bad_input_file(tmp_path):
    bad = tmp_path / "texts.docx"
    bad.write_text("x")
    done = cli("classify", str(bad), str(tmp_path / "out.csv"), cwd=tmp_path)
    assert done.returncode == 2
    assert "texts.docx" in done.stderr and "Traceback" not in done.stderr


def test_a_missing_secret_stops_collection_before_any_source_runs(tmp_path):
    conf = tmp_path / "c.conf"
    conf.write_text(f"[pipeline]\nsources = sample, x\nlake = {tmp_path / 'lake'}\n")
    env = {k: v for k, v in os.environ.items() if k != "X_BEARER_TOKEN"}
    done = subprocess.run(
        [sys.executable, "-m", "flows", "collect", "--config", str(conf)],
        cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 2
    assert "X_BEARER_TOKEN" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "lake" / "posts").exists()  # the sample source did not run either


def test_files_and_folders_in_the_way_get_a_line_not_a_traceback(tmp_path):
    (tmp_path / "a-file").write_text("x")
    conf = tmp_path / "c.conf"
    conf.write_text(f"[pipeline]\nlake = {tmp_path / 'a-file' / 'lake'}\n")
    done = cli("collect", "--config", str(conf), cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "a-file" in done.stderr
    done = cli("collect", "--config", str(tmp_path), cwd=tmp_path)  # a folder for a file
    assert done.returncode == 2 and "not a file" in done.stderr and "Traceback" not in done.stderr
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("Caf\xe9 pipelines are great\n".encode("latin-1"))
    done = cli("classify", str(latin), str(tmp_path / "out.csv"), cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "latin1.txt: not UTF-8" in done.stderr and "iconv" in done.stderr


def test_ctrl_c_ends_with_one_line_and_the_next_run_goes_on(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PULSE_SAMPLE_POSTS": "600"}
    process = subprocess.Popen(
        [sys.executable, "-m", "flows", "demo"], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    # interrupted while the NLP model loads or runs, well after collection started
    deadline = time.monotonic() + 120
    while not (tmp_path / "data" / "lake" / "_state").exists():
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "demo: interrupted; run it again to go on" in stderr and "Traceback" not in stderr
    again = cli("demo", cwd=tmp_path, PULSE_SAMPLE_POSTS="600")
    assert again.returncode == 0, again.stderr
    posts, results = warehouse_counts(tmp_path / "data" / "warehouse.duckdb")
    assert posts == results > 0


def test_a_bad_dashboard_warehouse_is_refused_before_a_server_starts(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "flows", "dashboard", "--warehouse", "postgres://x"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2
    assert "--warehouse postgres://x is not supported: use duckdb:///" in done.stderr
    assert "Traceback" not in done.stderr
