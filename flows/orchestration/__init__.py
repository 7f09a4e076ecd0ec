"""Orchestration: the Prefect flows over the stages, serving them, and Prefect's UI and blocks.

The only package of `flows` that imports Prefect.
"""
