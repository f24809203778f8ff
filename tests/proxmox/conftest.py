"""Fixtures for the PBS/PVE tests: the demo lab pinned to a fixed NOW, served over real HTTPS on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from backup_glance.config import PbsSourceConfig, PveSourceConfig
from backup_glance.simulators._server import SimulatorServer
from backup_glance.simulators.pbs import create_pbs_app
from backup_glance.simulators.proxmox_lab import ProxmoxLab, demo_lab
from backup_glance.simulators.pve import create_pve_app

# 11:17:23 in Madrid: the 04:00 nightly run, the 05:00 prune and the 06:00 verify of today have all happened.
NOW = datetime(2025, 1, 15, 10, 17, 23, tzinfo=UTC)
PBS_TOKEN_ID = "monitor@pbs!glance"
PBS_SECRET = "d63e505a-e3ec-449a-9bc7-1da610d4ccde"
PVE_TOKEN_ID = "monitor@pve!glance"
PVE_SECRET = "5b0c7e1a-93f4-4d2b-8a61-0e2f4c9d7b33"


@dataclass
class Clock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR", "HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def lab(clock: Clock) -> ProxmoxLab:
    lab = demo_lab(NOW)
    lab.clock = clock
    return lab


@pytest.fixture
def pbs_server(lab: ProxmoxLab) -> Iterator[SimulatorServer]:
    app = create_pbs_app(lab, token_id=PBS_TOKEN_ID, token_secret=PBS_SECRET)
    with SimulatorServer(app) as server:
        yield server


@pytest.fixture
def pve_server(lab: ProxmoxLab) -> Iterator[SimulatorServer]:
    app = create_pve_app(lab, token_id=PVE_TOKEN_ID, token_secret=PVE_SECRET)
    with SimulatorServer(app) as server:
        yield server


def pbs_config(server: SimulatorServer, **overrides: Any) -> PbsSourceConfig:
    values: dict[str, Any] = {
        "name": "pbs1",
        "type": "pbs",
        "url": server.url,
        "token_id": PBS_TOKEN_ID,
        "token_secret": PBS_SECRET,
        "fingerprint": server.fingerprint,
        "timeout": "5s",
    }
    return PbsSourceConfig.model_validate(values | overrides)


def pve_config(server: SimulatorServer, **overrides: Any) -> PveSourceConfig:
    values: dict[str, Any] = {
        "name": "pve1",
        "type": "pve",
        "url": server.url,
        "token_id": PVE_TOKEN_ID,
        "token_secret": PVE_SECRET,
        "fingerprint": server.fingerprint,
        "timeout": "5s",
    }
    return PveSourceConfig.model_validate(values | overrides)
