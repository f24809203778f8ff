"""The built-in demo homelab: the four simulators on loopback over real TLS, and a config that watches them.

`make run` with no configuration serves this, so a new user sees every state backup-glance knows — a failed
backup, a failed verification, a guest in no job, one covered only by a disabled job, a failed database dump,
a late Backrest plan and an ordering problem — before pointing it at a real homelab.
"""

from __future__ import annotations

import secrets
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from .config import Config, parse_config
from .simulators import backrest as backrest_sim
from .simulators import databasement as databasement_sim
from .simulators._server import SimulatorServer
from .simulators.pbs import create_pbs_app
from .simulators.proxmox_lab import demo_lab
from .simulators.pve import create_pve_app

DEMO_ZONE = "Europe/Madrid"
PBS_TOKEN_ID = "monitor@pbs!glance"
PVE_TOKEN_ID = "monitor@pve!glance"


class DemoLab:
    """`with DemoLab() as lab: config = lab.config()` — simulators run until the block ends."""

    def __init__(self, *, now: datetime | None = None, port: int = 8765) -> None:
        """`now` freezes the simulated servers' clocks there (tests); by default they follow the real clock."""
        self.now = now or datetime.now(UTC)
        self.port = port
        frozen = now
        self._secrets = {name: secrets.token_urlsafe(24) for name in ("pbs", "pve", "backrest")}
        self._dir = tempfile.TemporaryDirectory(prefix="backup-glance-demo-")
        lab = demo_lab(self.now)
        if frozen is not None:
            lab.clock = lambda: frozen
        self.lab = lab
        self.databasement = databasement_sim.demo_databasement(self.now)
        self.backrest = backrest_sim.demo_backrest(self.now)
        self.backrest.username = "monitor"
        self.backrest.password = self._secrets["backrest"]
        self.apps: dict[str, Any] = {
            "pbs": create_pbs_app(lab, token_id=PBS_TOKEN_ID, token_secret=self._secrets["pbs"]),
            "pve": create_pve_app(lab, token_id=PVE_TOKEN_ID, token_secret=self._secrets["pve"]),
            "databasement": databasement_sim.create_app(self.databasement),
            "backrest": backrest_sim.create_app(self.backrest, clock=(lambda: frozen) if frozen else None),
        }
        self.servers = {name: SimulatorServer(app) for name, app in self.apps.items()}

    def __enter__(self) -> DemoLab:
        started: list[SimulatorServer] = []
        try:
            for server in self.servers.values():
                started.append(server.start())
        except BaseException:
            for server in started:
                server.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for server in self.servers.values():
            server.stop()
        self._dir.cleanup()

    def config_text(self) -> str:
        """The YAML a user would write for this homelab (secrets as ${VAR}, fingerprints pinned)."""
        s = self.servers
        return f"""\
timezone: {DEMO_ZONE}
discover: true                  # configured services below, and everything else the sources report
sources:
  - name: pve
    type: pve
    url: {s["pve"].url}
    token_id: "{PVE_TOKEN_ID}"
    token_secret: ${{DEMO_PVE_TOKEN}}
    fingerprint: "{s["pve"].fingerprint}"
    poll_interval: 1m
  - name: pbs-main
    type: pbs
    url: {s["pbs"].url}
    token_id: "{PBS_TOKEN_ID}"
    token_secret: ${{DEMO_PBS_TOKEN}}
    fingerprint: "{s["pbs"].fingerprint}"
    poll_interval: 1m
  - name: databasement
    type: databasement
    url: {s["databasement"].url}
    token: ${{DEMO_DATABASEMENT_TOKEN}}
    fingerprint: "{s["databasement"].fingerprint}"
    timezone: {DEMO_ZONE}
    poll_interval: 2m
  - name: backrest
    type: backrest
    url: {s["backrest"].url}
    username: monitor
    password: ${{DEMO_BACKREST_PASSWORD}}
    fingerprint: "{s["backrest"].fingerprint}"
    timezone: {DEMO_ZONE}
    poll_interval: 2m
services:
  - id: vault
    name: Vault
    guest: 101
    grace: 2h
  - id: dump-folder
    name: Database dump folder
    plan: databasement-dumps
    after: [databasement]       # the 02:00 dumps must be done before Backrest snapshots them at 02:30
defaults: {{grace: 1h, lookback: 14d, max_age: 26h}}
history: {{path: {Path(self._dir.name) / "history.sqlite3"}, retention: 90d}}
server: {{host: 127.0.0.1, port: {self.port}}}
"""

    def environment(self) -> dict[str, str]:
        return {
            "DEMO_PVE_TOKEN": self._secrets["pve"],
            "DEMO_PBS_TOKEN": self._secrets["pbs"],
            "DEMO_DATABASEMENT_TOKEN": self.databasement.token,
            "DEMO_BACKREST_PASSWORD": self._secrets["backrest"],
        }

    def config(self, text: str | None = None) -> Config:
        """The demo config, or `text` (a variant of `config_text()`) with the demo's secrets."""
        return parse_config(text or self.config_text(), filename="<demo>", env=self.environment())
