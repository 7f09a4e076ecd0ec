"""Create the Prefect blocks that the flows use on GCP, idempotently.

- ``GcpCredentials`` named by ``[prefect_config] gcp_credentials``: from a service-account key
  file (``--key-file``), or with none: application-default credentials (on the VM, its service
  account; on a laptop, ``gcloud auth application-default login``).
- ``GcsBucket`` named by ``[prefect_config] gcs_bucket_block_name``: bucket
  ``[gcp_config] data_lake_bucket``, folder ``bucket_filename``, with those credentials.

A block that already holds the same values is left alone; one that differs is overwritten. The
key's content goes to the Prefect API only, never to the output.

Usage (from the repository root, against the Prefect API that PREFECT_API_URL names)::

    python blocks/make_gcp_blocks.py [--config configuration.conf] [--key-file key.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from google.auth.exceptions import DefaultCredentialsError
from prefect.blocks.core import Block
from prefect.exceptions import ObjectNotFound
from prefect_gcp import GcpCredentials
from prefect_gcp.cloud_storage import GcsBucket

from flows.config import Config, load_config
from flows.settings import ConfigError


def _required(config: Config) -> dict[str, str]:
    keys = {
        ("prefect_config", "gcp_credentials"): config.prefect.gcp_credentials,
        ("prefect_config", "gcs_bucket_block_name"): config.prefect.gcs_bucket_block_name,
        ("gcp_config", "data_lake_bucket"): config.gcp.data_lake_bucket,
    }
    missing = [f"[{section}] {key}" for (section, key), value in keys.items() if not value]
    if missing:
        raise ConfigError(
            f"{', '.join(missing)}: empty in {config.origin}. Set them (terraform/write_config.py "
            "writes them from the Terraform outputs) or the PULSE_<SECTION>_<KEY> variables."
        )
    return {key: value for (_, key), value in keys.items()}


def read_key_file(path: Path) -> dict[str, Any]:
    """A service-account key file's JSON; errors say what is wrong without showing the content."""
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"--key-file {path}: no such file.") from None
    except json.JSONDecodeError:
        raise ConfigError(f"--key-file {path}: not JSON; expected a service-account key.") from None
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise ConfigError(f"--key-file {path}: its type is not service_account.")
    return info


def _state(block: Block) -> dict[str, Any]:
    """What decides whether a saved block is up to date: its fields with secrets revealed, a
    nested block by name (its own values are compared when it is saved)."""
    state = block.model_dump(
        mode="json", context={"include_secrets": True}, exclude={"gcp_credentials"}
    )
    if isinstance(block, GcsBucket):
        state["gcp_credentials"] = block.gcp_credentials._block_document_name
    # a loaded block's dump also carries its document id and name: not values
    return {key: value for key, value in state.items() if not key.startswith("_")}


def save(block: Block, name: str) -> str:
    """Save `block` as `name` unless an equal one is there. Returns what happened."""
    try:
        existing = type(block).load(name)
    except ValueError as exc:
        if not isinstance(exc.__cause__, ObjectNotFound):
            raise
        block.save(name)
        return "created"
    except DefaultCredentialsError:  # saved for credentials this machine lacks: replace it
        existing = None
    if existing is not None and _state(existing) == _state(block):
        return "unchanged"
    block.save(name, overwrite=True)
    return "updated"


def make_blocks(config: Config, key_file: Path | None = None) -> dict[str, str]:
    """Create or update both blocks. Returns ``{block name: created|updated|unchanged}``."""
    names = _required(config)
    info = read_key_file(key_file) if key_file else None
    try:
        credentials = GcpCredentials(
            service_account_info=info, project=config.gcp.project_id or None
        )
    except DefaultCredentialsError as exc:
        raise ConfigError(
            f"no application-default credentials ({exc}). On a laptop run `gcloud auth "
            "application-default login`, or pass --key-file; on the VM check its service account."
        ) from None
    except ValueError as exc:
        # a pydantic error quotes its input, here the key: name the problem, not the content
        raise ConfigError(
            f"--key-file {key_file}: google-auth cannot use this key ({type(exc).__name__})."
        ) from None
    done = {names["gcp_credentials"]: save(credentials, names["gcp_credentials"])}
    bucket = GcsBucket(
        bucket=names["data_lake_bucket"],
        bucket_folder=config.gcp.bucket_filename.strip("/"),
        gcp_credentials=GcpCredentials.load(names["gcp_credentials"]),
    )
    done[names["gcs_bucket_block_name"]] = save(bucket, names["gcs_bucket_block_name"])
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--config", type=Path, default=None, help="INI file (default: ./configuration.conf)"
    )
    parser.add_argument(
        "--key-file",
        type=Path,
        default=None,
        help="a service-account key (JSON); without one: application-default credentials",
    )
    args = parser.parse_args(argv)
    try:
        done = make_blocks(load_config(args.config), args.key_file)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    how = f"key file {args.key_file}" if args.key_file else "application-default credentials"
    for name, what in done.items():
        print(f"{name}: {what}")
    print(f"credentials: {how}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
