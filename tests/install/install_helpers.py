"""Shared by the install tests: the routes a client reaches, the deployment files, small process and HTTP helpers."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
SECRET_REFERENCE = re.compile(r"\$\{secret:([A-Za-z0-9_.-]+)\}")


@dataclass(frozen=True)
class Installed:
    """The session's wheel, the source copy it was built from, and the fresh venv it is installed in."""

    wheel: Path
    source: Path
    venv: Path

    @property
    def command(self) -> Path:
        return self.venv / "bin" / "backup-glance"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"


def open_temp_dir(prefix: str) -> Path:
    """A temporary folder other users can traverse (tempfile's are 0700)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


@dataclass(frozen=True)
class Endpoint:
    path: str
    status: int
    content_type: str


# Every route of the web app. The demo homelab has problems on purpose, so the monitor URLs answer 503: `scratch`
# is in no job at any hour (a failed job's service reads "running", and 200, while its daily retry runs).
ENDPOINTS = (
    Endpoint("/", 200, "text/html"),
    Endpoint("/api/v1/status", 200, "application/json"),
    Endpoint("/glance/status", 200, "text/html"),
    Endpoint("/glance/datastores", 200, "text/html"),
    Endpoint("/glance/calendar", 200, "text/html"),
    Endpoint("/glance/calendar?view=upcoming", 200, "text/html"),
    Endpoint("/glance/calendar?view=week", 200, "text/html"),
    Endpoint("/glance/calendar?view=grid", 200, "text/html"),
    Endpoint("/health", 503, "text/plain"),
    Endpoint("/health/scratch", 503, "text/plain"),
    Endpoint("/calendar.ics", 200, "text/calendar"),
    Endpoint("/metrics", 200, "text/plain"),
    Endpoint("/healthz", 200, "application/json"),
)


def is_route(path: str) -> bool:
    """A path the web app serves: one of ENDPOINTS (the install test fetches them all), or a service's monitor URL."""
    return path in {urlsplit(e.path).path for e in ENDPOINTS} or re.fullmatch(r"/health/[^/]+", path) is not None


def run_checked(command: Sequence[str | Path], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, check=False, timeout=300, **kwargs
    )
    assert result.returncode == 0, f"{command} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


def wait_until_polled(base_url: str, timeout_s: float = 30.0) -> dict[str, Any]:
    """The status document once every source has answered: before that, health is judged on no data at all."""
    deadline = time.monotonic() + timeout_s
    while True:
        status: dict[str, Any] = httpx.get(base_url + "/api/v1/status", timeout=5).json()
        if status["sources"] and all(source["last_success_at"] for source in status["sources"]):
            return status
        assert time.monotonic() < deadline, f"sources never answered: {status['sources']}"
        time.sleep(0.2)


def secret_names(config: Path) -> set[str]:
    """The ${secret:NAME} names backup-glance resolves in a config: those in values (not in comments)."""

    def strings(node: Any) -> list[str]:
        if isinstance(node, dict):
            return [s for value in node.values() for s in strings(value)]
        if isinstance(node, list):
            return [s for item in node for s in strings(item)]
        return [node] if isinstance(node, str) else []

    return {name for text in strings(yaml.safe_load(config.read_text())) for name in SECRET_REFERENCE.findall(text)}


def write_secrets(folder: Path, names: set[str], *, owner: int | None = None) -> dict[str, str]:
    """Dummy secret files as Docker mounts them, long enough for auth_token; returns name -> value."""
    folder.mkdir(parents=True, exist_ok=True)
    values = {name: f"dummy-{name}-0123456789abcdef" for name in sorted(names)}
    for name, value in values.items():
        path = folder / name
        path.write_text(value + "\n")
        path.chmod(0o400)
        if owner is not None:
            os.chown(path, owner, owner)
    return values


def tree(folder: Path, *, skip: tuple[str, ...] = (".git",)) -> set[str]:
    """Every file and folder below `folder`, relative; `skip` names top-level entries to leave out."""
    found = set()
    for where, dirs, files in os.walk(folder):
        if Path(where) == folder:
            dirs[:] = [d for d in dirs if d not in skip]
        for name in (*dirs, *files):
            found.add(str((Path(where) / name).relative_to(folder)))
    return found
