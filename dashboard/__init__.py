"""The local dashboard: a Streamlit page over the warehouse views.

`run_dashboard` starts it as ``streamlit run dashboard/app.py`` in a child process; the page finds
the warehouse in the environment variable `WAREHOUSE_ENV`.

Example:
    >>> run_dashboard("duckdb:///data/warehouse.duckdb", port=8501)  # doctest: +SKIP
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

WAREHOUSE_ENV = "PULSE_DASHBOARD_WAREHOUSE"
APP = Path(__file__).with_name("app.py")
# The page imports `flows` and `dashboard`: the project root must be importable in the child.
ROOT = APP.parent.parent
ACCENT = "#2f6fb3"


def dashboard_command(
    port: int = 8501, host: str = "127.0.0.1", open_browser: bool = False
) -> list[str]:
    """The ``streamlit run`` command line for the dashboard page."""
    options = {
        "server.port": port,
        "server.address": host,
        "server.headless": "false" if open_browser else "true",
        "browser.gatherUsageStats": "false",
        "client.toolbarMode": "viewer",
        # Streamlit's default accent is red, which the charts reserve for negative sentiment.
        "theme.base": "light",
        "theme.primaryColor": ACCENT,
    }
    flags = [part for name, value in options.items() for part in (f"--{name}", str(value))]
    return [sys.executable, "-m", "streamlit", "run", str(APP), *flags]


def dashboard_env(warehouse_url: str) -> dict[str, str]:
    """The environment of the dashboard process: this one, plus the warehouse URL."""
    path = os.environ.get("PYTHONPATH")
    return {
        **os.environ,
        WAREHOUSE_ENV: warehouse_url,
        "PYTHONPATH": os.pathsep.join([str(ROOT), path] if path else [str(ROOT)]),
    }


def run_dashboard(
    warehouse_url: str, port: int = 8501, host: str = "127.0.0.1", open_browser: bool = False
) -> int:
    """Serve the dashboard over `warehouse_url` until it stops; return Streamlit's exit code.

    Args:
        warehouse_url: ``duckdb:///path/file.duckdb`` (a relative path is taken from the current
            directory) or another URL that `flows.warehouse.open.open_warehouse` accepts.
        port: the port to listen on.
        host: the address to bind; the default serves this machine only.
        open_browser: open the page in the default browser once the server is up.
    """
    process = subprocess.Popen(
        dashboard_command(port, host, open_browser), env=dashboard_env(warehouse_url)
    )
    # A service manager stops us with SIGTERM: pass it on, or Streamlit would outlive us.
    forward = threading.current_thread() is threading.main_thread()
    if forward:
        previous = signal.signal(signal.SIGTERM, lambda *_: process.terminate())
    try:
        return process.wait()
    except KeyboardInterrupt:
        # Ctrl-C reached Streamlit too (same process group): let it finish shutting down.
        return process.wait()
    finally:
        if forward:
            signal.signal(signal.SIGTERM, previous)
