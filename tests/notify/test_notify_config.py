"""The notify and heartbeat keys: checked at their line, secrets redacted, and `notify-test` as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from notify_helpers import Receiver, receiver

from backup_glance.config import parse_text, secrets_of

SOURCE = "sources:\n  - {name: pbs, type: pbs, url: 'https://pbs.lan', token_id: 'a@pbs!t', token_secret: s}\n"
PASSWORD = "Sup3r-Secret-Pass"
TOKEN = "AbCdEf0123456789xyz"
UUID = "0f4c5b2a-1d2e-4f3a-9b8c-7d6e5f4a3b2c"


def problems(text: str) -> list[str]:
    return [str(p) for p in parse_text(SOURCE + text, env={}).problems]


class TestChecks:
    def test_a_full_notify_and_heartbeat_config_is_valid(self) -> None:
        text = f"""notify:
  - url: ntfy://ntfy.lan/backups
    severity: warning
    repeat: 24h
    quiet: "22:00-07:00"
  - url: mailto://me:{PASSWORD}@example.org
    digest: "mon 08:00"
heartbeat: {{url: "https://hc.lan/ping/{UUID}", fail_url: "https://hc.lan/ping/{UUID}/fail", every: 5m}}
"""
        assert problems(text) == []

    def test_every_problem_at_its_key_without_the_url(self) -> None:
        text = f"""notify:
  - url: "xyz://user:{PASSWORD}@host"
    severity: info
    repeat: 5s
    quiet: "22-7"
    digest: "someday 08:00"
  - url: not-a-url
  - url: ntfy://ntfy.lan/backups
    alerts: false
heartbeat: {{url: "ftp://hc.lan/{UUID}", every: 1s}}
"""
        found = problems(text)
        assert any("notify[0].url: xyz://…: Apprise does not understand this URL" in p for p in found), found
        assert any("notify[0].severity: must be one of 'warning' or 'critical'" in p for p in found)
        assert any("notify[0].repeat: must be at least 1m" in p for p in found)
        assert any("notify[0].quiet: '22-7' is not a span of hours" in p for p in found)
        assert any("notify[0].digest: bad weekday 'someday'" in p for p in found)
        assert any("notify[1].url: is not an Apprise URL" in p for p in found)
        assert any("notify[2]: warning: alerts: false without a digest" in p for p in found)
        assert any("heartbeat.url: must start with http:// or https://" in p for p in found)
        assert any("heartbeat.every: must be at least 5s" in p for p in found)
        assert not any(PASSWORD in p or UUID in p for p in found)

    def test_the_same_url_twice_is_an_error(self) -> None:
        found = problems("notify:\n  - url: ntfy://ntfy.lan/a\n  - url: ntfy://ntfy.lan/a\n")
        assert any("notify[1].url: the same URL as notify[0]" in p for p in found), found


def test_secrets_of_hides_whole_urls_and_their_password_and_token_parts() -> None:
    text = f"""notify:
  - url: mailto://me:{PASSWORD}@example.org
  - url: gotify://gotify.lan/{TOKEN}
heartbeat: {{url: "https://hc.lan/ping/{UUID}"}}
"""
    config = parse_text(SOURCE + text, env={}).config
    assert config is not None
    hidden = secrets_of(config)
    assert {PASSWORD, TOKEN, UUID, f"https://hc.lan/ping/{UUID}"} <= set(hidden)
    assert not {"gotify.lan", "example.org", "hc.lan", "ping", "me"} & set(hidden)  # the log stays readable


def test_a_push_url_is_hidden_whatever_its_token_looks_like() -> None:
    """An Uptime Kuma push token of letters only (`HBFAILTOKEN`) looked like no token, and httpx's debug line
    showed the whole URL."""
    text = 'heartbeat: {url: "http://kuma.lan:3001/api/push/HBOKTOKEN?status=up", fail_url: "http://kuma.lan:3001/api/push/HBFAILTOKEN"}\n'
    config = parse_text(SOURCE + text, env={}).config
    assert config is not None
    hidden = secrets_of(config)
    assert {"/api/push/HBOKTOKEN", "/api/push/HBFAILTOKEN", "http://kuma.lan:3001/api/push/HBFAILTOKEN"} <= set(hidden)
    assert "kuma.lan" not in hidden and "kuma.lan:3001" not in hidden  # the host stays readable in the log


def notify_test(tmp_path: Path, urls: list[str]) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "bg.yaml"
    config.write_text(SOURCE + "notify:" + ("\n" if urls else " []\n") + "".join(f"  - url: {url}\n" for url in urls))
    config.chmod(0o600)
    return subprocess.run(
        [sys.executable, "-m", "backup_glance", "notify-test", "--config", str(config), "--log-level", "debug"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TZ": "UTC"},
        check=False,
    )


@pytest.fixture
def inbox() -> object:
    with receiver() as made:
        yield made


class TestNotifyTestCommand:
    def test_every_target_accepting_exits_0(self, tmp_path: Path, inbox: Receiver) -> None:
        done = notify_test(tmp_path, [inbox.url("/a", userinfo=f"bg:{PASSWORD}"), inbox.url("/b")])
        assert done.returncode == 0, done.stderr
        assert f"accepted  json://****@127.0.0.1:{inbox.port}/a" in done.stdout
        assert "all 2 target(s) accepted the test message" in done.stdout
        assert sorted(hit.path for hit in inbox.hits) == ["/a", "/b"]
        assert inbox.messages[0]["title"] == "Backups: test message"
        assert PASSWORD not in done.stdout + done.stderr

    def test_a_target_that_does_not_accept_exits_1_and_shows_no_credentials(
        self, tmp_path: Path, inbox: Receiver
    ) -> None:
        refused = f"json://bg:{PASSWORD}@127.0.0.1:1/{TOKEN}"
        done = notify_test(tmp_path, [inbox.url("/ok"), refused])
        assert done.returncode == 1
        assert "FAILED    json://****@127.0.0.1:1/****" in done.stdout
        assert "1 of 2 target(s) did not accept" in done.stdout
        output = done.stdout + done.stderr
        assert PASSWORD not in output and TOKEN not in output, output

    def test_a_refusing_target_is_shown_with_what_it_answered(self, tmp_path: Path, inbox: Receiver) -> None:
        inbox.status = 503
        done = notify_test(tmp_path, [inbox.url("/down")])
        assert done.returncode == 1
        assert f"FAILED    json://127.0.0.1:{inbox.port}/down  (HTTP 503)" in done.stdout, done.stdout

    def test_a_target_that_follows_redirects_reads_apart_from_one_that_does_not(
        self, tmp_path: Path, inbox: Receiver
    ) -> None:
        done = notify_test(tmp_path, [inbox.url("/h"), inbox.url("/h") + "?redirect=yes"])
        assert done.returncode == 0, done.stderr
        assert f"accepted  json://127.0.0.1:{inbox.port}/h\n" in done.stdout
        assert f"accepted  json://127.0.0.1:{inbox.port}/h?redirect=yes\n" in done.stdout

    def test_no_targets_exits_1(self, tmp_path: Path) -> None:
        done = notify_test(tmp_path, [])
        assert done.returncode == 1 and "no notify targets" in done.stdout
