"""Bad input, fuzzed (hypothesis): configuration values, keys and sections; hashtags; the files the
`file` source imports. Each gives a `ConfigError` or a clear `SourceError`, or a handled row (a
post, or a warning naming the line), never another exception; a bad row never costs the posts
before it."""

from __future__ import annotations

import dataclasses
import json
import re
import string
import tempfile
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import make_post
from flows.config import _SECTIONS, load_config
from flows.lake.lake import Lake
from flows.schema import POST_SCHEMA
from flows.settings import ConfigError
from flows.sources.registry import SOURCE_SETTINGS
from flows.stages.collect import check_sources, collect

# modest counts, to stay fast; no example database left in the working tree
FUZZ = settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
KEYS = [
    (section, field.name)
    for section, cls in {**_SECTIONS, **SOURCE_SETTINGS}.items()
    for field in dataclasses.fields(cls)
]
# text that a UTF-8 file can hold (no lone surrogates); INI line breaks included on purpose
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
LINE = st.text(  # a value that stays on its line of the INI file
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=40
)
VALUES = st.one_of(
    TEXT,
    st.integers().map(str),
    st.floats().map(str),
    st.sampled_from(["", " ", "true", "no", "-1", "0", "1e999", "9" * 5000, "#", "%(x)s", "[x]"]),
)
NAME = st.text(string.ascii_letters + string.digits + "_", min_size=1, max_size=20)


def load(text: str):
    """The configuration of INI `text`, checked as `collect` checks it before any work."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "pulse.conf"
        path.write_text(text, encoding="utf-8")
        config = load_config(path)
        check_sources(config)
        return config


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(KEYS), VALUES), min_size=1, max_size=4))
def test_any_value_of_any_key_is_accepted_or_a_config_error(values):
    text = "".join(f"[{section}]\n{key} = {value}\n" for (section, key), value in values)
    try:
        load(text)
    except ConfigError as exc:
        assert str(exc)  # a message, naming what to fix
    # anything else fails the test: a crash instead of a message


@FUZZ
@given(NAME, NAME, LINE)
def test_unknown_keys_and_sections_are_named_in_the_error(section, key, value):
    known = {**_SECTIONS, **SOURCE_SETTINGS}
    fields = {f.name for f in dataclasses.fields(known[section])} if section in known else set()
    text = f"[{section}]\n{key} = {value}\n"
    if section in known and key.lower() in fields:  # INI keys are not case-sensitive
        return
    with pytest.raises(ConfigError) as error:
        load(text)
    assert f"[{section}]" in str(error.value)
    assert section not in known or key.lower() in str(error.value)


@FUZZ
@given(st.binary(max_size=200))
def test_any_bytes_as_a_configuration_file_are_accepted_or_a_config_error(data):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "pulse.conf"
        path.write_bytes(b"[twitter_config]\n" + data)
        try:
            check_sources(load_config(path))
        except ConfigError as exc:
            assert str(path) in str(exc) or "[" in str(exc)


def test_a_file_that_is_not_utf8_or_not_ini_says_so_and_where(tmp_path):
    path = tmp_path / "pulse.conf"
    path.write_bytes("[twitter_config]\nhashtag = caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"not UTF-8 \(byte 30 cannot be read\)"):
        load_config(path)
    path.write_text("[twitter_config]\nhashtag = x\nnot a setting\n")
    with pytest.raises(ConfigError, match=r"line 3: 'not a setting\\n' is neither \[section\]"):
        load_config(path)


HASHTAGS = st.one_of(
    LINE,
    st.sampled_from(["", " ", "#", "##x", "#dataengineering", "data engineering", "café", "データ"]),
    LINE.map(lambda text: "#" + text),
)


@FUZZ
@given(HASHTAGS)
def test_a_hashtag_is_a_word_or_a_config_error_naming_it(hashtag):
    try:
        config = load(f"[twitter_config]\nhashtag = {hashtag}\n")
    except ConfigError as exc:
        assert "hashtag" in str(exc)
        return
    assert re.fullmatch(r"\w{1,100}", config.hashtag)  # one '#' in front may have been dropped


@settings(max_examples=8, deadline=None, database=None)
@given(st.text(st.characters(categories=("L", "N")), min_size=1, max_size=30))
def test_a_unicode_hashtag_is_collected_and_its_cursor_kept(hashtag):
    with tempfile.TemporaryDirectory() as folder:
        config = load(
            f"[twitter_config]\nhashtag = {hashtag}\n"
            f"[pipeline]\nlake = {folder}/lake\n[sample]\nposts = 20\nbatch_size = 10\n"
        )
        [report] = collect(config)
        assert report.error is None and report.new > 0
        lake = Lake(f"{folder}/lake")
        assert lake.read_cursor("sample", config.hashtag).next_index == 20
        hashtags = {lake.read_posts(path)["hashtag"][0].as_py() for path in lake.manifest()}
        assert hashtags == {config.hashtag.lower()} or hashtags == {config.hashtag}


# --- files for the file source -----------------------------------------------------------------

JUNK = st.one_of(
    st.none(),
    TEXT,
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.booleans(),
    st.lists(TEXT, max_size=3),
    st.dictionaries(TEXT, TEXT, max_size=2),  # nested JSON where a string is expected
    st.sampled_from([2**63, -(2**63) - 1, float("inf"), "1e999", "0001-01-01T00:00:00+14:00"]),
)
FIELDS = [field.name for field in POST_SCHEMA] + ["extra", "id", "text"]


def as_json(post: dict) -> dict:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in post.items()}


@st.composite
def lines(draw) -> list[bytes]:
    """JSONL lines of posts: the first sound (so the file is recognised), the rest with fields
    dropped, changed to any JSON, added; some not JSON or not UTF-8."""
    out = [json.dumps(as_json(make_post(0))).encode()]
    for i in range(1, draw(st.integers(1, 12))):
        post = as_json(make_post(i))
        for name in draw(st.lists(st.sampled_from(FIELDS), max_size=3)):
            post.pop(name, None)
        post.update(draw(st.dictionaries(st.sampled_from(FIELDS), JUNK, max_size=3)))
        line = json.dumps(post).encode()
        out.append(
            draw(st.sampled_from([line, line[: len(line) // 2], line.replace(b"post", b"\xff")]))
        )
    return out


def import_file(folder: Path, data: bytes, name: str = "posts.jsonl"):
    (folder / name).write_bytes(data)
    config = load_config(
        _ini(folder, f"[pipeline]\nsources = file\nlake = {folder}/lake\n"
                     f"[file]\npaths = {folder}/{name}\nbatch_size = 3\n")
    )
    [report] = collect(config)
    return report, Lake(f"{folder}/lake")


def _ini(folder: Path, text: str) -> Path:
    path = folder / "pulse.conf"
    path.write_text(text)
    return path


@FUZZ
@given(lines())
def test_every_line_of_an_imported_file_is_a_post_or_a_warning(rows):
    with tempfile.TemporaryDirectory() as folder:
        report, lake = import_file(Path(folder), b"\n".join(rows) + b"\n")
        assert report.error is None, report.error
        assert report.fetched + len(report.warnings) == len(rows)
        assert all(re.search(r"posts\.jsonl line \d+: ", w) for w in report.warnings)
        ids = [pid for path in lake.manifest() for pid in lake.read_posts(path)["post_id"]]
        assert len(ids) == len(set(ids)) == report.new


@st.composite
def csv_files(draw) -> bytes:
    """The original project's table with columns missing, added, and cells of any text."""
    columns = [
        "username", "created_utc", "likes", "retweets", "replies", "source", "content", "url"
    ]
    columns = [c for c in columns if draw(st.booleans()) or c in ("username", "content", "url")]
    columns += draw(st.lists(NAME, max_size=2))
    header = ",".join(dict.fromkeys(columns + ["created_utc"]))
    rows = [
        ",".join(json.dumps(draw(TEXT)) for _ in header.split(","))
        for _ in range(draw(st.integers(0, 8)))
    ]
    return "\n".join([header, *rows]).encode("utf-8", "surrogatepass")


