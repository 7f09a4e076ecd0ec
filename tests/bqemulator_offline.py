"""Start the bqemulator BigQuery emulator with no network, loading Parquet as BigQuery does.

Run as ``python tests/bqemulator_offline.py start --rest-port P ...`` (bqemulator's own CLI).
Three changes to bqemulator 1.4.0, each for a reason measured here (../shared/NOTES.md):

- its engine downloads DuckDB extensions at start; they are skipped (nothing here uses them);
- its upload route refuses the ``*/*`` media type that google-cloud-bigquery sends;
- its Parquet load reads hive partitions out of the path (our lake's ``source=x/date=d``) as
  extra columns and inserts by position; BigQuery does neither without hive options, so the
  load here reads the file's own columns and inserts them by name.
"""

from __future__ import annotations

import sys

from bqemulator.api.routes import upload
from bqemulator.cli import main
from bqemulator.jobs import executor
from bqemulator.storage.engine import DuckDBEngine


def _load_parquet(path: str, target_ref: str, ctx) -> None:
    ctx.engine.execute(
        f"INSERT INTO {target_ref} BY NAME SELECT * FROM read_parquet(?, hive_partitioning = false)",
        [path],
    )


DuckDBEngine._load_spatial = lambda self: None
DuckDBEngine._load_format_extensions = lambda self: None
upload._PERMITTED_MEDIA_CONTENT_TYPES = (*upload._PERMITTED_MEDIA_CONTENT_TYPES, "*/*")
executor._LOAD_FORMAT_HANDLERS["PARQUET"] = _load_parquet

if __name__ == "__main__":
    sys.exit(main())
