"""The command line as a user runs it: real processes, exit codes, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ENV_CLEAN = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "TZ": "UTC"}


def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "backup_glance", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**ENV_CLEAN, **(env or {})},
        check=False,
    )


def test_check_without_a_config_judges_the_demo_and_exits_critical(tmp_path: Path) -> None:
    result = run("check", "--json", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    document = json.loads(result.stdout)
    statuses = {s["id"]: s["status"] for s in document["services"]}
    assert statuses["postgres"] == "failed" and statuses["scratch"] == "unprotected"
    assert document["overall"] == "critical"
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()  # the demo keeps its history in a temporary folder


def test_check_prints_a_table_with_reasons(tmp_path: Path) -> None:
    result = run("check", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ["SERVICE", "STATUS"]
    assert any(line.startswith("CRIT") and " postgres " in line and "failed" in line for line in lines)
    assert any("is in no backup job" in line for line in lines)


def test_validate_lists_every_problem_with_file_line_and_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(
        "timezone: Mars/Olympus\n"
        "sources:\n"
        "  - name: pbs\n"
        "    type: pbs\n"
        "    url: https://pbs.lan:8007\n"
        "    token_id: a@pbs!b\n"
        "    token_secret: ${NOT_SET_ANYWHERE}\n"
    )
    result = run("validate", str(config))
    assert result.returncode == 2
    assert f"{config}:7: sources[0].token_secret: environment variable NOT_SET_ANYWHERE is not set" in result.stdout
    config.write_text("timezone: Mars/Olympus\nsources: []\nservices:\n  - id: x\n    grace: soon\n    colour: red\n")
    result = run("validate", str(config))
    assert result.returncode == 2
    assert f"{config}:1: timezone: unknown time zone 'Mars/Olympus'" in result.stdout
    assert f"{config}:5: services[0].grace: bad duration 'soon'" in result.stdout
    assert f"{config}:6: services[0].colour: unknown key" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_validate_accepts_a_good_file_and_reads_secrets_from_files(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cret-value\n")
    config = tmp_path / "good.yaml"
    config.write_text(
        "timezone: Europe/Vienna\n"
        "sources:\n"
        "  - {name: pbs, type: pbs, url: 'https://pbs.lan:8007', token_id: 'a@pbs!b',\n"
        f"     token_secret_file: {secret}, poll_interval: 2m}}\n"
        "services:\n  - {id: vault, guest: 101, grace: 2h}\n"
    )
    result = run("validate", str(config))
    assert result.returncode == 0, result.stdout
    assert "1 source(s)" in result.stdout and "s3cret" not in result.stdout


def test_a_missing_config_file_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    result = run("check", "--config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "cannot read the configuration file" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_port_out_of_range_is_a_usage_error() -> None:
    result = run("serve", "--port", "70000")
    assert result.returncode == 2
    assert "port 70000 is out of range (1-65535)" in result.stderr
    assert "Traceback" not in result.stderr
