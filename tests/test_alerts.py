"""Notifications: a local webhook server receives, through Apprise's ``json://`` and through
Prefect notification blocks saved on a real Prefect server, exactly one message per new signal;
a re-run or a second worker sends nothing again; a failed send is reported and sent by the next
run; a block that does not exist or does not notify is a clear error."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
import tenacity

from flows.config import AlertsConfig, load_config
from flows.lake.lake import Lake
from flows.orchestration.notify import block_sender
from flows.settings import ConfigError
from flows.stages import alerts
from flows.stages.alerts import env_sender, send_new_signals
from flows.warehouse.duckdb_warehouse import DuckDBWarehouse
from servers import prefect_server
from test_signals import FLAT, SPIKED, hourly_posts

TOKEN = "pulse-webhook-token-3f9a"  # a webhook's secret part: never in an error or the lake
BLOCK_KINDS = ("mattermost-webhook", "custom-webhook")  # Apprise-based (as Slack), and plain


@pytest.fixture
def webhook() -> Iterator[SimpleNamespace]:
    """A JSON webhook on 127.0.0.1 that keeps every body; ``status`` is what it answers."""
    hook = SimpleNamespace(messages=[], status=200)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if hook.status == 200:
                hook.messages.append(json.loads(body))
            self.send_response(hook.status)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hook.port = server.server_port
    hook.url = f"json://127.0.0.1:{server.server_port}/hook"
    yield hook
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def setting(webhook, monkeypatch) -> AlertsConfig:
    monkeypatch.setenv("PULSE_TEST_ALERT_URLS", webhook.url)
    monkeypatch.setattr(alerts, "RETRY_WAIT", tenacity.wait_none())
    return AlertsConfig(urls_env="PULSE_TEST_ALERT_URLS")


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory) -> Iterator[str]:
    """A real Prefect server on 127.0.0.1; this process's client talks to it."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with prefect_server(tmp_path_factory.mktemp("prefect-home")) as url:
        with temporary_settings({PREFECT_API_URL: url}):
            yield url


