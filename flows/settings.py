"""What the configuration and every layer under it agree on: the error of a wrong setting, the
choices each setting allows (one list each), and the one parse of a warehouse URL."""

from __future__ import annotations

import re
from dataclasses import dataclass

LAKE_SCHEMES = ("file", "gs")
NLP_BACKENDS = ("lite", "tweetnlp")
NLP_DEVICES = ("auto", "cpu", "cuda")
NLP_PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # how flows.nlp.engine may run a model


class ConfigError(ValueError):
    """A configuration key is missing, unknown or has a wrong value."""


WAREHOUSE_URL_HELP = (
    "use duckdb:///relative/path.duckdb or duckdb:////absolute/path.duckdb (three slashes, then "
    "the path), or bigquery://project/dataset"
)


@dataclass(frozen=True)
class WarehouseUrl:
    """A warehouse URL, parsed: a DuckDB file or a BigQuery dataset.

    Attributes:
        scheme: ``duckdb`` or ``bigquery``.
        path: duckdb: the file, relative to the working directory unless it starts with ``/``.
        project: bigquery: the GCP project of the dataset.
        dataset: bigquery: the dataset id.
    """

    scheme: str
    path: str = ""
    project: str = ""
    dataset: str = ""


def parse_warehouse_url(url: str, what: str = "") -> WarehouseUrl:
    """``duckdb:///path`` (SQLAlchemy's convention: ``duckdb:////srv/w.duckdb`` is absolute) or
    ``bigquery://project/dataset``, parsed.

    Raises:
        ConfigError: `url` is neither; the message starts with `what` (by default
            ``warehouse URL '<url>'``) and says what to write.
    """
    what = what or f"warehouse URL {url!r}"
    scheme, _, rest = url.partition("://")
    if scheme == "duckdb":
        path = rest.removeprefix("/")
        if not rest.startswith("/") or not path:
            raise ConfigError(f"{what} has no file path: {WAREHOUSE_URL_HELP}.")
        if path == ":memory:":
            raise ConfigError(
                f"{what}: an in-memory DuckDB does not outlive a load, and the warehouse opens a "
                "connection per operation; name a file instead."
            )
        return WarehouseUrl(scheme, path=path)
    if scheme == "bigquery":
        project, _, dataset = rest.partition("/")
        if not project or not re.fullmatch(r"\w+", dataset):
            raise ConfigError(
                f"{what} needs a project and a dataset (letters, digits and underscores): "
                f"{WAREHOUSE_URL_HELP}."
            )
        return WarehouseUrl(scheme, project=project, dataset=dataset)
    raise ConfigError(f"{what} is not supported: {WAREHOUSE_URL_HELP}.")