@FUZZ
@given(csv_files())
def test_an_imported_table_with_odd_columns_and_cells_never_crashes(data):
    with tempfile.TemporaryDirectory() as folder:
        report, lake = import_file(Path(folder), data, "table.csv")
        assert report.error is None or "table.csv" in report.error
        assert report.new == lake.count_posts()


def test_a_huge_text_is_imported_whole(tmp_path):
    text = "pipelines " * 300_000  # 3 MB in one post
    rows = [json.dumps(as_json(make_post(i, text=text if i == 1 else None))) for i in range(3)]
    report, lake = import_file(tmp_path, "\n".join(rows).encode())
    assert report.error is None and report.new == 3
    texts = [t for path in lake.manifest() for t in lake.read_posts(path)["text"].to_pylist()]
    assert max(map(len, texts)) == len(text.strip())


@pytest.mark.parametrize(
    "bad",
    [
        {"like_count": 10**30},  # more than int64: the batch could not be built
        {"like_count": float("inf")},
        {"reply_count": "1e999"},
        {"created_at": "0001-01-01T00:00:00+14:00"},  # before year 1 in UTC
    ],
)
def test_a_value_out_of_range_is_a_skipped_row_not_a_lost_batch(tmp_path, bad):
    good = [json.dumps(as_json(make_post(i))) for i in range(7)]
    rows = [*good, json.dumps({**as_json(make_post(7)), **bad}), *good[:2]]
    report, lake = import_file(tmp_path, "\n".join(rows).encode())
    assert report.error is None and report.new == lake.count_posts() == 7
    [warning] = report.warnings
    assert re.search(r"posts\.jsonl line 8: .*(range|Overflow).*; skipped", warning)
