"""The NLP layer: a backend turns post texts into sentiment, topics and entities.

`registry.load_backend` chooses a backend by name (`lite`, or `tweetnlp` in `tweetnlp/`);
`stream.classify_texts` streams texts through it, each distinct text once, in chunks, yielding
``flows.schema.NLP_RESULT_SCHEMA`` tables in input order; `classify` does the same for files.

Importing this package is cheap: torch and the models load inside `load_backend`.
"""
