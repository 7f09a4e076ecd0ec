"""The configured lake and warehouse, opened with the GCP credentials they need.

Local lakes and DuckDB need none. On GCP both take a `GcpAuth`: the credentials of the Prefect
``GcpCredentials`` block named in ``[prefect_config] gcp_credentials``, which
`flows.orchestration.blocks.gcp_auth` loads (Prefect stays in the orchestration layer), or, with
no block named, application-default credentials (on the VM: its service account, no key).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flows.config import Config
from flows.lake.lake import Lake
from flows.settings import ConfigError, parse_warehouse_url
from flows.warehouse.base import Warehouse
from flows.warehouse.open import open_warehouse


@dataclass(frozen=True)
class GcpAuth:
    """Google credentials and their project; both None: application-default credentials."""

    credentials: Any = None
    project: str | None = None


APPLICATION_DEFAULT = GcpAuth()


def _auth(config: Config, auth: GcpAuth | None) -> GcpAuth:
    if auth is not None:
        return auth
    if config.prefect.gcp_credentials:
        raise ConfigError(
            f"[prefect_config] gcp_credentials = {config.prefect.gcp_credentials!r}: the block's "
            "credentials were not loaded. Run through `python -m flows` or the Prefect flows, or "
            "pass auth=flows.orchestration.blocks.gcp_auth(config)."
        )
    return APPLICATION_DEFAULT


def open_lake(config: Config, auth: GcpAuth | None = None) -> Lake:
    """The lake of `config`; on ``gs://`` with `auth` (default: application-default)."""
    if not config.lake.startswith("gs://"):
        return Lake(config.lake)
    auth = _auth(config, auth)
    options: dict[str, Any] = {}
    if auth.project or config.gcp.project_id:
        options["project"] = auth.project or config.gcp.project_id
    if auth.credentials is not None:
        options["token"] = auth.credentials  # gcsfs takes google-auth credentials as its token
    return Lake(config.lake, **options)


def open_config_warehouse(config: Config, auth: GcpAuth | None = None) -> Warehouse:
    """The warehouse of `config`; BigQuery with `auth` and the configured location."""
    if parse_warehouse_url(config.warehouse).scheme != "bigquery":
        return open_warehouse(config.warehouse)
    return open_warehouse(
        config.warehouse,
        credentials=_auth(config, auth).credentials,
        location=config.gcp.bq_location,
    )