@pytest.fixture
def block(prefect_api, webhook, monkeypatch, request) -> str:
    """A notification block of kind ``request.param`` saved on the server, pointed at the local
    webhook; its ``<block type>/<name>``."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock, MattermostWebhook

    monkeypatch.setattr(alerts, "RETRY_WAIT", tenacity.wait_none())
    kind = request.param
    if kind == "mattermost-webhook":
        notifier = MattermostWebhook(hostname="127.0.0.1", port=webhook.port, token=TOKEN)
    else:
        notifier = CustomWebhookNotificationBlock(
            name="pulse",
            url=f"http://127.0.0.1:{webhook.port}/hooks/{TOKEN}",
            json_data={"title": "{{subject}}", "message": "{{body}}"},
        )
    notifier.save("pulse-team", overwrite=True)
    return f"{kind}/pulse-team"


def warehouse_with(tmp_path, counts) -> DuckDBWarehouse:
    warehouse = DuckDBWarehouse(tmp_path / "w.duckdb")
    warehouse.load_posts(hourly_posts(counts))
    return warehouse


def test_one_message_per_new_signal_and_none_on_a_rerun_or_a_second_worker(
    tmp_path, webhook, setting
):
    lake_path = str(tmp_path / "lake")
    with warehouse_with(tmp_path, SPIKED) as warehouse:
        first = send_new_signals(Lake(lake_path), warehouse, setting, env_sender(setting))
        again = send_new_signals(Lake(lake_path), warehouse, setting, env_sender(setting))
    assert len(first.sent) == 1 and not first.failed
    assert again.sent == [] and not again.failed
    (message,) = webhook.messages
    assert message["title"] == "#dataengineering: 60 posts in one hour on mastodon"
    lines = message["message"].splitlines()
    assert lines[0] == (
        "#dataengineering: 60 posts in one hour on mastodon, against a usual 6.0 (score 22.0)."
    )
    assert lines[1] == "When: 2026-11-11 15:00 to 2026-11-11 16:00 UTC."
    assert len([line for line in lines if line.startswith("- https://mastodon.example/")]) == 3


def test_no_message_on_flat_data(tmp_path, webhook, setting):
    with warehouse_with(tmp_path, FLAT) as warehouse:
        report = send_new_signals(Lake(str(tmp_path / "lake")), warehouse, setting,
                                  env_sender(setting))
    assert report.sent == [] and webhook.messages == []


def test_a_failed_send_is_retried_reported_and_sent_by_the_next_run(tmp_path, webhook, setting):
    lake = Lake(str(tmp_path / "lake"))
    webhook.status = 500
    with warehouse_with(tmp_path, SPIKED) as warehouse:
        failed = send_new_signals(lake, warehouse, setting, env_sender(setting))
        assert failed.sent == [] and len(failed.failed) == 1
        (signal_id,) = failed.failed
        state = lake._read_json(alerts.ALERTS_STATE)
        assert state["failed"][signal_id]["tries"] == 1 and signal_id not in state.get("sent", {})
        webhook.status = 200
        later = send_new_signals(lake, warehouse, setting, env_sender(setting))
    assert later.sent == [signal_id] and len(webhook.messages) == 1
    assert signal_id not in lake._read_json(alerts.ALERTS_STATE)["failed"]


def test_alert_settings_are_checked(monkeypatch):
    monkeypatch.setenv("PULSE_ALERTS_KINDS", "volume, spikes")
    with pytest.raises(ConfigError, match=r"\[alerts\] kinds: unknown spikes"):
        load_config(None, embedded=True)
    monkeypatch.setenv("PULSE_ALERTS_KINDS", "volume")
    monkeypatch.setenv("PULSE_ALERTS_URLS_ENV", "json://127.0.0.1/x")
    with pytest.raises(ConfigError, match="name an environment variable"):
        load_config(None, embedded=True)
    monkeypatch.delenv("PULSE_NO_SUCH_URLS", raising=False)
    with pytest.raises(ConfigError, match="PULSE_NO_SUCH_URLS: that environment variable"):
        env_sender(AlertsConfig(urls_env="PULSE_NO_SUCH_URLS"))


@pytest.mark.parametrize("block", BLOCK_KINDS, indirect=True)
def test_a_notification_block_sends_one_message_per_new_signal_and_none_again(
    tmp_path, webhook, block
):
    setting = AlertsConfig(block=block)
    with warehouse_with(tmp_path, SPIKED) as warehouse:
        first = send_new_signals(Lake(str(tmp_path / "lake")), warehouse, setting,
                                 block_sender(block))
        again = send_new_signals(Lake(str(tmp_path / "lake")), warehouse, setting,
                                 block_sender(block))
    assert len(first.sent) == 1 and not first.failed
    assert again.sent == [] and not again.failed
    (message,) = webhook.messages
    text = "\n".join(str(value) for value in message.values())
    assert "#dataengineering: 60 posts in one hour on mastodon" in text
    assert "against a usual 6.0 (score 22.0)." in text
    assert text.count("- https://mastodon.example/") == 3


@pytest.mark.parametrize("block", BLOCK_KINDS, indirect=True)
def test_a_failed_send_through_a_block_is_reported_and_sent_by_the_next_run(
    tmp_path, webhook, block
):
    lake = Lake(str(tmp_path / "lake"))
    webhook.status = 500
    with warehouse_with(tmp_path, SPIKED) as warehouse:
        failed = send_new_signals(lake, warehouse, AlertsConfig(block=block), block_sender(block))
        assert failed.sent == [] and len(failed.failed) == 1
        (error,) = failed.failed.values()
        assert f"[alerts] block {block!r} could not deliver" in error
        assert TOKEN not in error and TOKEN not in json.dumps(lake._read_json(alerts.ALERTS_STATE))
        webhook.status = 200
        later = send_new_signals(lake, warehouse, AlertsConfig(block=block), block_sender(block))
    assert later.sent == list(failed.failed) and len(webhook.messages) == 1


def test_a_block_that_does_not_exist_or_does_not_notify_is_a_clear_error(prefect_api):
    from prefect.blocks.system import Secret

    with pytest.raises(ConfigError, match=r"'slack-webhook/nobody': no such block on the Prefect"):
        block_sender("slack-webhook/nobody")
    Secret(value="not a webhook").save("pulse-secret", overwrite=True)
    with pytest.raises(ConfigError, match="is a Secret, not a notification block: name one"):
        block_sender("secret/pulse-secret")
