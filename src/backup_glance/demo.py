"""The built-in demo homelab: the four simulators on loopback over real TLS, and a config that watches them.

`make run` with no configuration serves this, so a new user sees every state backup-glance knows — a failed
backup, a failed verification, a guest in no job, one covered only by a disabled job, a failed database dump,
a late Backrest plan and an ordering problem — before pointing it at a real homelab.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from .config import Config, parse_config
from .config._variables import SECRETS_DIR_VARIABLE
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
        lab = demo_lab(self.now, protection=True)
        if frozen is not None:
            lab.clock = lambda: frozen
        self.lab = lab
        self.databasement = databasement_sim.demo_databasement(self.now)
        databasement_sim.add_protection_demo(self.databasement)
        self.backrest = backrest_sim.demo_backrest(self.now)
        backrest_sim.add_protection_demo(self.backrest, self.now)
        self.backrest.username = "monitor"
        self.backrest.password = self._secrets["backrest"]
        self.apps: dict[str, Any] = {
            "pbs": create_pbs_app(lab, token_id=PBS_TOKEN_ID, token_secret=self._secrets["pbs"]),
            "pve": create_pve_app(lab, token_id=PVE_TOKEN_ID, token_secret=self._secrets["pve"]),
            "databasement": databasement_sim.create_app(self.databasement),
            "backrest": backrest_sim.create_app(self.backrest, clock=(lambda: frozen) if frozen else None),
        }
        self.servers = {name: SimulatorServer(app) for name, app in self.apps.items()}
        # The config reads its secrets the way a real deployment does: ${secret:NAME} files, here in the temp folder.
        self._secrets_dir = Path(self._dir.name) / "secrets"
        self._secrets_dir.mkdir(mode=0o700)
        values = {**self._secrets, "databasement": self.databasement.token}
        for name, (file, _) in SECRET_FILES.items():
            path = self._secrets_dir / file
            path.touch(mode=0o600)
            path.write_text(values[name] + "\n")

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
        """The demo's configuration: `starter_config()` pointed at the simulators, with their pinned certificates,
        and history kept in the demo's temporary folder."""
        s = self.servers
        return starter_config(
            urls={name: server.url for name, server in s.items()},
            fingerprints={name: server.fingerprint for name, server in s.items()},
            history_path=str(Path(self._dir.name) / "history.sqlite3"),
            port=self.port,
        )

    def secret(self, source: str) -> str:
        """The secret the demo's config reads for `source` ("pve", "pbs", "databasement", "backrest")."""
        return (self._secrets_dir / SECRET_FILES[source][0]).read_text().rstrip("\n")

    def environment(self) -> dict[str, str]:
        """The environment the demo's config is read with: its secrets folder instead of /run/secrets."""
        return {**os.environ, SECRETS_DIR_VARIABLE: str(self._secrets_dir)}

    def config(self, text: str | None = None) -> Config:
        """The demo config, or `text` (a variant of `config_text()`) with the demo's secrets."""
        return parse_config(text or self.config_text(), filename="<demo>", env=self.environment())


# Where each demo source's secret goes, what it is, and the source it belongs to.
SECRET_FILES = {
    "pve": ("pve_token", f"the secret of the PVE API token {PVE_TOKEN_ID} (role PVEAuditor on /)"),
    "pbs": ("pbs_token", f"the secret of the PBS API token {PBS_TOKEN_ID} (role Audit on /)"),
    "databasement": ("databasement_token", "a Databasement API token (Sanctum), read access"),
    "backrest": ("backrest_password", "the password of the Backrest user 'monitor'"),
}
EXAMPLE_URLS = {
    "pve": "https://pve.lan:8006",
    "pbs": "https://pbs.lan:8007",
    "databasement": "https://databasement.lan",
    "backrest": "http://nas.lan:9898",
}


