"""The Looker Studio Linking API URL over the BigQuery views, and `python -m flows looker-url`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from flows.warehouse.errors import WarehouseError
from flows.warehouse.looker import REPORT_VIEWS, bigquery_location, looker_url
from flows.warehouse.views import VIEW_NAMES

ROOT = Path(__file__).parent.parent


def params(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://lookerstudio.google.com" + (
        "/reporting/create"
    )
    parsed = parse_qs(parts.query, strict_parsing=True)
    assert all(len(values) == 1 for values in parsed.values()), parsed
    return {key: values[0] for key, values in parsed.items()}


def test_every_report_view_is_a_bigquery_table_data_source():
    got = params(looker_url("bigquery://my-proj/pulse_ds", report_name="Pulse #rust"))
    assert got.pop("r.reportName") == "Pulse #rust"
    assert set(REPORT_VIEWS) <= set(VIEW_NAMES)
    for view in REPORT_VIEWS:
        assert got.pop(f"ds.{view}.connector") == "bigQuery"
        assert got.pop(f"ds.{view}.type") == "TABLE"
        assert got.pop(f"ds.{view}.projectId") == "my-proj"
        assert got.pop(f"ds.{view}.datasetId") == "pulse_ds"
        assert got.pop(f"ds.{view}.tableId") == view
        assert got.pop(f"ds.{view}.datasourceName") == f"Pulse #rust: {view}"
    assert got == {}  # nothing else, and no template unless asked for


def test_a_template_report_is_copied_when_given():
    got = params(looker_url("bigquery://p/d", template_report_id="1a2b-3c"))
    assert got["c.reportId"] == "1a2b-3c"


@pytest.mark.parametrize(
    "warehouse",
    ["duckdb:///data/w.duckdb", "bigquery://only-project", "bigquery://p/d/extra", "bigquery:///d"],
)
def test_a_warehouse_not_on_bigquery_is_refused(warehouse):
    with pytest.raises(WarehouseError, match="not on BigQuery"):
        bigquery_location(warehouse)


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flows", "looker-url", *args],
        cwd=ROOT / "tests",  # no ./configuration.conf there: the embedded default plus `env`
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_prints_the_url_of_the_configured_gcp_warehouse():
    done = run_cli(
        "--report-name",
        "Pulse",
        PULSE_GCP_CONFIG_PROJECT_ID="proj-1",
        PULSE_GCP_CONFIG_BQ_DATASET="pulse",
    )
    assert done.returncode == 0, done.stderr
    got = params(done.stdout.strip())
    assert got["r.reportName"] == "Pulse"
    assert got["ds.top_posts.projectId"] == "proj-1"
    assert got["ds.top_posts.datasetId"] == "pulse"


def test_cli_says_clearly_when_the_warehouse_is_duckdb():
    done = run_cli()
    assert done.returncode == 2
    assert done.stdout == ""
    assert "not on BigQuery" in done.stderr and "bigquery://project/dataset" in done.stderr
