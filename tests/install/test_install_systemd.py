"""deploy/backup-glance.service: what the unit promises, checked without a running systemd."""

from __future__ import annotations

import shlex
import shutil
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import pytest
from install_helpers import DEPLOY, ENDPOINTS, REPO, Installed, secret_names, wait_until_polled
from serve_process import ServeProcess

from backup_glance.commands._common import DEFAULT_PATHS, EXIT_CONFIG
from backup_glance.config._variables import SECRETS_DIR_VARIABLE
from backup_glance.paths import DATA_VARIABLE
from backup_glance.serving import SHUTDOWN_GRACE_S, STOP_DEADLINE_S

UNIT = DEPLOY / "backup-glance.service"
SCRIPTS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Section -> key -> every assignment in order (systemd keys repeat: Environment=, LoadCredential=, ...)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line[0] in "#;"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        assert sep and current is not None, f"not KEY=VALUE inside a section: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


SERVICE = parse_unit(UNIT.read_text())["Service"]


def one(key: str) -> str:
    (value,) = SERVICE[key]
    return value


def environment() -> dict[str, str]:
    return dict(word.split("=", 1) for line in SERVICE["Environment"] for word in shlex.split(line))


def test_unit_serves_the_config_as_a_dynamic_user_with_state_in_its_state_directory() -> None:
    assert one("DynamicUser") == "yes"
    state = one("StateDirectory")
    assert environment()[DATA_VARIABLE] == f"%S/{state}"
    command = shlex.split(one("ExecStart"))
    assert Path(command[0]).is_absolute() and Path(command[0]).name in SCRIPTS
    assert command[1] == "serve"
    config = command[command.index("--config") + 1]
    # In the default search path too, so `backup-glance validate` finds it without --config.
    assert config in DEFAULT_PATHS and Path(config).parent == Path("/etc") / one("ConfigurationDirectory")
    assert one("Restart") == "on-failure" and str(EXIT_CONFIG) in one("RestartPreventExitStatus").split()
    assert int(one("TimeoutStopSec").removesuffix("s")) > STOP_DEADLINE_S + SHUTDOWN_GRACE_S


def test_unit_hands_the_config_its_secrets_as_credentials() -> None:
    assert environment()[SECRETS_DIR_VARIABLE] == "%d"
    credentials = dict(line.split(":", 1) for line in SERVICE["LoadCredential"])
    assert set(credentials) == secret_names(DEPLOY / "backup-glance.yaml")
    assert all(Path(source).is_absolute() for source in credentials.values())


def test_unit_is_hardened() -> None:
    expected = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes",
        "ProtectControlGroups": "yes",
        "RestrictNamespaces": "yes",
        "RestrictSUIDSGID": "yes",
        "LockPersonality": "yes",
        "MemoryDenyWriteExecute": "yes",
        "CapabilityBoundingSet": "",
    }
    assert {key: SERVICE.get(key, ["<missing>"])[-1] for key in expected} == expected
    assert set(one("RestrictAddressFamilies").split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert SERVICE["SystemCallFilter"][0] == "@system-service"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_every_line_of_the_unit(tmp_path: Path) -> None:
    # verify checks that ExecStart's program exists: point it at this venv's command.
    command = Path(sys.executable).parent / "backup-glance"
    assert command.is_file()
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/backup-glance", str(command)))
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    # It exits 0 even for unknown keys and bad values; what it says about the unit is what counts.
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if UNIT.name in line]
    assert (result.returncode, complaints) == (0, [])


# The kernel's W^X lock (Linux 6.3+, kept across exec), what MemoryDenyWriteExecute=yes sets up; a writable and
# executable mapping must then fail, or the lock is not in force.
MDWE_LOCK = """
import ctypes, mmap, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    sys.exit(f"no PR_SET_MDWE: errno {ctypes.get_errno()}")
try:
    mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    sys.exit("a writable and executable mapping was allowed")
except PermissionError:
    pass
"""


def test_demo_serves_under_memory_deny_write_execute(installed: Installed, tmp_path: Path) -> None:
    probe = subprocess.run([installed.python, "-c", MDWE_LOCK], capture_output=True, text=True, check=False)
    if "no PR_SET_MDWE" in probe.stderr:
        pytest.skip("the kernel has no PR_SET_MDWE (Linux 6.3+)")
    assert probe.returncode == 0, probe.stderr
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TZ": "UTC", "TMPDIR": str(tmp_path)}
    locked = [str(installed.python), "-c", MDWE_LOCK + "os.execv(sys.argv[1], sys.argv[1:])\n", str(installed.command)]
    with ServeProcess(command=locked, env=env) as serve:
        assert serve.url, serve.output
        wait_until_polled(serve.url)  # the simulators' TLS, the sources' HTTP parsing, pydantic, uvloop
        answers = {e.path: (httpx.get(serve.url + e.path, timeout=10).status_code, e.status) for e in ENDPOINTS}
        code, _ = serve.stop(signal.SIGTERM)
    assert {path: got for path, (got, expected) in answers.items() if got != expected} == {}
    assert code == 0, serve.output
