"""The GCP credentials of the Prefect block that the configuration names, for `flows.stages`."""

from __future__ import annotations

import functools

from flows.config import Config
from flows.settings import ConfigError
from flows.stages.stores import APPLICATION_DEFAULT, GcpAuth


@functools.cache
def _block_auth(name: str) -> GcpAuth:
    from prefect_gcp import GcpCredentials  # imported only when a block is named

    try:
        block = GcpCredentials.load(name)
    except ValueError as exc:  # Prefect's "Unable to find block document named ..."
        raise ConfigError(
            f"[prefect_config] gcp_credentials = {name!r}: no such GcpCredentials block on the "
            "Prefect server (PREFECT_API_URL). Make it with `python blocks/make_gcp_blocks.py`, "
            "or empty the key to use application-default credentials."
        ) from exc
    return GcpAuth(block.get_credentials_from_service_account(), block.project)


def gcp_auth(config: Config) -> GcpAuth:
    """The credentials of the block in ``[prefect_config] gcp_credentials`` (loaded once per
    process), or application-default credentials when no block is named."""
    name = config.prefect.gcp_credentials
    return _block_auth(name) if name else APPLICATION_DEFAULT
