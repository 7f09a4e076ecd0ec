"""The configured lake and warehouse, opened with the configured GCP credentials.

Where they live on GCP, both take the credentials of the Prefect ``GcpCredentials`` block named in
``[prefect_config] gcp_credentials`` (`blocks/make_gcp_blocks.py` makes it from a key file, or
with none); with no block named, application-default credentials (on the VM: its service
account, no key). Local lakes and DuckDB need neither.
"""

from __future__ import annotations

import functools
from typing import Any

from flows.config import Config
from flows.settings import ConfigError
from flows.lake.lake import Lake
from flows.warehouse.base import Warehouse, open_warehouse


@functools.cache
def _block_credentials(name: str) -> tuple[Any, str | None]:
    from prefect_gcp import GcpCredentials

    try:
        block = GcpCredentials.load(name)
    except ValueError as exc:  # Prefect's "Unable to find block document named ..."
        raise ConfigError(
            f"[prefect_config] gcp_credentials = {name!r}: no such GcpCredentials block on the "
            "Prefect server (PREFECT_API_URL). Make it with `python blocks/make_gcp_blocks.py`, "
            "or empty the key to use application-default credentials."
        ) from exc
    return block.get_credentials_from_service_account(), block.project


def gcp_credentials(config: Config) -> tuple[Any, str | None]:
    """``(credentials, project)`` of the configured block, or ``(None, None)`` for
    application-default credentials. A block is loaded once per process."""
    name = config.prefect.gcp_credentials
    return _block_credentials(name) if name else (None, None)


def open_lake(config: Config) -> Lake:
    """The lake of `config`; on ``gs://`` with the configured credentials."""
    if not config.lake.startswith("gs://"):
        return Lake(config.lake)
    credentials, project = gcp_credentials(config)
    options: dict[str, Any] = {}
    if project or config.gcp.project_id:
        options["project"] = project or config.gcp.project_id
    if credentials is not None:
        options["token"] = credentials  # gcsfs takes google-auth credentials as its token
    return Lake(config.lake, **options)


def open_config_warehouse(config: Config) -> Warehouse:
    """The warehouse of `config`; BigQuery with the configured credentials and location."""
    if not config.warehouse.startswith("bigquery://"):
        return open_warehouse(config.warehouse)
    credentials, _ = gcp_credentials(config)
    return open_warehouse(
        config.warehouse, credentials=credentials, location=config.gcp.bq_location
    )
