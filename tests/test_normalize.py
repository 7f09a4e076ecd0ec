from __future__ import annotations

import pyarrow as pa

from conftest import make_post
from flows.stages.normalize import normalize
from flows.schema import POST_SCHEMA, posts_table


def test_normalize_cleans_text_tags_and_handles():
    table = posts_table(
        [
            make_post(1, text="  Cafe\u0301 \x00time\x1f #DataEngineering \n", hashtag="#DataEngineering",
                      author_handle="@Alice", lang="EN", hashtags=["#DataEngineering", "dbt"],
                      mentions=["@Bob", "carol"]),
            make_post(2, text="", hashtags=None, mentions=[]),
        ]
    )
    out = normalize(table)
    assert out.schema.equals(POST_SCHEMA)
    first = out.slice(0, 1).to_pylist()[0]
    assert first["text"] == "Café time #DataEngineering"
    assert first["hashtag"] == "dataengineering"
    assert first["author_handle"] == "Alice"
    assert first["lang"] == "en"
    assert first["hashtags"] == ["dataengineering", "dbt"]
    assert first["mentions"] == ["Bob", "carol"]
    second = out.slice(1, 1).to_pylist()[0]
    assert second["text"] == "" and second["hashtags"] is None and second["mentions"] == []


def test_normalize_handles_many_chunks():
    table = pa.concat_tables([posts_table([make_post(i, hashtags=["#A"])]) for i in range(3)])
    out = normalize(table)
    assert out.column("hashtags").to_pylist() == [["a"]] * 3


def test_normalize_takes_a_slice_of_a_batch():
    rows = [make_post(i, hashtags=[f"#Tag{i}", "#X"], mentions=[f"@u{i}"]) for i in range(6)]
    rows[3]["hashtags"] = None
    table = posts_table(rows)
    part = normalize(table.slice(2, 3))  # what a source that cuts its batches would hand over
    assert part.column("hashtags").to_pylist() == [["tag2", "x"], None, ["tag4", "x"]]
    assert part.column("mentions").to_pylist() == [["u2"], ["u3"], ["u4"]]
    assert part.equals(normalize(table).slice(2, 3))
