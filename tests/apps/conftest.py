"""Shared fixtures for the Databasement, Backrest and restic source tests: fixed clocks, simulators over real
HTTPS on loopback, and a clean environment (no RESTIC_* leaking in from the developer's shell)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from backup_glance.simulators._server import SimulatorServer, free_port
from backup_glance.simulators.backrest import BackrestScenario, demo_backrest
from backup_glance.simulators.backrest import create_app as backrest_app
from backup_glance.simulators.databasement import DatabasementScenario, demo_databasement
from backup_glance.simulators.databasement import create_app as databasement_app

# A Thursday morning in summer (CEST, UTC+2): the 02:xx Madrid runs of today are at 00:xx UTC.
NOW = datetime(2026, 8, 6, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RESTIC_PASSWORD", "RESTIC_PASSWORD_FILE", "RESTIC_PASSWORD_COMMAND", "RESTIC_REPOSITORY"):
        monkeypatch.delenv(name, raising=False)
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR", "HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def databasement() -> Iterator[tuple[DatabasementScenario, SimulatorServer]]:
    scenario = demo_databasement(NOW)
    with SimulatorServer(databasement_app(scenario)) as server:
        yield scenario, server


@pytest.fixture
def backrest() -> Iterator[tuple[BackrestScenario, SimulatorServer]]:
    scenario = demo_backrest(NOW)
    scenario.username, scenario.password = "admin", "hunter2-backrest-login"
    with SimulatorServer(backrest_app(scenario, clock=lambda: NOW)) as server:
        yield scenario, server


@pytest.fixture
def closed_port() -> int:
    """A loopback port with nothing listening."""
    return free_port()
