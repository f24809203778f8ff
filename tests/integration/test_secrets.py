"""Secrets stay on the server: no token or password in any page, widget, JSON, ICS, monitor text or log line."""

from __future__ import annotations

import asyncio
import base64
import logging
from datetime import UTC, datetime

import pytest
from starlette.testclient import TestClient

from backup_glance.demo import DemoLab
from backup_glance.logs import RedactSecrets
from backup_glance.runtime import build_runtime
from backup_glance.web import create_app

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
PATHS = (
    "/",
    "/api/v1/status",
    "/glance/status?column=full",
    "/glance/status?column=small&status=problems",
    "/glance/datastores",
    "/glance/calendar?view=upcoming",
    "/glance/calendar?view=week",
    "/glance/calendar?view=grid",
    "/calendar.ics",
    "/health",
    "/health/postgres",
    "/healthz",
)


def test_no_output_contains_a_secret(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with DemoLab(now=NOW) as lab:
        wrong = "wrong-but-still-secret-7f3a"
        text = lab.config_text().replace("${secret:backrest_password}", wrong)
        assert "\nserver:\n" in text
        text = text.replace("\nserver:\n", "\nserver:\n  auth_token: glance-bearer-token-123\n")
        config = lab.config(text)
        secrets = [*(lab.secret(name) for name in ("pve", "pbs", "databasement", "backrest")), wrong]
        secrets.append("glance-bearer-token-123")
        runtime = build_runtime(config, clock=lambda: NOW)
        loop = asyncio.new_event_loop()
        try:
            board = loop.run_until_complete(runtime.collector.poll_once())
        finally:
            loop.run_until_complete(runtime.collector.stop())
            loop.close()
    assert any(s.error and "HTTP 401" in s.error for s in board.sources)  # the wrong password was used
    client = TestClient(create_app(config, runtime.store))
    auth = {"Authorization": "Basic " + base64.b64encode(b"glance:glance-bearer-token-123").decode()}
    bodies = []
    for path in PATHS:
        response = client.get(path, headers=auth)
        assert response.status_code in (200, 503), (path, response.status_code)
        bodies.append(response.text)
        bodies.append(str(response.headers))
    assert "postgres" in bodies[2]  # the board really is in there
    outputs = [*bodies, repr(board), caplog.text, *(str(s.error) for s in board.sources)]
    for secret in secrets:
        assert not [out for out in outputs if secret in out], f"a secret leaked ({secret[:4]}...)"


def test_the_log_filter_redacts_a_secret_that_slipped_into_a_message() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "token %s rejected", ("hunter2-secret",), None)
    record.detail = "again hunter2-secret"
    RedactSecrets(["hunter2-secret"]).filter(record)
    assert record.getMessage() == "token ******** rejected"
    assert record.detail == "again ********"
