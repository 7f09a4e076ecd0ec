"""Every source that takes a secret, run with known secret values through success and every way a
request can fail: none of the values turns up in anything the run wrote or said (log records of
every logger, the printed output, the Markdown reports, exception texts with their causes, every
lake file and state file, every warehouse table)."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from fake_apis import Reply, not_json
from fake_networks import FakeBluesky, FakeReddit, FakeX, bluesky_post, reddit_link, x_tweet
from faultkit import quick_http, write_config

from conftest import EchoBackend
from flows.config import load_config
from flows.stages.analyze import analyze
from flows.stages.collect import collect
from flows.stages.reports import analyze_markdown, collect_markdown

X_TOKEN = "sekret-x-bearer-AAAA1111"
BLUESKY_PASSWORD = "sekret-bsky-pass-BBBB2222"
REDDIT_ID, REDDIT_SECRET = "sekret-reddit-id-CCCC3333", "sekret-reddit-secret-DDDD4444"
SECRETS = [
    X_TOKEN,
    BLUESKY_PASSWORD,
    REDDIT_ID,
    REDDIT_SECRET,
    base64.b64encode(f"{REDDIT_ID}:{REDDIT_SECRET}".encode()).decode(),  # the Basic header
]
ENV = {
    "PULSE_TEST_X_TOKEN": X_TOKEN,
    "PULSE_TEST_BSKY_HANDLE": "me.bsky.social",
    "PULSE_TEST_BSKY_PASSWORD": BLUESKY_PASSWORD,
    "PULSE_TEST_REDDIT_ID": REDDIT_ID,
    "PULSE_TEST_REDDIT_SECRET": REDDIT_SECRET,
}


def fake_x(right: bool):
    api = FakeX([x_tweet(n) for n in range(25)], token=X_TOKEN if right else "another-token")
    settings = {
        "base_url": "{url}/2", "bearer_token_env": "PULSE_TEST_X_TOKEN", "max_results": "10"
    }
    return api, settings, lambda request: True


def fake_bluesky(right: bool):
    password = BLUESKY_PASSWORD if right else "another-password"
    api = FakeBluesky([bluesky_post(n) for n in range(25)], password=password)
    settings = {
        "base_url": "{url}/xrpc",
        "handle_env": "PULSE_TEST_BSKY_HANDLE",
        "app_password_env": "PULSE_TEST_BSKY_PASSWORD",
        "page_size": "10",
    }
    return api, settings, lambda request: request.path.endswith("searchPosts")


def fake_reddit(right: bool):
    secret = REDDIT_SECRET if right else "another-secret"
    api = FakeReddit([reddit_link(n) for n in range(25)], client_id=REDDIT_ID, secret=secret)
    settings = {
        "base_url": "{url}",
        "token_url": "{url}/api/v1/access_token",
        "subreddits": "dataengineering",
        "search": "false",
        "client_id_env": "PULSE_TEST_REDDIT_ID",
        "client_secret_env": "PULSE_TEST_REDDIT_SECRET",
        "user_agent": "python:pulse-tests:1.0 (by /u/pulse_tester)",
        "page_size": "10",
    }
    return api, settings, lambda request: request.path != "/api/v1/access_token"


FAKES = {"x": fake_x, "bluesky": fake_bluesky, "reddit": fake_reddit}
LOGINS = {"bluesky": "/xrpc/com.atproto.server.createSession", "reddit": "/api/v1/access_token"}


def fault(api, name: str, data, scenario: str) -> None:
    """Make `api` fail the requests `data` accepts (the data, not the login) as `scenario` says."""
    replies = {
        "403": Reply(403, {"title": "Forbidden", "error": "Forbidden", "message": "no access"}),
        "429": Reply(429, {"title": "Too Many Requests"}, {"retry-after": "100000"}),
        "503": Reply(503, {"error": "Service Unavailable"}),
        "malformed": not_json(),
        "half a body": Reply(200, {"data": [1, 2, 3, 4, 5, 6]}, cut=True),
    }
    if scenario == "timeout":
        api.hold(data)
    elif scenario == "malformed login":
        api.fail(not_json(), lambda request: request.path == LOGINS[name], times=100)
    elif scenario in replies:
        api.fail(replies[scenario], data, times=100)


SCENARIOS = ["ok", "401", "403", "429", "503", "malformed", "half a body", "timeout"]
CASES = [(name, scenario) for name in FAKES for scenario in SCENARIOS] + [
    (name, "malformed login") for name in LOGINS
]


def lake_texts(lake: Path) -> list[str]:
    """Every file of the lake as text: Parquet read back (its bytes are compressed), others raw."""
    texts = []
    for path in lake.rglob("*"):
        if path.suffix == ".parquet":
            texts.append(str(pq.read_table(path, partitioning=None).to_pylist()))
        elif path.is_file():
            texts.append(path.read_bytes().decode("utf-8", "replace"))
    return texts


def warehouse_texts(path: Path) -> list[str]:
    with duckdb.connect(str(path), read_only=True) as con:
        tables = [row[0] for row in con.execute("SHOW TABLES").fetchall()]
        return [str(con.execute(f"SELECT * FROM {table}").fetchall()) for table in tables]


@pytest.mark.parametrize("name, scenario", CASES, ids=[f"{n}-{s}" for n, s in CASES])
def test_no_secret_in_anything_a_run_writes_or_says(
    tmp_path, monkeypatch, caplog, capsys, name, scenario
):
    for variable, value in ENV.items():
        monkeypatch.setenv(variable, value)
    quick_http(monkeypatch)
    api, settings, data = FAKES[name](right=scenario != "401")
    texts: list[str] = []
    with api, caplog.at_level(logging.DEBUG):
        fault(api, name, data, scenario)
        config = write_config(
            tmp_path,
            pipeline={"sources": name},
            **{name: {key: value.format(url=api.url) for key, value in settings.items()}},
        )
        config = load_config(config)
        [run] = collect(config)  # every failure ends as the source's error or warnings
        texts.append(collect_markdown(config.hashtag, config.lake, [run]))
        texts.append(analyze_markdown(analyze(config, backend=EchoBackend())))
        api.release()
    if scenario == "ok":
        assert run.error is None and run.new == 25
    else:
        assert run.new < 25 and (run.error or run.warnings)
        texts += [run.error or "", *run.warnings]
    output = capsys.readouterr()
    texts += [caplog.text, *(str(record.args) for record in caplog.records), output.out, output.err]
    texts += lake_texts(tmp_path / "lake")
    if (tmp_path / "warehouse.duckdb").exists():
        texts += warehouse_texts(tmp_path / "warehouse.duckdb")
    leaks = [(secret, text[:200]) for secret in SECRETS for text in texts if secret in text]
    assert not leaks
    assert any(name in text for text in texts)  # the scan saw the run's output
