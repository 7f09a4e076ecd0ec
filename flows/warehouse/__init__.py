"""The warehouse: tables `posts` and `post_nlp`, loaded idempotently, and the views over them.

`open.open_warehouse` opens one by URL: `duckdb_warehouse` or `bigquery_warehouse`, each a
`base.Warehouse` running the SQL of `tables` (columns, types, DDL, MERGE) and `views`. The pipeline
loads into it and the dashboards read its views through `Warehouse.query`.
"""