def starter_config(
    *,
    urls: dict[str, str] | None = None,
    fingerprints: Mapping[str, str | None] | None = None,
    history_path: str | None = None,
    port: int = 8765,
) -> str:
    """The demo homelab's configuration as a starting point for a real one (`demo --print-config`).

    Secrets come from files (`${secret:NAME}` reads /run/secrets/NAME, or $BACKUP_GLANCE_SECRETS_DIR/NAME);
    the comments say what each file holds. Without `urls`, the addresses are examples to replace."""
    urls = urls or EXAMPLE_URLS
    example = fingerprints is None

    def pin(name: str, hint: str) -> str:
        if fingerprints is not None:  # the simulators': pinned when they speak TLS
            return f'    fingerprint: "{fingerprints[name]}"\n' if fingerprints.get(name) else ""
        return f'    # fingerprint: "64:d3:ff:..."   # pin a self-signed certificate: {hint}\n' if hint else ""

    def secret(name: str) -> str:
        file, what = SECRET_FILES[name]
        note = f"   # {what}" if example else ""
        return f"${{secret:{file}}}{note}"

    header = (
        "# backup-glance configuration — see README.md.\n"
        "# Secrets are read from files: ${secret:NAME} is /run/secrets/NAME (Docker secrets), or\n"
        "# $BACKUP_GLANCE_SECRETS_DIR/NAME. Check this file with: backup-glance validate FILE\n"
        if example
        else ""
    )
    history = f"history: {{path: {history_path}, retention: 90d}}\n" if history_path else ""
    history = (
        history
        or "# history: {path: /var/lib/backup-glance/history.sqlite3, retention: 90d}   # default: the state folder\n"
    )
    auth = (
        ""
        if not example
        else "  # auth_token: ${secret:backup_glance_token}   # at least 16 characters; needed beyond localhost\n"
    )
    return f"""\
{header}timezone: {DEMO_ZONE}
discover: true                  # configured services below, and everything else the sources report
sources:
  - name: pve
    type: pve
    url: {urls["pve"]}
    token_id: "{PVE_TOKEN_ID}"
    token_secret: {secret("pve")}
{pin("pve", "pvenode cert info")}    poll_interval: 1m
  - name: pbs-main
    type: pbs
    url: {urls["pbs"]}
    token_id: "{PBS_TOKEN_ID}"
    token_secret: {secret("pbs")}
{pin("pbs", "proxmox-backup-manager cert info")}    poll_interval: 1m
  - name: databasement
    type: databasement
    url: {urls["databasement"]}
    token: {secret("databasement")}
{pin("databasement", "")}    timezone: {DEMO_ZONE}
    poll_interval: 2m
  - name: backrest
    type: backrest
    url: {urls["backrest"]}
    username: monitor
    password: {secret("backrest")}
{pin("backrest", "")}    timezone: {DEMO_ZONE}
    poll_interval: 2m
services:
  - id: vault
    name: Vault
    guest: 101
    grace: 2h
    # a second copy, offsite, at most 2 days behind, encrypted (pbs-main pushes it to its remote "offsite")
    protection: {{copies: 2, offsite: 1, offsite_lag: 2d, encrypted_offsite: true}}
  - id: glance
    name: glance
    guest: 106
    protection: {{copies: 2, offsite: 1, offsite_lag: 2d, encrypted_offsite: true}}
  - id: ntfy
    name: ntfy
    guest: 111
    protection: {{copies: 2, offsite: 1, offsite_lag: 2d, encrypted_offsite: true}}
  - id: n8n
    name: n8n
    guest: 110
    protection: {{copies: 2, offsite: 1}}
  - id: vault-backrest
    name: vault (Backrest)
    plan: vault
    protection: {{restore_test: 90d}}    # restore a file from it now and then
  - id: vault-on-postgres
    name: vault on postgres
    database: postgres/vault
    protection: {{restore_test: 30d}}    # Databasement's weekly scheduled restore
  - id: nas-archive
    name: NAS archive
    targets: ["pbs-host:pbs-main/nas-archive"]    # a host backup, every two months
    max_age: 75d
  - id: dump-folder
    name: Database dump folder
    plan: databasement-dumps
    after: [source:databasement]    # the 02:00 dumps must be done before Backrest snapshots them at 02:30
defaults: {{grace: 1h, lookback: 14d, max_age: 26h}}
anomalies: {{size_drop: 0.5, min_history: 7}}    # on by default: a dump that shrank, a run far longer
{history}server:
  host: 127.0.0.1
  port: {port}
{auth}"""
