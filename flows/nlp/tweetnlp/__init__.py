"""The tweetnlp backend: the cardiffnlp models, loaded through tweetnlp, run by our engine."""
