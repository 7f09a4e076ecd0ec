"""The three flows on a real `prefect server start`: states, artifacts, and idempotent re-runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from servers import prefect_server

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory):
    with prefect_server(tmp_path_factory.mktemp("prefect-home")) as url:
        yield url


def run_flow(api: str, entry: str, config: Path, **parameters: object) -> None:
    module, name = entry.split(":")
    code = f"from {module} import {name}; {name}({str(config)!r}, **{parameters!r})"
    env = {**os.environ, "PREFECT_API_URL": api, "PREFECT_HOME": str(config.parent / "client-home")}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def artifacts(api: str, key: str) -> list[str]:
    body = {"artifacts": {"key": {"any_": [key]}}, "sort": "CREATED_DESC"}
    response = httpx.post(f"{api}/artifacts/filter", json=body, timeout=30)
    response.raise_for_status()
    return [a["data"] for a in response.json()]


def test_prefect_flows_run_and_publish_counts(prefect_api, tmp_path):
    config = tmp_path / "configuration.conf"
    config.write_text(
        f"[pipeline]\nlake = {tmp_path / 'lake'}\nwarehouse = duckdb:///{tmp_path / 'wh.duckdb'}\n"
        "[sample]\nposts = 300\nbatch_size = 100\n"
    )
    run_flow(prefect_api, "flows.orchestration.pipeline:hashtag_pulse", config)

    runs = httpx.post(f"{prefect_api}/flow_runs/filter", json={}, timeout=30).json()
    flows = {f["id"]: f["name"] for f in httpx.post(f"{prefect_api}/flows/filter", json={}, timeout=30).json()}
    states = {(flows[r["flow_id"]], r["state_type"]) for r in runs}
    assert states == {("hashtag-pulse", "COMPLETED"), ("web-to-gcs", "COMPLETED"), ("gcs-to-bq", "COMPLETED")}

    collected = artifacts(prefect_api, "web-to-gcs-summary")[0]
    assert "| sample | 300 |" in collected  # 300 fetched rows, some of them duplicates
    analysed = artifacts(prefect_api, "gcs-to-bq-summary")[0]
    assert "| posts analysed |" in analysed and "lite" in analysed

    # a second run finds nothing new, and the warehouse keeps its counts
    run_flow(prefect_api, "flows.orchestration.web_to_gcs:web_to_gcs", config)
    run_flow(prefect_api, "flows.orchestration.gcs_to_bq:gcs_to_bq", config)
    assert "| sample | 0 | 0 |" in artifacts(prefect_api, "web-to-gcs-summary")[0]
    latest, first = artifacts(prefect_api, "gcs-to-bq-summary")[:2]
    assert "| posts analysed | 0 |" in latest
    assert "| collection runs loaded | 1 |" in latest  # the second collection's record
    totals = [line for line in first.splitlines() if "warehouse totals" in line]
    assert totals and totals[0].replace("1 collection runs", "2 collection runs") in latest
    # the digest is published once a week: the second analysis of the week adds none
    (digest,) = artifacts(prefect_api, "weekly-digest")
    assert digest.startswith("# #dataengineering: ")
