from __future__ import annotations

import pytest

from flows.config import load_config
from flows.settings import ConfigError


def write(tmp_path, text: str):
    path = tmp_path / "configuration.conf"
    path.write_text(text)
    return path


def test_embedded_default_is_fully_local(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(None)
    assert config.origin == "the embedded default"
    assert config.hashtag == "dataengineering"
    assert config.pipeline.sources == ("sample",)
    assert config.lake == str(tmp_path / "data" / "lake")
    assert config.warehouse == "duckdb:///data/warehouse.duckdb"
    assert config.pipeline.nlp_backend == "lite"
    assert config.limit is None


def test_example_file_parses_and_documents_every_key(tmp_path, monkeypatch):
    from pathlib import Path

    example = Path(__file__).parent.parent / "configuration.conf.example"
    config = load_config(example)
    assert config.pipeline.sources == ("sample",)
    text = example.read_text()
    for section in ("twitter_config", "pipeline", "gcp_config", "prefect_config", "sample", "file"):
        assert f"[{section}]" in text
    for key in ("hashtag", "limit", "sources", "lake", "warehouse", "nlp_backend", "project_id",
                "data_lake_bucket", "bucket_filename", "bq_dataset", "bq_table", "gcp_credentials",
                "gcs_bucket_block_name", "paths"):
        assert f"\n{key} =" in text


def test_original_project_keys_keep_their_meaning(tmp_path):
    config = load_config(write(tmp_path, """
[gcp_config]
project_id = my-proj
data_lake_bucket = my-lake
bucket_filename = tweets
bq_dataset = tweets_ds
bq_table = tweets
[prefect_config]
gcp_credentials = my-creds
gcs_bucket_block_name = my-bucket
[twitter_config]
hashtag = DataEngineering
limit = 500
"""))
    assert config.lake == "gs://my-lake/tweets"
    assert config.warehouse == "bigquery://my-proj/tweets_ds"
    assert config.prefect.gcp_credentials == "my-creds"
    assert config.limit == 500


def test_the_original_projects_hashtag_with_its_hash_is_accepted(tmp_path, monkeypatch):
    # its configuration.conf wrote `hashtag = #dataengineering`; users bring the file as it is
    path = write(tmp_path, "[twitter_config]\nhashtag = #dataengineering\nlimit = 5000\n")
    assert load_config(path).hashtag == "dataengineering"
    monkeypatch.setenv("PULSE_TWITTER_CONFIG_HASHTAG", "#dbt")
    assert load_config(path).hashtag == "dbt"
    monkeypatch.setenv("PULSE_TWITTER_CONFIG_HASHTAG", "##dbt")
    with pytest.raises(ConfigError, match=r"hashtag = '#dbt'.*one leading '#' is dropped"):
        load_config(path)


def test_explicit_pipeline_keys_win_over_gcp_keys(tmp_path):
    config = load_config(write(tmp_path, """
[gcp_config]
project_id = p
data_lake_bucket = b
bq_dataset = d
[pipeline]
lake = gs://other/prefix/
warehouse = duckdb:////tmp/w.duckdb
"""))
    assert config.lake == "gs://other/prefix"
    assert config.warehouse == "duckdb:////tmp/w.duckdb"


def test_environment_overrides_keys(tmp_path, monkeypatch):
    monkeypatch.setenv("PULSE_PIPELINE_NLP_BACKEND", "tweetnlp")
    monkeypatch.setenv("PULSE_SAMPLE_POSTS", "123")
    config = load_config(write(tmp_path, "[pipeline]\nnlp_backend = lite\n"))
    assert config.pipeline.nlp_backend == "tweetnlp"
    assert config.settings("sample").posts == 123
    assert "PULSE_PIPELINE_NLP_BACKEND" in config.origin


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[pipeline]\nsourcse = sample\n", r"\[pipeline\] sourcse: unknown key .* Did you mean 'sources'"),
        ("[pipeline]\nsources = sample, myspace\n", "unknown source 'myspace'. Choose from: sample, file"),
        ("[pipeline]\nnlp_backend = bert\n", r"\[pipeline\] nlp_backend = 'bert'.*choose lite or tweetnlp"),
        ("[pipeline]\nwarehouse = postgres://x\n", r"\[pipeline\] warehouse = 'postgres://x'.*duckdb:///"),
        ("[pipeline]\nlake = s3://bucket\n", r"\[pipeline\] lake = 's3://bucket'.*gs://bucket/prefix"),
        ("[twitter_config]\nhashtag = #data engineering\n", r"\[twitter_config\] hashtag .*without '#'"),
        ("[twitter_config]\nlimit = lots\n", r"\[twitter_config\] limit = 'lots'.*whole number"),
        ("[sample]\nposts = many\n", r"\[sample\] posts = 'many'.*whole number"),
        ("not an ini file", "not a valid INI file"),
        # a misspelt section: its keys would be ignored, and the lake written elsewhere
        ("[pipline]\nlake = /tmp/x\n", r"\[pipline\] in .*unknown section\. Did you mean \[pipeline\]"),
        ("[pipeline]\nlake =\n", r"\[pipeline\] lake in .* is empty"),
    ],
)
def test_bad_values_name_the_key_and_the_fix(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=expected) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_a_named_file_that_does_not_exist_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="no such configuration file. Copy configuration.conf.example"):
        load_config(tmp_path / "missing.conf")


def test_demo_ignores_the_local_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "[pipeline]\nsources = file\n")
    assert load_config(None).pipeline.sources == ("file",)
    assert load_config(None, embedded=True).pipeline.sources == ("sample",)


def test_example_file_has_every_section_and_key_the_code_reads():
    import configparser
    import dataclasses
    from pathlib import Path

    from flows.config import _SECTIONS
    from flows.sources.registry import SOURCE_SETTINGS, STREAM_SETTINGS

    parser = configparser.ConfigParser(interpolation=None)
    parser.read(Path(__file__).parent.parent / "configuration.conf.example", encoding="utf-8")
    missing = [
        f"[{section}] {f.name}"
        for section, cls in {**_SECTIONS, **SOURCE_SETTINGS, **STREAM_SETTINGS}.items()
        for f in dataclasses.fields(cls)
        if not parser.has_option(section, f.name)
    ]
    assert missing == []


def test_stream_sources_are_checked_with_the_fix_in_the_message(tmp_path):
    config = load_config(write(tmp_path, "[stream]\nsources = jetstream\nflush_seconds = 5\n"))
    assert (config.stream.sources, config.stream.flush_seconds) == (("jetstream",), 5.0)
    with pytest.raises(ConfigError, match=r"\[stream\] sources: unknown streaming source bluesky"):
        load_config(write(tmp_path, "[stream]\nsources = bluesky\n"))
    with pytest.raises(ConfigError, match="access_token_env is empty"):
        load_config(write(tmp_path, "[stream]\nsources = mastodon\n"))
    with pytest.raises(ConfigError, match=r"jetstream is a live source; name it in \[stream\]"):
        load_config(write(tmp_path, "[pipeline]\nsources = sample, jetstream\n"))
    with pytest.raises(ConfigError, match=r"\[jetstream\] urls: 'https://x' is not a Jetstream"):
        load_config(write(tmp_path, "[jetstream]\nurls = https://x\n"))
