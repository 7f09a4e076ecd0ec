"""What the configuration and every layer under it agree on: the error of a wrong setting, and
the choices each setting allows (one list each)."""

from __future__ import annotations

LAKE_SCHEMES = ("file", "gs")
WAREHOUSE_SCHEMES = ("duckdb", "bigquery")
NLP_BACKENDS = ("lite", "tweetnlp")
NLP_DEVICES = ("auto", "cpu", "cuda")
NLP_PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # how flows.nlp.engine may run a model


class ConfigError(ValueError):
    """A configuration key is missing, unknown or has a wrong value."""
