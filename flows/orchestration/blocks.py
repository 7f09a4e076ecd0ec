"""The Prefect blocks that the configuration names, loaded by name; here the GCP credentials
for `flows.stages`. Prefect is imported only when a block is named, so that the CLI stays quick."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, TypeVar

from flows.config import Config
from flows.settings import ConfigError
from flows.stages.stores import APPLICATION_DEFAULT, GcpAuth

if TYPE_CHECKING:
    from prefect.blocks.core import Block

B = TypeVar("B", bound="Block")


def load_block(block_type: type[B], name: str, key: str, fix: str) -> B:
    """The block `name` of the Prefect server, which the configuration key `key` names.

    Args:
        block_type: its class; `Block` itself loads a ``<block type>/<name>`` of any type.
        name: the block's name, as the configuration gives it.
        key: the configuration key, for the error (``[alerts] block``, say).
        fix: the sentences of the error that say what to do.

    Raises:
        ConfigError: the server (PREFECT_API_URL) holds no such block.
    """
    from prefect.blocks.core import Block

    try:
        return block_type.load(name)
    except ValueError as exc:  # Prefect's "Unable to find block document named ..."
        kind = "block" if block_type is Block else f"{block_type.__name__} block"
        raise ConfigError(
            f"{key} = {name!r}: no such {kind} on the Prefect server (PREFECT_API_URL). {fix}"
        ) from exc


@functools.cache
def _block_auth(name: str) -> GcpAuth:
    from prefect_gcp import GcpCredentials

    block = load_block(
        GcpCredentials,
        name,
        "[prefect_config] gcp_credentials",
        "Make it with `python blocks/make_gcp_blocks.py`, or empty the key to use "
        "application-default credentials.",
    )
    return GcpAuth(block.get_credentials_from_service_account(), block.project)


def gcp_auth(config: Config) -> GcpAuth:
    """The credentials of the block in ``[prefect_config] gcp_credentials`` (loaded once per
    process), or application-default credentials when no block is named."""
    name = config.prefect.gcp_credentials
    return _block_auth(name) if name else APPLICATION_DEFAULT
