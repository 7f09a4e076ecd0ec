"""classify_file: every input and output format, order, row counts, streaming and errors."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from conftest import EchoBackend

from flows.nlp import classify
from flows.nlp.registry import load_backend
from flows.nlp.classify import classify_file
from flows.schema import NLP_RESULT_SCHEMA

# Commas, quotes, non-ASCII, an empty text and a repeat: what breaks naive readers and writers.
TEXTS = [
    'good, "quoted" release 🎉',
    "plain announcement",
    "",
    "ünïcödé good news",
    "plain announcement",
    "last one",
]
NLP_COLUMNS = NLP_RESULT_SCHEMA.names


def _write_input(path: Path, texts: list[str]) -> None:
    """Write ``texts`` with an ``id`` column (not for .txt) in the format of ``path``."""
    ids = [f"p{i}" for i in range(len(texts))]
    if path.suffix == ".txt":
        path.write_text("".join(f"{text}\n" for text in texts), encoding="utf-8")
    elif path.suffix == ".jsonl":
        lines = (
            json.dumps({"id": i, "text": t}, ensure_ascii=False)
            for i, t in zip(ids, texts, strict=True)
        )
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    elif path.suffix == ".csv":
        pacsv.write_csv(pa.table({"id": ids, "text": texts}), path)
    else:
        pq.write_table(pa.table({"id": ids, "text": texts}), path)


def _read_output(path: Path) -> list[dict]:
    """Rows of an output file, list and struct columns decoded from JSON where CSV holds them."""
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    strings = pacsv.ConvertOptions(
        column_types={name: pa.string() for name in ("id", "text", "sentiment", "topic")},
        strings_can_be_null=False,
    )
    rows = pacsv.read_csv(path, convert_options=strings).to_pylist()
    for row in rows:
        row["topics"], row["entities"] = json.loads(row["topics"]), json.loads(row["entities"])
    return rows


@pytest.mark.parametrize("output_type", [".csv", ".jsonl", ".parquet"])
@pytest.mark.parametrize("input_type", [".txt", ".jsonl", ".csv", ".parquet"])
def test_every_format_keeps_rows_order_and_columns(
    tmp_path: Path, input_type: str, output_type: str
) -> None:
    source, target = tmp_path / f"in{input_type}", tmp_path / f"out{output_type}"
    _write_input(source, TEXTS)
    backend = EchoBackend()

    written = classify_file(source, target, backend, progress=False, chunk_size=4)

    rows = _read_output(target)
    assert written == len(rows) == len(TEXTS)
    assert [row["text"] for row in rows] == TEXTS
    # Each result sits beside the text it was computed from.
    assert [row["entities"] for row in rows] == [[{"text": t, "type": "product"}] for t in TEXTS]
    assert [row["sentiment_score"] for row in rows] == [float(len(t)) for t in TEXTS]
    assert [row["topics"] for row in rows] == [["science_&_technology"]] * len(TEXTS)
    assert {row["model_id"] for row in rows} == {"echo-v1"}
    expected_columns = ["text"] if input_type == ".txt" else ["id", "text"]
    assert list(rows[0]) == expected_columns + NLP_COLUMNS
    if input_type != ".txt":
        assert [row["id"] for row in rows] == [f"p{i}" for i in range(len(TEXTS))]
    # "plain announcement" appears twice but is classified once; chunks stay within chunk_size.
    assert sorted(t for call in backend.calls for t in call) == sorted(set(TEXTS))
    assert max(len(call) for call in backend.calls) <= 4
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([source.name, target.name])


def test_large_input_streams_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(classify, "PARQUET_ROWS", 1_000)
    source, target = tmp_path / "posts.txt", tmp_path / "nlp.parquet"
    texts = [f"post {i % 700}" for i in range(2_500)]
    _write_input(source, texts)
    backend = EchoBackend()

    assert classify_file(source, target, backend, progress=False, chunk_size=256) == 2_500

    assert pq.read_table(target, columns=["text"]).column("text").to_pylist() == texts
    assert max(len(call) for call in backend.calls) <= 256
    assert sum(len(call) for call in backend.calls) == 700
    # chunks of 256 gathered into row groups of at least 1,000 rows: 1,024, 1,024, 452
    groups = pq.ParquetFile(target).metadata
    assert [groups.row_group(i).num_rows for i in range(groups.num_row_groups)] == [1024, 1024, 452]


def test_other_columns_keep_their_types_and_old_results_are_replaced(tmp_path: Path) -> None:
    source, target = tmp_path / "posts.parquet", tmp_path / "nlp.parquet"
    posts = pa.table(
        {
            "post_id": ["a", "b"],
            "text": ["good", None],
            "like_count": pa.array([3, None], pa.int64()),
            "hashtags": [["dbt"], []],
            "sentiment": ["stale", "stale"],
        }
    )
    pq.write_table(posts, source)

    classify_file(source, target, EchoBackend(), progress=False)

    table = pq.read_table(target)
    assert table.schema.names == ["post_id", "text", "like_count", "hashtags", *NLP_COLUMNS]
    assert table.schema.field("hashtags").type == pa.list_(pa.string())
    assert table.column("like_count").to_pylist() == [3, None]
    assert table.column("sentiment").to_pylist() == ["positive", "neutral"]
    # A null text is kept as null and classified as an empty one.
    assert table.column("text").to_pylist() == ["good", None]
    assert table.column("sentiment_score").to_pylist() == [4.0, 0.0]


def test_csv_output_writes_lists_as_json(tmp_path: Path) -> None:
    source, target = tmp_path / "posts.parquet", tmp_path / "nlp.csv"
    pq.write_table(pa.table({"text": ["x"], "hashtags": [["dbt", "duckdb"]]}), source)

    classify_file(source, target, EchoBackend(), progress=False)

    row = pacsv.read_csv(target).to_pylist()[0]
    assert json.loads(row["hashtags"]) == ["dbt", "duckdb"]
    assert json.loads(row["entities"]) == [{"text": "x", "type": "product"}]


def test_jsonl_keys_that_change_type_between_chunks(tmp_path: Path) -> None:
    source, target = tmp_path / "posts.jsonl", tmp_path / "nlp.parquet"
    rows = [
        {"text": "a", "reply_to": None, "likes": 1},
        {"text": "b", "reply_to": None, "likes": 2},
        {"text": "c", "reply_to": "x1", "likes": 2.5},
        {"text": "d", "extra": True},
    ]
    source.write_text("".join(json.dumps(row) + "\n\n" for row in rows), encoding="utf-8")

    assert classify_file(source, target, EchoBackend(), progress=False, chunk_size=2) == 4

    table = pq.read_table(target)
    assert table.schema.field("reply_to").type == pa.string()
    assert table.column("likes").to_pylist() == [1.0, 2.0, 2.5, None]
    assert table.column("extra").to_pylist() == [None, None, None, True]


@pytest.mark.parametrize("output_type", [".csv", ".jsonl", ".parquet"])
def test_empty_input_gives_an_empty_output(tmp_path: Path, output_type: str) -> None:
    source, target = tmp_path / "empty.txt", tmp_path / f"out{output_type}"
    source.write_text("", encoding="utf-8")
    backend = EchoBackend()

    assert classify_file(source, target, backend, progress=False) == 0

    assert target.exists() and backend.calls == []
    if output_type == ".parquet":
        assert pq.read_table(target).schema.names == ["text", *NLP_COLUMNS]


def test_missing_output_folder_is_created(tmp_path: Path) -> None:
    source, target = tmp_path / "in.txt", tmp_path / "a" / "b" / "out.jsonl"
    _write_input(source, ["hello"])
    assert classify_file(source, target, EchoBackend(), progress=False) == 1
    assert target.exists()


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("posts.xlsx", "", r"posts\.xlsx: cannot read '\.xlsx'; expected \.txt .*\.parquet"),
        ("posts", "", r"posts: cannot read 'a file without extension'"),
        ("posts.csv", "id,body\n1,hi\n", r"posts\.csv: no 'text' column \(columns: id, body\)"),
        ("posts.jsonl", '{"body": "hi"}\n', r"posts\.jsonl: no 'text' column \(columns: body\)"),
        ("posts.jsonl", '{"text": "ok"}\n{oops\n', r"posts\.jsonl, line 2: not JSON"),
        ("posts.jsonl", '["text"]\n', r"posts\.jsonl, line 1: expected a JSON object"),
        ("posts.jsonl", '{"text": "a", "k": "s"}\n{"text": "b", "k": {"x": 1}}\n', "one type"),
        ("posts.csv", "", r"posts\.csv: not a readable CSV file"),
    ],
)
def test_unreadable_inputs_say_what_was_expected(
    tmp_path: Path, name: str, content: str, expected: str
) -> None:
    source, target = tmp_path / name, tmp_path / "out.parquet"
    source.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=expected) as raised:
        classify_file(source, target, EchoBackend(), progress=False)
    assert str(tmp_path) in str(raised.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # nothing half-written


def test_missing_input_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.csv: no such file"):
        classify_file(tmp_path / "nope.csv", tmp_path / "out.csv", EchoBackend(), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_parquet_without_text_column_names_the_fix(tmp_path: Path) -> None:
    source = tmp_path / "posts.parquet"
    pq.write_table(pa.table({"body": ["hi"]}), source)
    with pytest.raises(ValueError, match="Rename the column that holds the post text to 'text'"):
        classify_file(source, tmp_path / "out.csv", EchoBackend(), progress=False)


def test_unsupported_output_type_names_the_choices(tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    _write_input(source, ["hello"])
    expected = r"out\.xlsx: cannot write '\.xlsx'.*one of \.csv, \.jsonl, \.parquet"
    with pytest.raises(ValueError, match=expected):
        classify_file(source, tmp_path / "out.xlsx", EchoBackend(), progress=False)


def test_the_output_may_not_replace_the_input(tmp_path: Path) -> None:
    source = tmp_path / "posts.csv"
    source.write_text("text\nhello\n")
    with pytest.raises(ValueError, match=r"posts\.csv: the output would replace the input"):
        classify_file(source, tmp_path / "." / "posts.csv", EchoBackend(), progress=False)
    assert source.read_text() == "text\nhello\n"


def test_a_failing_backend_leaves_no_output(tmp_path: Path) -> None:
    class Failing(EchoBackend):
        def classify(self, texts: Sequence[str]) -> pa.Table:
            raise RuntimeError("model crashed")

    source, target = tmp_path / "in.txt", tmp_path / "out.parquet"
    _write_input(source, ["a", "b"])
    with pytest.raises(RuntimeError, match="model crashed"):
        classify_file(source, target, Failing(), progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt"]


def test_with_the_lite_backend(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source, target = tmp_path / "posts.csv", tmp_path / "nlp.jsonl"
    texts = [
        "I love this, amazing release 🎉",
        "worst outage ever, everything is broken 😡",
        "Our dbt models now run on Snowflake",
    ]
    _write_input(source, texts)
    backend = load_backend("lite", device="cpu")

    assert classify_file(source, target, backend) == 3

    rows = _read_output(target)
    assert [row["sentiment"] for row in rows[:2]] == ["positive", "negative"]
    assert [e["text"] for e in rows[2]["entities"]] == ["dbt", "Snowflake"]
    assert rows[2]["topic"] == "science_&_technology"
    assert {row["model_id"] for row in rows} == {backend.model_id}
    assert f"classify {backend.model_id}: 3 posts" in capsys.readouterr().err
