"""A corpus of broken configuration files, each run through `validate`, `check` and `serve` as real processes.

Every one must end with its reason and exit 2 (the documented code for a bad configuration), print no
traceback, and `check`/`serve` must neither poll nor serve. Run as an unprivileged user when the tests run as
root, so "unreadable" means what it says.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

PBS = "  - {name: pbs, type: pbs, url: 'https://pbs.lan:8007', token_id: 'a@pbs!b', token_secret: s3cret}\n"
GOOD = "timezone: UTC\nsources:\n" + PBS


@dataclass(frozen=True)
class Case:
    name: str
    write: Callable[[Path], Path]  # makes the file (or folder) in the given folder, returns its path
    reason: str  # expected in the output


def text(name: str, body: str) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        path = folder / name
        path.write_text(body)
        path.chmod(0o644)
        return path

    return write


def raw(name: str, body: bytes) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(body)
        path.chmod(0o644)
        return path

    return write


def folder(folder_: Path) -> Path:
    path = folder_ / "config.d"
    path.mkdir()
    return path


def unreadable(folder_: Path) -> Path:
    path = folder_ / "secret.yaml"
    path.write_text(GOOD)
    path.chmod(0o600)
    return path


def with_ca(body: str) -> Callable[[Path], Path]:
    def write(folder_: Path) -> Path:
        (folder_ / "empty.pem").write_text("not a certificate\n")
        return text("ca.yaml", body.replace("CA_FILE", str(folder_ / "empty.pem")))(folder_)

    return write


CASES = [
    Case("not UTF-8", raw("latin1.yaml", GOOD.encode() + b"# caf\xe9\n"), "not UTF-8 text (byte 0xe9)"),
    Case("binary", raw("binary.yaml", b"\x7fELF\x02\x01\x01\x00\x00\x00"), "a control character here"),
    Case("empty", text("empty.yaml", ""), "sources: no sources: add at least one"),
    Case("a folder", folder, "is a folder, not a configuration file"),
    Case("unreadable", unreadable, "cannot read the configuration file: permission denied"),
    Case("missing", lambda f: f / "nope.yaml", "cannot read the configuration file: no such file"),
    Case("not YAML", text("bad.yaml", "sources: [\n  - name: x\n"), "not valid YAML"),
    Case("no sources", text("none.yaml", "timezone: UTC\nsources: []\n"), "no sources"),
    Case(
        "flow mapping with a missing variable",
        text("env.yaml", GOOD + "server: {host: 127.0.0.1, auth_token: ${NOT_SET_ANYWHERE}}\n"),
        "server.auth_token: environment variable NOT_SET_ANYWHERE is not set",
    ),
    Case(
        "missing ca_file",
        text("ca.yaml", GOOD.replace("token_secret: s3cret", "token_secret: s3cret, ca_file: /nope/ca.pem")),
        "sources[0].ca_file: cannot read /nope/ca.pem: no such file",
    ),
    Case(
        "ca_file without a certificate",
        with_ca(GOOD.replace("token_secret: s3cret", "token_secret: s3cret, ca_file: CA_FILE")),
        "holds no PEM certificate",
    ),
    Case(
        "restic schedule that does not parse",
        text(
            "restic.yaml",
            "sources:\n  - {name: o, type: restic, repository: /r, password_env: HOME, schedule: 'mon 02:0x', "
            "dialect: proxmox, restic_binary: /bin/true}\n",
        ),
        "sources[0].schedule:",
    ),
    Case(
        "missing restic password_file",
        text(
            "restic-pw.yaml",
            "sources:\n  - {name: o, type: restic, repository: /r, password_file: /nope/pw,"
            " restic_binary: /bin/true}\n",
        ),
        "sources[0].password_file: cannot read /nope/pw",
    ),
    Case(
        "a service naming no target", text("svc.yaml", GOOD + "services:\n  - {id: vault}\n"), "names nothing to watch"
    ),
    Case(
        "after naming a service and a source",
        text("after.yaml", GOOD + "services:\n  - {id: pbs, guest: 1}\n  - {id: f, plan: f, after: [pbs]}\n"),
        "write service:pbs or source:pbs",
    ),
    Case("a bad URL", text("url.yaml", GOOD.replace("https://pbs.lan:8007", "pbs.lan")), "must start with http://"),
    Case(
        "a bad fingerprint",
        text("fp.yaml", GOOD.replace("token_secret: s3cret", "token_secret: s3cret, fingerprint: 'ab:cd'")),
        "fingerprint must be 32 hex pairs",
    ),
    Case("a misspelt type", text("type.yaml", GOOD.replace("type: pbs", "type: pbss")), "did you mean 'pbs'?"),
    Case(
        "a missing secret file",
        text("secret.yaml", GOOD.replace("token_secret: s3cret", "token_secret: '${secret:nope}'")),
        "secret 'nope': cannot read",
    ),
    Case("a dangerous poll interval", text("poll.yaml", GOOD.replace("s3cret}", "s3cret, poll_interval: 0s}")), "10s"),
]


def as_user() -> list[str]:
    """Run as nobody when root: permission checks then mean what they say."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return []
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]


def run(args: list[str], cwd: Path, *, user: bool = True) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(cwd),
        "TZ": "UTC",
        "BACKUP_GLANCE_SECRETS_DIR": str(cwd / "secrets"),
        "BACKUP_GLANCE_DATA": str(cwd / "data"),
    }
    command = [*(as_user() if user else []), sys.executable, "-m", "backup_glance", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=cwd, env=env, check=False)


@pytest.fixture(scope="module")
def corpus() -> Iterator[dict[str, tuple[Path, Path]]]:
    # Not under pytest's tmp folder: that one is private to root, and the commands run as nobody.
    base = Path(tempfile.mkdtemp(prefix="bg-corpus-"))
    base.chmod(0o755)
    made = {}
    for index, case in enumerate(CASES):
        where = base / f"case{index}"
        where.mkdir(mode=0o755)
        made[case.name] = (case.write(where), where)
    yield made
    shutil.rmtree(base)


@pytest.mark.parametrize("command", ["validate", "check", "serve"])
def test_every_broken_config_ends_with_its_reason_and_exit_2(
    command: str, corpus: dict[str, tuple[Path, Path]]
) -> None:
    def one(case: Case) -> tuple[Case, subprocess.CompletedProcess[str]]:
        path, where = corpus[case.name]
        args = [command, str(path)] if command == "validate" else [command, "--config", str(path), "--port", "0"]
        if command == "check":
            args = args[:-2]
        return case, run(args, where)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(one, CASES))
    for case, result in results:
        output = result.stdout + result.stderr
        assert result.returncode == 2, (case.name, output)
        assert case.reason in output, (case.name, output)
        assert "Traceback" not in output, (case.name, output)
        if command != "validate":
            assert "serving on" not in output and "poll f" not in output, (case.name, output)
            assert result.stdout == "", (case.name, result.stdout)  # no board printed
            last = result.stderr.strip().splitlines()[-1]
            assert last.startswith("backup-glance: ") and ("nothing was started" in last or case.reason in last), (
                case.name,
                last,
            )


def test_warnings_print_but_validate_exits_0(tmp_path: Path) -> None:
    config = tmp_path / "warn.yaml"
    config.write_text(GOOD + "services:\n  - {id: a, guest: 101}\n  - {id: b, guest: 101}\n")
    config.chmod(0o600)
    result = run(["validate", str(config)], tmp_path, user=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning: service 'b' watches guest:101, which services[0] watches too" in result.stdout
    assert result.stdout.strip().endswith("1 warning")
