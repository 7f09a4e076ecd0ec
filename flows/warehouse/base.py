"""What every warehouse engine does (`Warehouse`)."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Protocol

import pyarrow as pa

from flows.warehouse.tables import (
    COLLECTION_RUNS,
    CONVERSATIONS,
    POST_DELETIONS,
    POST_EMBEDDINGS,
    POST_METRICS,
    POST_NLP,
    POSTS,
    TableSpec,
)


class Warehouse(Protocol):
    """Where posts and their NLP results are kept and queried.

    Loads are idempotent: loading the same rows twice changes nothing, and a key that appears
    twice in one batch is stored once. Implementations are context managers (`close` on exit).
    """

    url: str

    def load(self, table: TableSpec, rows: pa.Table, files: Sequence[str] = ()) -> int:
        """Merge `rows` into `table` on its key (an engine's one load; the typed loads below
        name the table). Returns the number of rows inserted."""
        ...

    def load_posts(self, posts: pa.Table, files: Sequence[str] = ()) -> int:
        """Merge POST_SCHEMA rows on ``post_id``: insert new posts, refresh the counters of
        known ones from a newer collection. Returns the number of posts inserted.

        `files`, when given, are the lake files that hold exactly these rows: a warehouse that
        reads them itself (BigQuery, from ``gs://``) loads them instead of `posts`."""
        return self.load(POSTS, posts, files)

    def load_nlp(self, results: pa.Table) -> int:
        """Merge NLP_SCHEMA rows on ``(post_id, model_id)``. Returns the number inserted."""
        return self.load(POST_NLP, results)

    def load_runs(self, runs: pa.Table) -> int:
        """Merge COLLECTION_RUN_SCHEMA rows on ``(run_id, source)``; a later record of a run
        (a retry's) replaces it. Returns the number inserted."""
        return self.load(COLLECTION_RUNS, runs)

    def load_metrics(self, metrics: pa.Table) -> int:
        """Merge POST_METRICS_SCHEMA snapshots on ``(post_id, observed_at)``. Returns the number
        inserted."""
        return self.load(POST_METRICS, metrics)

    def load_deletions(self, deletions: pa.Table) -> int:
        """Merge POST_DELETION_SCHEMA rows on ``post_id``; every view leaves those posts out.
        Returns the number inserted."""
        return self.load(POST_DELETIONS, deletions)

    def load_embeddings(self, embeddings: pa.Table) -> int:
        """Merge EMBEDDING_SCHEMA rows on ``(post_id, model_id)``. Returns the number inserted."""
        return self.load(POST_EMBEDDINGS, embeddings)

    def load_conversations(self, conversations: pa.Table) -> int:
        """Append CONVERSATION_SCHEMA rows (one computation of a window; loading the same rows
        again changes nothing). Returns the number inserted."""
        return self.load(CONVERSATIONS, conversations)

    def analysed_ids(self, post_ids: Sequence[str], model_id: str) -> set[str]:
        """Those of `post_ids` that already have a result from `model_id`."""
        ...

    def counts(self) -> dict[str, int]:
        """Rows per table of `flows.warehouse.tables.TABLES`: ``{"posts": n, ...}``."""
        ...

    def query(self, sql: str, params: Sequence | None = None) -> pa.Table:
        """Run a read-only query (``?`` placeholders take `params`) and return its rows."""
        ...

    def close(self) -> None:
        """Release the warehouse; later calls raise `WarehouseError`."""
        ...

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
