"""A real `backup-glance serve` over the demo simulators, posting through real Apprise to a local receiver, stopped
and started again between polls — gracefully and with `kill -9` — never announcing the same state twice."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from notify_helpers import Receiver, dripping_target, receiver
from serve_process import ServeProcess

from backup_glance.config._variables import SECRETS_DIR_VARIABLE
from backup_glance.demo import DemoLab

PASSWORD = "Receiver-Pass-0123"


def complete_board(serve: ServeProcess, timeout: float = 30.0) -> None:
    """Wait until every source has answered or failed once: the board the notifier judges."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sources = httpx.get(serve.url + "/api/v1/status", timeout=5).json()["sources"]
        if sources and all(s["last_attempt_at"] for s in sources):
            return
        time.sleep(0.1)
    raise AssertionError("no complete board:\n" + serve.output)


def quiet_for(inbox: Receiver, count: int, seconds: float) -> None:
    time.sleep(seconds)
    assert len(inbox.messages) == count, [m["title"] for m in inbox.messages]


def test_no_duplicate_alert_across_restarts(tmp_path: Path) -> None:
    with DemoLab() as lab, receiver() as inbox:
        config = tmp_path / "bg.yaml"
        url = inbox.url("/alerts", userinfo=f"bg:{PASSWORD}")
        config.write_text(lab.config_text() + f"notify:\n  - url: {url}\n    severity: warning\n")
        config.chmod(0o600)
        env = {SECRETS_DIR_VARIABLE: lab.environment()[SECRETS_DIR_VARIABLE]}

        started = time.monotonic()
        with ServeProcess(["--config", str(config)], env=env) as first:
            (message,) = inbox.wait_for(1, timeout=30)
            assert time.monotonic() - started < 20  # within seconds of the first complete board
            assert message["type"] == "failure" and "postgres: failed" in message["message"]
            time.sleep(0.2)
            first.kill()  # kill -9 right after the message: what was announced is already on disk
        assert inbox.hits[0].headers.get("Authorization", "").startswith("Basic ")  # Apprise used the credentials

        with ServeProcess(["--config", str(config)], env=env) as second:
            complete_board(second)
            quiet_for(inbox, 1, 3.0)
            assert second.stop(signal.SIGTERM)[0] == 0

        with ServeProcess(["--config", str(config)], env=env) as third:
            complete_board(third)
            quiet_for(inbox, 1, 3.0)
            third.kill()

        for serve in (first, second, third):
            assert PASSWORD not in serve.output
        assert "notification sent" in first.output and "json://****@127.0.0.1" in first.output


def serve_once(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A `serve` that is expected to end on its own (it refuses to start)."""
    return subprocess.run(
        [sys.executable, "-m", "backup_glance", "serve", "--port", "0", "--config", str(config)],
        env={"PATH": "/usr/bin:/bin", "TZ": "UTC", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_second_serve_on_the_same_history_refuses_to_start(tmp_path: Path) -> None:
    # Both would send every notification (a systemd unit and a serve started by hand, an old container).
    with DemoLab() as lab:
        config = tmp_path / "bg.yaml"
        config.write_text(lab.config_text())
        config.chmod(0o600)
        env = {SECRETS_DIR_VARIABLE: lab.environment()[SECRETS_DIR_VARIABLE]}
        with ServeProcess(["--config", str(config)], env=env) as first:
            assert first.process is not None
            second = serve_once(config, env)
            assert second.returncode == 5, second.stderr
            assert f"is in use by another backup-glance serve (process {first.process.pid})" in second.stderr
            history = re.search(r"history: \{path: ([^,]+),", config.read_text()).group(1)  # type: ignore[union-attr]
            (tmp_path / "link.sqlite3").symlink_to(history)
            linked = tmp_path / "linked.yaml"
            linked.write_text(config.read_text().replace(history, str(tmp_path / "link.sqlite3")))
            linked.chmod(0o600)
            third = serve_once(linked, env)
            assert third.returncode == 5, third.stderr  # a symlink to the file is the same file
            assert httpx.get(first.url + "/healthz", timeout=5).status_code == 200
            assert first.stop(signal.SIGTERM)[0] == 0
        with ServeProcess(["--config", str(config)], env=env) as again:  # the claim ends with its holder
            assert httpx.get(again.url + "/healthz", timeout=5).status_code == 200


def test_a_stop_during_a_send_that_never_finishes_ends_within_seconds(tmp_path: Path) -> None:
    """SIGTERM while a send to a target answering a byte at a time was still inside Apprise's 60 s wait: the
    notifier stopped, the log said "stopped", and the process waited at exit for that thread for ever (systemd
    then killed it, and the unit failed)."""
    with DemoLab() as lab, dripping_target() as (port, tally):
        config = tmp_path / "bg.yaml"
        config.write_text(lab.config_text() + f"notify:\n  - url: json://127.0.0.1:{port}/hook\n")
        config.chmod(0o600)
        env = {SECRETS_DIR_VARIABLE: lab.environment()[SECRETS_DIR_VARIABLE]}
        with ServeProcess(["--config", str(config)], env=env) as serve:
            deadline = time.monotonic() + 30
            while not tally.connections and time.monotonic() < deadline:
                time.sleep(0.05)
            assert tally.connections, serve.output  # the send is on its way, and will never end
            code, took = serve.stop(signal.SIGTERM)
            assert code == 0 and took < 15, serve.output
            assert "exiting without waiting for notification sends that never finished" in serve.output
