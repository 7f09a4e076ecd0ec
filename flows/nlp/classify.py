"""Classify the texts of a file into another file: no lake, no warehouse.

Input: ``.txt`` (one text per line), ``.jsonl``, ``.csv`` or ``.parquet`` with a ``text`` column.
Output, by extension: ``.csv``, ``.jsonl`` or ``.parquet``, one row per input row in input order,
the input's columns first, then the ``NLP_RESULT_SCHEMA`` columns (an input column of the same name
is replaced). CSV has no lists: ``topics``, ``entities`` and any other list or struct column are
written there as JSON strings. Large inputs stream through in chunks; the output appears under its
name only once complete.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from flows.nlp.backend import CHUNK_TEXTS, Backend
from flows.nlp.stream import classify_texts
from flows.schema import NLP_RESULT_SCHEMA

INPUT_TYPES = {
    ".txt": "one text per line",
    ".jsonl": "one JSON object per line, with a 'text' key",
    ".csv": "a header row with a 'text' column",
    ".parquet": "a 'text' column",
}
OUTPUT_TYPES = (".csv", ".jsonl", ".parquet")
_TEXT_ONLY = pa.schema([pa.field("text", pa.string())])
PARQUET_ROWS = 65_536  # rows per Parquet row group of the output


def classify_file(
    input: Path,
    output: Path,
    backend: Backend,
    *,
    progress: bool = True,
    chunk_size: int | None = None,
) -> int:
    """Classify every text of ``input`` with ``backend`` and write the rows to ``output``.

    A missing or null text is classified as an empty one.

    Args:
        input: the file to read; its type comes from its extension.
        output: the file to write (replaced if it exists); its type comes from its extension.
        backend: from ``flows.nlp.registry.load_backend``.
        progress: show a progress bar on stderr.
        chunk_size: rows read, classified and written at a time; None: ``CHUNK_TEXTS`` of the
            backend's device.

    Returns:
        The number of rows written.

    Raises:
        FileNotFoundError: ``input`` does not exist.
        ValueError: an unsupported extension, or an input without a text column; the message
            names the file, what was expected and how to fix it.

    Example:
        >>> classify_file(Path("posts.csv"), Path("posts_nlp.parquet"), load_backend("lite"))
        1200
    """
    input, output = Path(input), Path(output)
    if not input.is_file():
        raise FileNotFoundError(f"{input}: no such file")
    if output.resolve() == input.resolve():
        raise ValueError(f"{output}: the output would replace the input; name another file")
    if output.suffix.lower() not in OUTPUT_TYPES:
        raise ValueError(
            f"{output}: cannot write {output.suffix or 'a file without extension'!r}; "
            f"name the output file with one of {', '.join(OUTPUT_TYPES)}"
        )
    chunk_size = chunk_size or CHUNK_TEXTS[backend.device]
    schema, tables = _read(input, chunk_size)
    out_schema = _output_schema(schema)
    drop = [name for name in NLP_RESULT_SCHEMA.names if name in schema.names]

    pending: deque[pa.Table] = deque()

    def texts() -> Iterator[str]:
        for table in tables:
            pending.append(table)
            yield from ("" if t is None else str(t) for t in table.column("text").to_pylist())

    written = 0
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        with _writer(temporary, output.suffix.lower(), out_schema) as write:
            results = classify_texts(
                backend, texts(), chunk_size=chunk_size, progress=progress, total=_count(input)
            )
            for result in results:
                rows = _take(pending, result.num_rows).drop_columns(drop)
                write(pa.Table.from_arrays(rows.columns + result.columns, schema=out_schema))
                written += result.num_rows
        temporary.replace(output)
    except (UnicodeDecodeError, pa.ArrowInvalid) as error:
        if isinstance(error, pa.ArrowInvalid) and "UTF8" not in str(error):
            raise
        raise ValueError(
            f"{input}: not UTF-8 text ({error}); save it as UTF-8, for example "
            f"iconv -f latin1 -t utf-8 {input} > {input.stem}.utf8{input.suffix}"
        ) from error
    finally:
        temporary.unlink(missing_ok=True)
    return written


def _read(path: Path, chunk_size: int) -> tuple[pa.Schema, Iterator[pa.Table]]:
    """The input's schema and its rows as tables of at most ``chunk_size`` rows."""
    kind = path.suffix.lower()
    if kind not in INPUT_TYPES:
        expected = "; ".join(f"{ext} ({what})" for ext, what in INPUT_TYPES.items())
        raise ValueError(
            f"{path}: cannot read {kind or 'a file without extension'!r}; expected {expected}. "
            "Convert the file to one of these, or give it the right extension"
        )
    if kind == ".txt":
        return _TEXT_ONLY, _txt_tables(path, chunk_size)
    if kind == ".parquet":
        parquet = pq.ParquetFile(path)
        schema = parquet.schema_arrow
        tables = (pa.Table.from_batches([b]) for b in parquet.iter_batches(chunk_size))
    elif kind == ".csv":
        schema, tables = _csv_tables(path, chunk_size)
    else:
        schema = _jsonl_schema(path, chunk_size)
        rows = _jsonl_rows(path, chunk_size)
        tables = (pa.Table.from_pylist(chunk, schema=schema) for chunk in rows)
    if "text" not in schema.names:
        raise ValueError(
            f"{path}: no 'text' column (columns: {', '.join(schema.names) or 'none'}); "
            f"expected {INPUT_TYPES[kind]}. Rename the column that holds the post text to 'text'"
        )
    return schema, tables


