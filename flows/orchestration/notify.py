"""Notifications through the Prefect block of ``[alerts] block``, and the weekly digest as an
artifact of the scheduled analysis. Prefect is imported when used, so that the CLI stays quick."""

from __future__ import annotations

from flows.config import Config
from flows.orchestration.blocks import load_block
from flows.settings import ConfigError
from flows.stages.alerts import SendError, Sender, env_sender
from flows.stages.digest import build_digest, due_digest, mark_published, send_digest, to_markdown
from flows.stages.stores import GcpAuth, open_config_warehouse, open_lake


def block_sender(name: str) -> Sender:
    """A `Sender` through the notification block `name` (``<block type>/<name>``)."""
    from prefect.blocks.abstract import NotificationBlock
    from prefect.blocks.core import Block

    block = load_block(
        Block,
        name,
        "[alerts] block",
        "Create it in the UI (Blocks → Slack Webhook, say) or with its class's .save(), or "
        "empty the key.",
    )
    if not isinstance(block, NotificationBlock):
        raise ConfigError(
            f"[alerts] block = {name!r} is a {type(block).__name__}, not a notification block: "
            "name one such as slack-webhook/<name>"
        )

    def send(title: str, body: str) -> None:
        try:
            # Apprise-based blocks (Slack, Teams, Mattermost...) only log a failure otherwise
            with block.raise_on_failure():
                block.notify(body, subject=title)
        except Exception as exc:
            # the service's own words may quote the webhook URL, a secret: its status only
            status = getattr(getattr(exc, "response", None), "status_code", None)
            reason = type(exc).__name__ + (f", HTTP {status}" if status else "")
            raise SendError(f"[alerts] block {name!r} could not deliver ({reason})") from exc

    return send


def alert_sender(config: Config) -> Sender | None:
    """The block's `Sender` when ``[alerts] block`` names one, else the Apprise URLs'."""
    return block_sender(config.alerts.block) if config.alerts.block else env_sender(config.alerts)


def publish_weekly_digest(config: Config, auth: GcpAuth, send: Sender | None) -> bool:
    """Publish the digest as an artifact (and send it when ``[alerts] digest``) if a week has
    passed since the last one; whether it did."""
    from prefect.artifacts import create_markdown_artifact

    lake = open_lake(config, auth)
    if not due_digest(lake):
        return False
    with open_config_warehouse(config, auth) as warehouse:
        digest = build_digest(warehouse, config.hashtag)
    create_markdown_artifact(
        key="weekly-digest",
        markdown=to_markdown(digest),
        description=f"#{config.hashtag}: the week in one page",
    )
    if config.alerts.digest and send is not None:
        send_digest(digest, send)
    mark_published(lake)
    return True
