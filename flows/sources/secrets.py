"""Secrets of the sources (tokens, passwords): read from the environment, never shown."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from flows.settings import ConfigError


@dataclass(frozen=True)
class Secret:
    """A token or password: its value is read with `reveal()` and never shown by repr or str."""

    value: str = field(repr=False)

    def reveal(self) -> str:
        return self.value

    def __str__(self) -> str:
        return "***"

    def __repr__(self) -> str:
        return "Secret('***')"


def secret_from_env(section: str, key: str, env_var: str, how_to_get: str) -> Secret:
    """The secret in environment variable `env_var` (named by `key` of `[section]`).

    Raises:
        ConfigError: the variable is unset or empty; the message names it, the setting that
            names it and how to get the secret, so that the run stops before any work.
    """
    value = os.environ.get(env_var, "").strip() if env_var else ""
    if not value:
        raise ConfigError(
            f"[{section}] {key} = {env_var}: the environment variable {env_var or '(none)'} is "
            f"not set. {how_to_get} Then `export {env_var or 'NAME'}=...` before the run (never "
            "write secrets in configuration.conf)."
        )
    return Secret(value)