def _txt_tables(path: Path, chunk_size: int) -> Iterator[pa.Table]:
    # newline="\n": a text ends at a line feed only, as in the line count of `_count`.
    with path.open(encoding="utf-8-sig", newline="\n") as lines:
        chunk: list[str] = []
        for line in lines:
            chunk.append(line.rstrip("\r\n"))
            if len(chunk) == chunk_size:
                yield pa.table({"text": chunk})
                chunk = []
        if chunk:
            yield pa.table({"text": chunk})


def _csv_tables(path: Path, chunk_size: int) -> tuple[pa.Schema, Iterator[pa.Table]]:
    # Every column is read as text: type inference on the first block would fail on a later block
    # that disagrees, and classification passes the other columns through untouched anyway.
    try:
        with pacsv.open_csv(path) as reader:
            names = reader.schema.names
    except pa.ArrowInvalid as error:
        raise ValueError(f"{path}: not a readable CSV file ({error})") from error
    schema = pa.schema([pa.field(name, pa.string()) for name in names])
    convert = pacsv.ConvertOptions(column_types=schema, strings_can_be_null=False)

    def tables() -> Iterator[pa.Table]:
        with pacsv.open_csv(path, convert_options=convert) as reader:
            for batch in reader:
                for start in range(0, batch.num_rows, chunk_size):
                    yield pa.Table.from_batches([batch.slice(start, chunk_size)])

    return schema, tables()


def _jsonl_rows(path: Path, chunk_size: int) -> Iterator[list[dict[str, Any]]]:
    with path.open(encoding="utf-8-sig") as lines:
        chunk: list[dict[str, Any]] = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}, line {number}: not JSON ({error.msg})") from error
            if not isinstance(row, dict):  # a fault of the file, not of an argument
                raise ValueError(  # noqa: TRY004
                    f"{path}, line {number}: expected a JSON object per line"
                )
            chunk.append(row)
            if len(chunk) == chunk_size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


def _jsonl_schema(path: Path, chunk_size: int) -> pa.Schema:
    """One schema for the whole file, read in a first pass.

    A key that is null throughout the first chunk and a string later, or an integer that becomes a
    float, would otherwise give chunks that disagree and cannot be written to one Parquet file.
    """
    try:
        schemas = [_infer(rows).schema for rows in _jsonl_rows(path, chunk_size)]
        schema = pa.unify_schemas(schemas or [_TEXT_ONLY], promote_options="permissive")
    except (pa.ArrowTypeError, pa.ArrowInvalid) as error:
        raise ValueError(
            f"{path}: a key holds values of types that do not mix ({error}); give each key one "
            "type throughout the file, or drop that key"
        ) from error
    return pa.schema(
        [pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else f for f in schema]
    )


def _infer(rows: list[dict[str, Any]]) -> pa.Table:
    # Table.from_pylist takes the keys of the first row only; a key may first appear later.
    names = dict.fromkeys(key for row in rows for key in row)
    return pa.table({name: [row.get(name) for row in rows] for name in names})


def _count(path: Path) -> int | None:
    """Rows to expect, for the progress bar, where that is cheap to know."""
    kind = path.suffix.lower()
    if kind == ".parquet":
        return pq.ParquetFile(path).metadata.num_rows
    if kind == ".txt":
        with path.open("rb") as lines:
            return sum(1 for _ in lines)
    return None


def _output_schema(schema: pa.Schema) -> pa.Schema:
    kept = [field for field in schema if field.name not in NLP_RESULT_SCHEMA.names]
    return pa.schema(kept + list(NLP_RESULT_SCHEMA))


def _take(pending: deque[pa.Table], rows: int) -> pa.Table:
    """The next ``rows`` input rows, from the tables read so far."""
    taken: list[pa.Table] = []
    while rows:
        table = pending.popleft()
        if table.num_rows > rows:
            pending.appendleft(table.slice(rows))
            table = table.slice(0, rows)
        taken.append(table)
        rows -= table.num_rows
    return pa.concat_tables(taken)


@contextmanager
def _writer(path: Path, kind: str, schema: pa.Schema) -> Iterator[Callable[[pa.Table], None]]:
    """A function that appends a table to ``path``, written as ``kind``."""
    if kind == ".parquet":
        with pq.ParquetWriter(path, schema) as parquet:
            # row groups of PARQUET_ROWS, not one per chunk (512 rows on a CPU): thousands of
            # tiny groups make a file slow to read
            buffered: list[pa.Table] = []

            def write(table: pa.Table) -> None:
                buffered.append(table)
                if sum(t.num_rows for t in buffered) >= PARQUET_ROWS:
                    parquet.write_table(pa.concat_tables(buffered))
                    buffered.clear()

            yield write
            if buffered:
                parquet.write_table(pa.concat_tables(buffered))
    elif kind == ".csv":
        nested = [field.name for field in schema if pa.types.is_nested(field.type)]
        flat = pa.schema(
            [field.with_type(pa.string()) if field.name in nested else field for field in schema]
        )
        with pacsv.CSVWriter(path, flat) as csv:
            yield lambda table: csv.write_table(_as_json_columns(table, nested).cast(flat))
    else:
        with path.open("w", encoding="utf-8", newline="\n") as jsonl:
            yield lambda table: jsonl.writelines(f"{_json(row)}\n" for row in table.to_pylist())


def _as_json_columns(table: pa.Table, names: list[str]) -> pa.Table:
    for name in names:
        values = [None if v is None else _json(v) for v in table.column(name).to_pylist()]
        index = table.schema.get_field_index(name)
        table = table.set_column(index, name, pa.array(values, pa.string()))
    return table


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return str(value)  # Decimal, bytes and the like: readable rather than an error
