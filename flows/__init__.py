"""hashtag pulse: collect the posts of a hashtag, keep them in a lake, classify them, serve them.

The data path, one module each: `sources` → `normalize` → `lake` → `nlp` → `warehouse` (views).
`collect` and `analyze` run the two halves as plain functions; `web_to_gcs`, `gcs_to_bq` and
`pipeline` are the Prefect flows over them; `cli` is ``python -m flows``.
"""
