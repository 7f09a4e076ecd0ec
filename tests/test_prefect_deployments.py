"""prefect.yaml on a real `prefect server start` with basic auth: deploy, run through a worker, read
the artifacts and logs back through the API, and check that a client without the password is refused.

One server for the module (it takes 30-70 s to start here); its scheduler is off so that only the
runs the tests ask for exist.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import tenacity
import yaml
from servers import prefect_server, running

from flows.orchestration.serve import job_environment

ROOT = Path(__file__).parent.parent
AUTH = "pulse:not-a-real-password"
BASIC = ("pulse", "not-a-real-password")
DEPLOYMENTS = (
    "web-to-gcs/twitter", "gcs-to-bq/twitter", "refresh/twitter", "stream/twitter",
    "hashtag-pulse/twitter",
)


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory):
    settings = {
        "PREFECT_SERVER_API_AUTH_STRING": AUTH,
        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
    }
    with prefect_server(tmp_path_factory.mktemp("prefect-home"), settings=settings) as url:
        yield url


def client_env(api: str, home: Path, auth: str | None = AUTH) -> dict[str, str]:
    env = {
        **os.environ,
        "PREFECT_API_URL": api,
        "PREFECT_HOME": str(home),
        "PREFECT_API_AUTH_STRING": auth or "",
    }
    if auth is None:
        del env["PREFECT_API_AUTH_STRING"]
    return env


def prefect(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "prefect", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@tenacity.retry(
    # the server answers 503 while its SQLite database is locked by a busy worker or serve
    # process; Prefect's own client retries it too
    retry=tenacity.retry_if_exception(
        lambda e: isinstance(e, httpx.HTTPStatusError) and e.response.status_code == 503
    ),
    wait=tenacity.wait_exponential(multiplier=0.5, max=5),
    stop=tenacity.stop_after_attempt(6),
    reraise=True,
)
def request(api: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    response = httpx.request(method, f"{api}{path}", json=body, auth=BASIC, timeout=30)
    response.raise_for_status()
    return response.json() if response.content else None


def call(api: str, path: str, body: dict[str, Any] | None = None) -> Any:
    return request(api, "POST", path, body or {})


def get(api: str, path: str) -> Any:
    return request(api, "GET", path)


@pytest.fixture(scope="module")
def deployed(prefect_api, tmp_path_factory) -> dict[str, Any]:
    """prefect.yaml as it is, but pointing at a temporary configuration; deployed with `deploy --all`."""
    tmp = tmp_path_factory.mktemp("deploy")
    config = tmp / "configuration.conf"
    config.write_text(
        f"[pipeline]\nlake = {tmp / 'lake'}\nwarehouse = duckdb:///{tmp / 'wh.duckdb'}\n[sample]\nposts = 300\n"
    )
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    spec["definitions"]["parameters"]["config_path"] = str(
        config
    )  # the anchor every deployment uses
    (tmp / "prefect.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))

    env = client_env(prefect_api, tmp / "client-home")
    call(
        prefect_api,
        "/work_pools/",
        {"name": spec["definitions"]["work_pool"]["name"], "type": "process"},
    )
    done = prefect(
        env, "--no-prompt", "deploy", "--all", "--prefect-file", str(tmp / "prefect.yaml")
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    deployments = {}
    for d in call(prefect_api, "/deployments/filter"):
        flow = get(prefect_api, f"/flows/{d['flow_id']}")
        deployments[f"{flow['name']}/{d['name']}"] = d
    return {
        "env": env,
        "config": config,
        "deployments": deployments,
        "pool": spec["definitions"]["work_pool"],
    }


def request_run(api: str, deployed: dict[str, Any], name: str, cli: bool = False) -> str:
    """A new run of deployment `name`, asked for with `prefect deployment run` or through the API."""
    deployment = deployed["deployments"][name]
    if not cli:
        return call(api, f"/deployments/{deployment['id']}/create_flow_run")["id"]
    done = prefect(deployed["env"], "deployment", "run", name)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    query = {
        "flow_runs": {"deployment_id": {"any_": [deployment["id"]]}},
        "sort": "EXPECTED_START_TIME_DESC",
    }
    return call(api, "/flow_runs/filter", query)[0]["id"]


def run_through_worker(api: str, deployed: dict[str, Any], ids: list[str]) -> list[dict[str, Any]]:
    """Let one `prefect worker start --run-once` run the flow runs `ids`, at once."""
    env = deployed["env"]
    worker = prefect(env, "worker", "start", "--pool", deployed["pool"]["name"], "--run-once")
    assert worker.returncode == 0, worker.stdout[-3000:] + worker.stderr[-3000:]
    runs = [get(api, f"/flow_runs/{i}") for i in ids]
    assert [r["state_type"] for r in runs] == ["COMPLETED"] * len(ids), worker.stdout[-3000:]
    return runs


def artifacts(api: str, run: dict[str, Any], **match: str) -> list[dict[str, Any]]:
    """The artifacts of `run` and its subflow and task runs, filtered on key or type."""
    found = call(
        api, "/artifacts/filter", {"artifacts": {k: {"any_": [v]} for k, v in match.items()}}
    )
    children = {"flow_runs": {"parent_flow_run_id": {"any_": [run["id"]]}}}
    runs = {run["id"], *(r["id"] for r in call(api, "/flow_runs/filter", children))}
    return [a for a in found if a["flow_run_id"] in runs]


def test_prefect_deploy_all_registers_the_deployments_with_their_schedules(deployed):
    deployments = deployed["deployments"]
    assert set(deployments) == set(DEPLOYMENTS)
    for d in deployments.values():
        assert d["parameters"] == {"config_path": str(deployed["config"])}
        assert d["work_pool_name"] == deployed["pool"]["name"]
        assert d["job_variables"]["env"] == {"PREFECT_LOGGING_EXTRA_LOGGERS": "flows"}
        assert d["pull_steps"][0]["prefect.deployments.steps.set_working_directory"][
            "directory"
        ] == str(ROOT)
    schedules = {name: [s["schedule"] for s in d["schedules"]] for name, d in deployments.items()}
    assert schedules["web-to-gcs/twitter"][0]["interval"] == 900
    assert schedules["gcs-to-bq/twitter"][0]["cron"] == "5 * * * *"
    assert schedules["refresh/twitter"][0]["cron"] == "55 * * * *"
    assert schedules["stream/twitter"][0]["cron"] == "0 * * * *"
    assert schedules["hashtag-pulse/twitter"] == []
    # a scheduled run is cancelled, not queued, while the one before it still runs
    for name in ("web-to-gcs/twitter", "gcs-to-bq/twitter", "refresh/twitter", "stream/twitter"):
        d = deployments[name]
        assert d["global_concurrency_limit"]["limit"] == 1, d
        assert d["concurrency_options"]["collision_strategy"] == "CANCEL_NEW"
    assert deployments["hashtag-pulse/twitter"]["global_concurrency_limit"] is None


def test_prefect_deployments_run_through_a_worker_and_publish_their_counts(prefect_api, deployed):
    # `prefect deployment run`, as a user types it; then a worker runs it
    (collect,) = run_through_worker(
        prefect_api, deployed, [request_run(prefect_api, deployed, "web-to-gcs/twitter", cli=True)]
    )
    summary = artifacts(prefect_api, collect, key="web-to-gcs-summary")
    assert len(summary) == 1 and "| sample | 300 |" in summary[0]["data"]
    new = int(summary[0]["data"].split("| sample | 300 | ")[1].split(" |")[0].replace(",", ""))
    assert 250 < new <= 300
    # our own `flows.*` INFO lines reach the UI, not only Prefect's
    logs = call(prefect_api, "/logs/filter", {"logs": {"flow_run_id": {"any_": [collect["id"]]}}})
    assert any(
        log["name"] == "flows.stages.collect" and "sample: 300 fetched" in log["message"] for log in logs
    )

    # analyze and the parent flow at once: the lake's analyze lock lets one load the posts, once
    ids = [
        request_run(prefect_api, deployed, name)
        for name in ("gcs-to-bq/twitter", "hashtag-pulse/twitter")
    ]
    analyze, parent = run_through_worker(prefect_api, deployed, ids)
    analysed = [
        artifacts(prefect_api, run, key="gcs-to-bq-summary")[0]["data"] for run in (analyze, parent)
    ]
    assert sorted(f"| posts analysed | {new:,} |" in a for a in analysed) == [False, True]
    assert sorted("| posts analysed | 0 |" in a for a in analysed) == [False, True]
    assert all(f"{new:,} posts, {new:,} NLP results" in a for a in analysed)  # warehouse totals
    progress = artifacts(prefect_api, analyze, type="progress") + artifacts(
        prefect_api, parent, type="progress"
    )
    assert len(progress) == 2 and all(p["data"] == 100 for p in progress)
    assert {p["key"] for p in progress} == {"gcs-to-bq-progress"}

    whole = artifacts(prefect_api, parent, key="hashtag-pulse-summary")
    assert (
        len(whole) == 1
        and "| sample | 0 | 0 |" in whole[0]["data"]
        and "| model |" in whole[0]["data"]
    )


def test_prefect_server_with_basic_auth_refuses_a_client_without_it(
    prefect_api, deployed, tmp_path
):
    assert httpx.post(f"{prefect_api}/flows/filter", json={}, timeout=30).status_code == 401
    refused = prefect(client_env(prefect_api, tmp_path / "home", auth=None), "deployment", "ls")
    assert refused.returncode != 0 and "401" in refused.stdout + refused.stderr
    allowed = prefect(deployed["env"], "deployment", "ls")
    assert allowed.returncode == 0 and "web-to-gcs/twitter" in allowed.stdout.replace("\n", "")


def test_prefect_serve_runs_the_same_deployments_without_a_work_pool(
    prefect_api, deployed, tmp_path
):
    # a deployment made by `prefect deploy` keeps its storage fields when serve takes it over, and
    # its runs then crash: one or the other per deployment name (docs/prefect.md)
    for deployment in deployed["deployments"].values():
        request(prefect_api, "DELETE", f"/deployments/{deployment['id']}")
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "flows", "serve", "--config", str(deployed["config"])]
    with running(
        command, deployed["env"], log, lambda: "being served" in log.read_text(), 120, cwd=ROOT
    ):
        deployments = call(prefect_api, "/deployments/filter")
        schedules = sorted(
            str(s["schedule"].get("interval") or s["schedule"]["cron"])
            for d in deployments
            for s in d["schedules"]
        )
        assert schedules == ["0 * * * *", "5 * * * *", "55 * * * *", "900.0"]
        limits = [(d["global_concurrency_limit"] or {}).get("limit") for d in deployments]
        assert sorted(limits, key=str) == [1, 1, 1, 1, None]
        assert all(d["parameters"] == {"config_path": str(deployed["config"])} for d in deployments)

        analyze = next(d for d in deployments if d["entrypoint"].endswith(":gcs_to_bq"))
        run_id = call(prefect_api, f"/deployments/{analyze['id']}/create_flow_run")["id"]
        deadline = time.monotonic() + 120
        while (run := get(prefect_api, f"/flow_runs/{run_id}"))["state_type"] != "COMPLETED":
            assert (
                run["state_type"] not in ("FAILED", "CRASHED", "CANCELLED")
                and time.monotonic() < deadline
            ), run
            time.sleep(1)
        time.sleep(3)  # serve rewrites a run it is still finishing to CANCELLED when stopped
    assert (
        "| posts analysed | 0 |" in artifacts(prefect_api, run, key="gcs-to-bq-summary")[0]["data"]
    )


def test_serve_refuses_an_env_placeholder_it_cannot_fill(tmp_path, monkeypatch):
    monkeypatch.delenv("PULSE_TOKEN", raising=False)
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    env = spec["definitions"]["work_pool"]["job_variables"]["env"]
    for placeholder in ("{{ prefect.blocks.secret.x-bearer-token }}", "{{ $PULSE_TOKEN }}"):
        env["X_BEARER_TOKEN"] = placeholder
        for deployment in spec["deployments"]:
            deployment["work_pool"] = spec["definitions"]["work_pool"]
        changed = tmp_path / "prefect.yaml"
        changed.write_text(yaml.safe_dump(spec))
        with pytest.raises(ValueError, match="X_BEARER_TOKEN = .* export X_BEARER_TOKEN"):
            job_environment(changed)
    monkeypatch.setenv("PULSE_TOKEN", "filled")  # a $VAR that is set is filled, as deploy does
    assert job_environment(changed)["X_BEARER_TOKEN"] == "filled"
