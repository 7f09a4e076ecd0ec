"""The `sample` source: a deterministic, realistic month of posts, offline, for the demo."""
