"""Values of someone else's records (JSON, CSV where all is text, Parquet) as POST_SCHEMA wants.

Each converter takes a field as it comes and returns it typed, None for a missing value, or
raises `RowError` saying why the record cannot become a post.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flows.sources.base import Record


class RowError(ValueError):
    """One record cannot become a post; it is skipped and reported."""


def attempt(mapper: Callable[..., Any], *args: Any) -> Any:
    """`mapper(*args)`, or why a record of someone else's file could not be mapped."""
    try:
        return mapper(*args)
    except ValueError as exc:
        return str(exc)
    except (TypeError, AttributeError, KeyError, OverflowError) as exc:  # an unexpected shape
        return f"({type(exc).__name__}: {exc})"


def required(record: Record, name: str) -> Any:
    value = record.get(name)
    if value is None or value == "":
        raise RowError(f"no {name!r}")
    return value


def as_str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def as_int(value: Any) -> int | None:
    if value is None or value == "" or value != value:  # NaN from a pandas float column
        return None
    if isinstance(value, str):
        number = int(float(value)) if "." in value or "e" in value.lower() else int(value)
    else:
        number = int(value)
    if not -(2**63) <= number < 2**63:  # a count the int64 columns cannot hold
        raise RowError(f"out of range: {value!r}")
    return number


def as_bool(value: Any) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "t", "1", "yes"):
            return True
        if lowered in ("false", "f", "0", "no"):
            return False
        raise RowError(f"not true or false: {value!r}")
    return bool(value)


def as_time(value: Any) -> datetime | None:
    """A UTC time from a datetime or an ISO 8601 string; a time without zone is taken as UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise RowError(f"not an ISO 8601 time: {value!r}") from None
    if not isinstance(value, datetime):
        raise RowError(f"not a time: {value!r}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def as_list(value: Any) -> list[str] | None:
    """A list, or its text in a CSV: JSON (``["a"]``), DuckDB (``[a, b]``) or pandas (``['a']``)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            inner = value.strip().removeprefix("[").removesuffix("]")
            value = [item.strip().strip("'\"") for item in inner.split(",") if item.strip()]
        if not isinstance(value, list):
            raise RowError(f"not a list: {value!r}")
    return [str(item) for item in value]


def nested(value: Any) -> Any:
    """An object or array of a payload; in a CSV it may be JSON text."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, (dict, list)) else None
