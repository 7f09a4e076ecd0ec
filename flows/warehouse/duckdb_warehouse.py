"""The warehouse in one DuckDB file: the embedded default, no account needed.

Concurrency: DuckDB lets one process write a file, or several processes read it, never both at
once. The local dashboard (another process) reads while a flow may write, so no connection
outlives one operation: a load opens a read-write connection, merges in one transaction and
closes; `query`, `counts` and `analysed_ids` open read-only connections, so that readers never
block each other. An operation that finds the file held by another process retries with a
growing pause for up to ``lock_timeout`` seconds, then raises `WarehouseLockedError`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa
import tenacity

from flows.warehouse.base import Warehouse
from flows.warehouse.errors import WarehouseError, WarehouseLockedError
from flows.warehouse.tables import (
    TABLES,
    TableSpec,
    add_column_sql,
    columns_to_add,
    create_table_sql,
    merge_sql,
)
from flows.warehouse.views import create_views_sql

log = logging.getLogger(__name__)

DEFAULT_LOCK_TIMEOUT = 30.0
_BACKOFF = tenacity.wait_exponential(multiplier=0.05, max=1.0)  # 0.05 s, doubling up to 1 s


def _is_lock_conflict(exc: BaseException) -> bool:
    if not isinstance(exc, (duckdb.IOException, duckdb.ConnectionException)):
        return False
    message = str(exc)
    # Another process holds the file; or, in this process, a connection opened in the other
    # mode (read-only vs read-write) is still open.
    return "Could not set lock" in message or "different configuration" in message


class DuckDBWarehouse(Warehouse):
    """The warehouse in the DuckDB file at `path` (its folder is created).

    Args:
        path: the database file; relative paths are taken from the working directory now.
        lock_timeout: seconds to keep retrying while another process holds the file.
    """

    def __init__(self, path: str | Path, *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> None:
        self.path = Path(path).expanduser().resolve()
        self.url = f"duckdb:///{self.path}"
        self.lock_timeout = lock_timeout
        self._closed = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect(read_only=False) as con:
            for table in TABLES:
                con.execute(create_table_sql(table))
                existing = [row[0] for row in con.execute(f"DESCRIBE {table.name}").fetchall()]
                for field in columns_to_add(table, existing, self.url):
                    log.info("adding column %s to %s in %s", field.name, table.name, self.url)
                    con.execute(add_column_sql(table, field))
            for statement in create_views_sql():
                con.execute(statement)

    def __repr__(self) -> str:
        return f"DuckDBWarehouse({str(self.path)!r})"

    @contextmanager
    def _connect(self, *, read_only: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        if self._closed:
            raise WarehouseError(f"{self!r} is closed")
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(_is_lock_conflict),
            stop=tenacity.stop_after_delay(self.lock_timeout),
            wait=self._wait,
            before_sleep=lambda state: log.info(
                "%s is held by another process; trying again in %.2f s",
                self.path,
                state.next_action.sleep,
            ),
        )
        try:
            con = retrying(duckdb.connect, str(self.path), read_only=read_only)
        except tenacity.RetryError as gave_up:
            exc = gave_up.last_attempt.exception()
            raise WarehouseLockedError(
                f"{self.path} is held by another process (DuckDB allows one writer, and "
                f"no reader while it writes); gave up after {self.lock_timeout:g} s. "
                f"Stop that process or retry when it is done. DuckDB said: {exc}"
            ) from exc
        try:
            # Timestamps come back in UTC, as POST_SCHEMA has them, whatever the machine's zone.
            con.execute("SET TimeZone = 'UTC'")
            yield con
        except (duckdb.IOException, duckdb.TransactionException) as exc:  # a full disk, say
            raise WarehouseError(f"{self.path}: {exc}") from exc
        finally:
            con.close()

    def _wait(self, state: tenacity.RetryCallState) -> float:
        # The last try falls on the timeout, not up to a pause after it.
        return max(0.0, min(_BACKOFF(state), self.lock_timeout - state.seconds_since_start))

    def load(self, table: TableSpec, rows: pa.Table, files: Sequence[str] = ()) -> int:
        # the rows are in memory already: `files` adds nothing
        staged = table.conform(rows)
        if staged.num_rows == 0:
            return 0
        with self._connect(read_only=False) as con:
            con.register("staging", staged)
            con.execute("BEGIN TRANSACTION")
            before = _count(con, table.name)
            con.execute(merge_sql(table, "staging"))
            inserted = _count(con, table.name) - before
            con.execute("COMMIT")
        return inserted

    def analysed_ids(self, post_ids: Sequence[str], model_id: str) -> set[str]:
        if len(post_ids) == 0:  # also a pyarrow or numpy array, whose truth is ambiguous
            return set()
        wanted = pa.table({"post_id": pa.array(post_ids, pa.string())})
        with self._connect(read_only=True) as con:
            con.register("wanted", wanted)
            rows = con.execute(
                "SELECT DISTINCT n.post_id FROM post_nlp AS n"
                " JOIN wanted AS w ON w.post_id = n.post_id WHERE n.model_id = ?",
                [model_id],
            ).fetchall()
        return {post_id for (post_id,) in rows}

    def counts(self) -> dict[str, int]:
        with self._connect(read_only=True) as con:
            return {table.name: _count(con, table.name) for table in TABLES}

    def query(self, sql: str, params: Sequence | None = None) -> pa.Table:
        with self._connect(read_only=True) as con:
            try:
                return con.sql(sql, params=params).to_arrow_table()
            except duckdb.Error as exc:
                raise WarehouseError(f"query on {self.path} failed: {exc}") from exc

    def close(self) -> None:
        self._closed = True


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    (n,) = con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
    return n
