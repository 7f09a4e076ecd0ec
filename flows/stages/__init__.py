"""The stages: plain functions that run one half of the data path each, tested without Prefect.

`collect` (sources → normalize → lake) and `analyze` (lake → NLP → warehouse); `reports` turns
what they did into Markdown; `stores` opens the configured lake and warehouse.
"""
