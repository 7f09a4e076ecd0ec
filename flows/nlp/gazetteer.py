"""Named data and tech organisations and tools, and the matcher that finds them in a post.

Types follow tweetner7 (``corporation``, ``product``). Each entry is a canonical name and the
aliases that refer to it; the canonical name itself always matches. Matching is case-insensitive
on whole words, and a space inside an alias also matches a hyphen, an underscore or nothing, so
``Delta Lake``, ``delta-lake`` and ``#DeltaLake`` all count. Aliases that are also everyday words
("spark joy", "a snowflake", "the school prefect") are listed in ``CAPITALISED_ONLY`` and count
only when not written all in lower case. @mentions and links are never entities: a handle like
``@dbt_labs`` names an account, not the thing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TypedDict

CORPORATION = "corporation"
PRODUCT = "product"

# (canonical name, type, other aliases)
GAZETTEER: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    # Cloud, platform and AI companies.
    ("Amazon", CORPORATION, ()),
    ("Anthropic", CORPORATION, ()),
    ("Apple", CORPORATION, ()),
    ("Astronomer", CORPORATION, ()),
    ("Cloudera", CORPORATION, ()),
    ("Confluent", CORPORATION, ()),
    ("Databricks", CORPORATION, ()),
    ("dbt Labs", CORPORATION, ("dbtlabs", "fishtown analytics")),
    ("Fivetran", CORPORATION, ()),
    ("GitHub", CORPORATION, ()),
    ("GitLab", CORPORATION, ()),
    ("Google", CORPORATION, ("alphabet inc",)),
    ("Hugging Face", CORPORATION, ("huggingface",)),
    ("IBM", CORPORATION, ()),
    ("Meta", CORPORATION, ("meta platforms",)),
    ("Microsoft", CORPORATION, ("msft",)),
    ("MotherDuck", CORPORATION, ()),
    ("NVIDIA", CORPORATION, ()),
    ("OpenAI", CORPORATION, ("open ai",)),
    ("Oracle", CORPORATION, ()),
    ("Salesforce", CORPORATION, ()),
    ("Snowflake", CORPORATION, ("snowflake inc", "snowflakedb")),
    ("Starburst", CORPORATION, ()),
    ("Teradata", CORPORATION, ()),
    # Clouds and their services.
    ("AWS", PRODUCT, ("amazon web services",)),
    ("Amazon S3", PRODUCT, ("aws s3", "s3 bucket", "s3 buckets")),
    ("Amazon Redshift", PRODUCT, ("redshift", "aws redshift")),
    ("Amazon Kinesis", PRODUCT, ("kinesis", "aws kinesis")),
    ("AWS Glue", PRODUCT, ("amazon glue",)),
    ("AWS Lambda", PRODUCT, ("amazon lambda",)),
    ("Amazon EMR", PRODUCT, ("aws emr",)),
    ("Google Cloud", PRODUCT, ("gcp", "google cloud platform")),
    ("Google Cloud Storage", PRODUCT, ("gcs",)),
    ("BigQuery", PRODUCT, ("google bigquery", "big query")),
    ("Looker", PRODUCT, ()),
    ("Looker Studio", PRODUCT, ("google data studio", "data studio")),
    ("Dataflow", PRODUCT, ("google dataflow", "gcp dataflow")),
    ("Dataproc", PRODUCT, ("google dataproc",)),
    ("Pub/Sub", PRODUCT, ("pubsub", "google pub/sub")),
    ("Vertex AI", PRODUCT, ("vertexai",)),
    ("Azure", PRODUCT, ("microsoft azure",)),
    ("Azure Synapse", PRODUCT, ("synapse analytics",)),
    ("Microsoft Fabric", PRODUCT, ()),
    ("Power BI", PRODUCT, ("powerbi",)),
    ("Excel", PRODUCT, ("microsoft excel",)),
    # Orchestration, ingestion and transformation.
    ("Apache Airflow", PRODUCT, ("airflow",)),
    ("Prefect", PRODUCT, ()),
    ("Dagster", PRODUCT, ()),
    ("Mage", PRODUCT, ("mage ai", "mage.ai")),
    ("dbt", PRODUCT, ("dbt core", "dbt cloud", "data build tool")),
    ("SQLMesh", PRODUCT, ()),
    ("Airbyte", PRODUCT, ()),
    ("Meltano", PRODUCT, ()),
    ("dlt", PRODUCT, ("dlthub", "dlt hub")),
    ("Debezium", PRODUCT, ()),
    ("Great Expectations", PRODUCT, ()),
    ("Apache NiFi", PRODUCT, ("nifi",)),
    # Processing and streaming engines.
    ("Apache Spark", PRODUCT, ("spark", "pyspark", "spark sql", "sparksql")),
    ("Apache Kafka", PRODUCT, ("kafka", "kafka connect", "kafka streams")),
    ("Apache Flink", PRODUCT, ("flink", "pyflink")),
    ("Apache Beam", PRODUCT, ("beam",)),
    ("Apache Hadoop", PRODUCT, ("hadoop", "hdfs")),
    ("Apache Hive", PRODUCT, ("hive",)),
    ("Trino", PRODUCT, ()),
    ("Presto", PRODUCT, ("prestodb",)),
    ("Ray", PRODUCT, ()),
    ("pandas", PRODUCT, ()),
    ("Polars", PRODUCT, ()),
    ("Apache Arrow", PRODUCT, ("pyarrow", "arrow")),
    # Storage formats, table formats and databases.
    ("Apache Iceberg", PRODUCT, ("iceberg",)),
    ("Delta Lake", PRODUCT, ("delta table", "delta tables")),
    ("Apache Hudi", PRODUCT, ("hudi",)),
    ("Apache Parquet", PRODUCT, ("parquet",)),
    ("Apache Avro", PRODUCT, ("avro",)),
    ("DuckDB", PRODUCT, ("duck db",)),
    ("PostgreSQL", PRODUCT, ("postgres", "postgre", "postgresql")),
    ("MySQL", PRODUCT, ()),
    ("SQLite", PRODUCT, ()),
    ("ClickHouse", PRODUCT, ()),
    ("MongoDB", PRODUCT, ("mongo",)),
    ("Redis", PRODUCT, ()),
    ("Elasticsearch", PRODUCT, ("elastic search",)),
    ("Apache Druid", PRODUCT, ("druid",)),
    ("Apache Pinot", PRODUCT, ()),
    ("Apache Cassandra", PRODUCT, ()),
    ("Neo4j", PRODUCT, ()),
    ("Unity Catalog", PRODUCT, ()),
    # BI, notebooks and developer tools.
    ("Tableau", PRODUCT, ()),
    ("Metabase", PRODUCT, ()),
    ("Apache Superset", PRODUCT, ("superset",)),
    ("Streamlit", PRODUCT, ()),
    ("Jupyter", PRODUCT, ("jupyter notebook", "jupyterlab")),
    ("Docker", PRODUCT, ()),
    ("Kubernetes", PRODUCT, ("k8s",)),
    ("Terraform", PRODUCT, ()),
    ("GitHub Actions", PRODUCT, ()),
    ("GitHub Copilot", PRODUCT, ("copilot",)),
    ("ChatGPT", PRODUCT, ("chat gpt",)),
    ("Slack", PRODUCT, ()),
    ("Jira", PRODUCT, ()),
)

# Aliases that are everyday words too: they count only when not written all in lower case.
CAPITALISED_ONLY = frozenset(
    {
        "apple",
        "arrow",
        "astronomer",
        "azure",
        "beam",
        "copilot",
        "druid",
        "excel",
        "hive",
        "iceberg",
        "looker",
        "mage",
        "meta",
        "oracle",
        "prefect",
        "presto",
        "ray",
        "redshift",
        "slack",
        "snowflake",
        "spark",
        "starburst",
    }
)


class Entity(TypedDict):
    text: str
    type: str


_SEPARATOR = re.compile(r"[\s_-]+")


def _key(alias: str) -> str:
    """Lower case, separators dropped: "Delta Lake", "delta-lake" and "DeltaLake" share a key."""
    return _SEPARATOR.sub("", alias.lower())


_ENTRIES: dict[str, Entity] = {
    _key(alias): Entity(text=name, type=kind)
    for name, kind, aliases in GAZETTEER
    for alias in (name, *aliases)
}
_LOWER_CASE_WORDS = frozenset(_key(alias) for alias in CAPITALISED_ONLY)


_SEPARATOR_PATTERN = r"[\s_-]?"


def _alias_tokens(alias: str) -> tuple[str, ...]:
    """An alias as regex pieces: each character escaped, an optional separator between words."""
    words = [[re.escape(char) for char in word] for word in alias.split()]
    return tuple(token for i, word in enumerate(words) for token in [_SEPARATOR_PATTERN][:i] + word)


def _alternation(alternatives: list[tuple[str, ...]]) -> str:
    """``"|".join`` of the alternatives (token tuples, in priority order), matching the same, with
    those that start with the same letter or digit grouped behind it: ``dbt|dagster|delta`` is
    ``d(?:bt|agster|elta)``. Grouped only where every alternative starts with a letter or digit:
    no character matches two different ones, even ignoring case, so at any position one group at
    most can match, and within it the order is kept. Python's ``re`` tries every alternative of a
    flat alternation at every word start; grouped, a few dozen first characters and one group."""
    firsts = {tokens[0].lower() if tokens else "" for tokens in alternatives}
    exclusive = all(len(first) == 1 and first.isascii() and first.isalnum() for first in firsts)
    if len(alternatives) == 1 or not exclusive:
        return "|".join("".join(tokens) for tokens in alternatives)
    groups: dict[str, list[tuple[str, ...]]] = {}
    for tokens in alternatives:
        groups.setdefault(tokens[0].lower(), []).append(tokens[1:])
    return "|".join(f"{first}(?:{_alternation(rest)})" for first, rest in groups.items())


# Longest aliases first, so that "Google Cloud Storage" wins over "Google Cloud" and "Google".
_ALIASES = sorted({alias for name, _, aliases in GAZETTEER for alias in (name, *aliases)}, key=len)
_MATCHER = re.compile(
    r"(?<![\w@])(?:" + _alternation([_alias_tokens(a) for a in reversed(_ALIASES)]) + r")(?![\w@])",
    re.IGNORECASE,
)
_NOT_ENTITY = re.compile(r"https?://\S+|www\.\S+|(?<!\w)@\w+")


def find_entities(text: str) -> list[Entity]:
    """Return the gazetteer entities a text names, canonical and unique, in order of appearance.

    >>> find_entities("Moving from airflow to #Dagster on GCP, @dagster")
    [{'text': 'Apache Airflow', 'type': 'product'}, {'text': 'Dagster', 'type': 'product'}, \
{'text': 'Google Cloud', 'type': 'product'}]
    """
    found: dict[str, Entity] = {}
    for match in _MATCHER.finditer(_NOT_ENTITY.sub(" ", text)):
        key = _key(match.group())
        if match.group().islower() and key in _LOWER_CASE_WORDS:
            continue
        entity = _ENTRIES[key]
        found.setdefault(entity["text"], entity)
    return list(found.values())


def find_all_entities(texts: Sequence[str]) -> list[list[Entity]]:
    """``find_entities`` of each text (a module-level function, for worker processes)."""
    return [find_entities(text) for text in texts]
