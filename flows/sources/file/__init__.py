"""The `file` source: posts from files people already have (X exports, twarc, snscrape, CSV)."""
