"""`blocks/make_gcp_blocks.py` against a real Prefect server: idempotent, the key never shown."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from servers import prefect_server

ROOT = Path(__file__).parent.parent
SCRIPT = ROOT / "blocks" / "make_gcp_blocks.py"
# google-auth parses the key when the block is built: a real (throwaway) RSA key
SECRET = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
SECRET_LINE = SECRET.splitlines()[1]  # the first line of the key's body
KEY = {
    "type": "service_account",
    "project_id": "pulse-proj",
    "private_key_id": "k-123",
    "private_key": SECRET,
    "client_email": "pulse@pulse-proj.iam.gserviceaccount.com",
    "token_uri": "https://oauth2.googleapis.com/token",
}

LOAD = """
import json
from prefect_gcp import GcpCredentials
from prefect_gcp.cloud_storage import GcsBucket
bucket = GcsBucket.load("pulse-lake")
info = bucket.gcp_credentials.service_account_info
print(json.dumps({
    "bucket": bucket.bucket,
    "folder": bucket.bucket_folder,
    "project": GcpCredentials.load("pulse-gcp").project,
    "nested_project": bucket.gcp_credentials.project,
    "key": info.get_secret_value() if info else None,
}))
"""


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    with prefect_server(tmp_path_factory.mktemp("prefect-home")) as url:
        yield url


@pytest.fixture
def env(api, tmp_path):
    config = tmp_path / "configuration.conf"
    config.write_text(
        "[gcp_config]\nproject_id = pulse-proj\ndata_lake_bucket = pulse-bucket\n"
        "bucket_filename = /lake/\n"
        "[prefect_config]\ngcp_credentials = pulse-gcp\ngcs_bucket_block_name = pulse-lake\n"
    )
    env = {
        **os.environ,
        "PREFECT_API_URL": api,
        "PREFECT_HOME": str(tmp_path / "client-home"),
        # application-default credentials: none from gcloud or a metadata server on this machine
        "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"),
        "NO_GCE_CHECK": "True",
    }
    env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
    return {k: v for k, v in env.items() if not k.startswith("PULSE_")}


def run(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    # from a folder holding configuration.conf, as terraform/startup.sh calls it (no arguments)
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def load(env: dict[str, str]) -> dict:
    command = [sys.executable, "-c", LOAD]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_blocks_from_a_key_file_then_application_default_credentials(env, tmp_path):
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps(KEY))

    first = run("--key-file", str(key_file), env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "pulse-gcp: created" in first.stdout and "pulse-lake: created" in first.stdout
    again = run("--key-file", str(key_file), env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "pulse-gcp: unchanged" in again.stdout and "pulse-lake: unchanged" in again.stdout
    for done in (first, again):
        assert SECRET_LINE not in done.stdout + done.stderr
        assert "PRIVATE KEY" not in done.stdout + done.stderr

    saved = load(env)
    assert saved == {
        "bucket": "pulse-bucket",
        "folder": "lake/",  # prefect-gcp ends a folder with a slash
        "project": "pulse-proj",
        "nested_project": "pulse-proj",
        "key": KEY,
    }

    # on the VM: no key file, application-default credentials (here from the variable google-auth
    # reads first; on the VM from the metadata server). The block holds no key then.
    adc_env = {**env, "GOOGLE_APPLICATION_CREDENTIALS": str(key_file)}
    adc = run(env=adc_env, cwd=tmp_path)
    assert adc.returncode == 0, adc.stderr
    assert "pulse-gcp: updated" in adc.stdout and "application-default credentials" in adc.stdout
    assert load(adc_env)["key"] is None


def test_missing_settings_and_bad_key_files_fail_clearly(env, tmp_path):
    (tmp_path / "empty.conf").write_text("[gcp_config]\nproject_id = p\n")
    done = run("--config", str(tmp_path / "empty.conf"), env=env, cwd=tmp_path)
    assert done.returncode == 2
    assert "[prefect_config] gcp_credentials" in done.stderr
    assert "[gcp_config] data_lake_bucket" in done.stderr

    not_a_key = tmp_path / "user.json"
    not_a_key.write_text(json.dumps({"type": "authorized_user", "refresh_token": "secret-77"}))
    done = run("--key-file", str(not_a_key), env=env, cwd=tmp_path)
    assert done.returncode == 2
    assert "type is not service_account" in done.stderr and "secret-77" not in done.stderr

    no_adc = run(env=env, cwd=tmp_path)
    assert no_adc.returncode == 2
    assert "no application-default credentials" in no_adc.stderr and "--key-file" in no_adc.stderr


STORES = """
import json, sys
from flows.config import load_config
from flows.settings import ConfigError
from flows.orchestration.blocks import gcp_auth
from flows.stages.stores import open_lake
config = load_config(sys.argv[1])
try:
    auth = gcp_auth(config)
except ConfigError as exc:
    print(json.dumps({"error": str(exc)}))
    raise SystemExit(0)
lake = open_lake(config, auth)
print(json.dumps({
    "email": auth.credentials.service_account_email,
    "project": auth.project,
    "lake": lake.url,
    "lake_email": lake.fs.credentials.credentials.service_account_email,
    "lake_project": lake.fs.project,
}))
"""


def stores(config: Path, env: dict[str, str]) -> dict:
    command = [sys.executable, "-c", STORES, str(config)]
    done = subprocess.run(
        command, env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_gcp_lake_and_warehouse_take_the_credentials_block_named_in_the_config(env, tmp_path):
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps(KEY))
    assert run("--key-file", str(key_file), env=env, cwd=tmp_path).returncode == 0
    # the flows' own path (flows.stages.stores): the block's service account reaches gcsfs
    assert stores(tmp_path / "configuration.conf", env) == {
        "email": KEY["client_email"],
        "project": "pulse-proj",
        "lake": "gs://pulse-bucket/lake",
        "lake_email": KEY["client_email"],
        "lake_project": "pulse-proj",
    }
    # a block name that the server does not hold: a configuration error that says the fix
    wrong = tmp_path / "wrong.conf"
    wrong.write_text(
        (tmp_path / "configuration.conf").read_text().replace("= pulse-gcp", "= pulse-typo")
    )
    error = stores(wrong, env)["error"]
    assert "gcp_credentials = 'pulse-typo'" in error and "make_gcp_blocks.py" in error
