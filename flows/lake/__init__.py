"""The lake: Parquet files of posts and the state beside them (cursors, manifest, locks)."""
