"""The command line as a user runs it: real processes, exit codes, signals, logs, no tracebacks."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from serve_process import ServeProcess

from backup_glance import __version__

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


def pbs_config(tmp_path: Path, url: str, extra: str = "") -> Path:
    config = tmp_path / "bg.yaml"
    config.write_text(
        "timezone: UTC\nsources:\n"
        f"  - {{name: pbs-main, type: pbs, url: '{url}', token_id: 'a@pbs!b', token_secret: s3cret-token-value,"
        f" timeout: 2s, poll_interval: 30s}}\n"
        f"history: {{path: {tmp_path / 'history.sqlite3'}}}\n" + extra
    )
    config.chmod(0o600)
    return config


@pytest.fixture
def hanging_server() -> Iterator[str]:
    """A TCP server that accepts connections and never answers: a source stuck mid-request."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


class TestCheck:
    def test_without_a_config_it_judges_the_demo_and_exits_critical(self, tmp_path: Path) -> None:
        result = run("check", "--json", cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        document = json.loads(result.stdout)
        statuses = {s["id"]: s["status"] for s in document["services"]}
        # postgres fails every night in the demo, but reads fine while that night's run is underway (04:00 to
        # about 04:05 in Madrid): scratch is in no job at any hour.
        assert statuses["scratch"] == "unprotected" and statuses["postgres"] in ("failed", "ok", "running")
        assert document["overall"] == "critical"
        assert "Traceback" not in result.stderr
        assert not (tmp_path / "data").exists()  # the demo keeps its history in a temporary folder

    def test_it_prints_a_table_with_reasons(self, tmp_path: Path) -> None:
        result = run("check", cwd=tmp_path)
        assert result.returncode == 2
        lines = result.stdout.splitlines()
        assert lines[0].split()[:2] == ["SERVICE", "STATUS"]
        (scratch,) = [index for index, line in enumerate(lines) if " scratch " in line]
        assert lines[scratch].startswith("CRIT") and "unprotected" in lines[scratch]
        assert lines[scratch + 1].strip() == "- CT 120 (scratch) is in no backup job"  # its reason, under it

    def test_a_failing_source_is_logged_by_name_with_its_reason(self, tmp_path: Path) -> None:
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        closed.close()
        result = run("check", "--config", str(pbs_config(tmp_path, f"https://127.0.0.1:{port}")))
        assert result.returncode == 3, result.stdout + result.stderr  # nothing known: unknown
        (line,) = [line for line in result.stderr.splitlines() if "poll failed" in line]
        assert "source=pbs-main" in line and "error=\"pbs 'pbs-main': cannot connect" in line
        assert "s3cret-token-value" not in result.stdout + result.stderr

    def test_logs_can_be_json(self, tmp_path: Path) -> None:
        result = run("check", "--log-format", "json", "--config", str(pbs_config(tmp_path, "https://127.0.0.1:9")))
        events = [json.loads(line) for line in result.stderr.splitlines()]
        failed = [e for e in events if e["message"] == "poll failed"]
        assert failed and failed[0]["source"] == "pbs-main" and failed[0]["level"] == "warning"

    def test_logging_options_may_come_before_the_command(self, tmp_path: Path) -> None:
        """`backup-glance --log-format json check`, as most tools take it: the command's own default (text) must
        not hide the value given before it."""
        config = str(pbs_config(tmp_path, "https://127.0.0.1:9"))
        result = run("--log-format=json", "--log-level", "warning", "check", "--config", config)
        events = [json.loads(line) for line in result.stderr.splitlines()]
        assert events and {e["level"] for e in events} <= {"warning", "error"}, result.stderr
        assert any(e["message"] == "poll failed" for e in events)
        alone = run("--log-level", "debug")
        assert alone.returncode == 2
        assert "--log-level goes with a command, e.g. backup-glance --log-level debug serve" in alone.stderr

    def test_a_missing_config_file_is_a_message_not_a_traceback(self, tmp_path: Path) -> None:
        result = run("check", "--config", str(tmp_path / "nope.yaml"))
        assert result.returncode == 2
        assert "cannot read the configuration file: no such file" in result.stderr
        assert "Traceback" not in result.stderr


class TestValidate:
    def test_it_lists_every_problem_with_file_line_column_and_key(self, tmp_path: Path) -> None:
        config = tmp_path / "bad.yaml"
        config.write_text(
            "timezone: Mars/Olympus\n"
            "sources:\n"
            "  - name: pbs\n"
            "    type: pbs\n"
            "    url: https://pbs.lan:8007\n"
            "    token_id: a@pbs!b\n"
            "    token_secret: ${NOT_SET_ANYWHERE}\n"
            "services:\n  - id: x\n    grace: soon\n    colour: red\n"
        )
        result = run("validate", str(config))
        assert result.returncode == 2
        assert (
            f"{config}:7:5: sources[0].token_secret: environment variable NOT_SET_ANYWHERE is not set" in result.stdout
        )
        assert f"{config}:1:1: timezone: unknown time zone 'Mars/Olympus'" in result.stdout
        assert f"{config}:10:5: services[0].grace: not a duration: 'soon'" in result.stdout
        assert f"{config}:11:5: services[0].colour: unknown key 'colour'" in result.stdout
        assert f"{config}:9:5: services[0]: service 'x' names nothing to watch" in result.stdout
        assert "Traceback" not in result.stdout + result.stderr

    def test_it_accepts_a_good_file_and_reads_secrets_from_files(self, tmp_path: Path) -> None:
        secret = tmp_path / "token"
        secret.write_text("s3cret-value\n")
        secret.chmod(0o600)
        config = tmp_path / "good.yaml"
        config.write_text(
            "timezone: Europe/Vienna\n"
            "sources:\n"
            "  - {name: pbs, type: pbs, url: 'https://pbs.lan:8007', token_id: 'a@pbs!b',\n"
            f"     token_secret_file: {secret}, poll_interval: 2m}}\n"
            "services:\n  - {id: vault, guest: 101, grace: 2h}\n"
        )
        config.chmod(0o600)
        result = run("validate", str(config))
        assert result.returncode == 0, result.stdout
        assert "1 source(s)" in result.stdout and "s3cret" not in result.stdout
        for args, env in (
            (["validate", "--config", str(config)], {}),
            (["validate"], {"BACKUP_GLANCE_CONFIG": str(config)}),
        ):
            result = run(*args, env=env)
            assert result.returncode == 0 and f"{config}: ok" in result.stdout, (args, result.stdout + result.stderr)

    def test_without_any_file_it_says_how_to_give_one(self, tmp_path: Path) -> None:
        result = run("validate", cwd=tmp_path)
        assert result.returncode == 2
        assert "no configuration file found; give FILE, --config FILE or $BACKUP_GLANCE_CONFIG" in result.stderr

    def test_control_characters_in_problems_are_escaped(self, tmp_path: Path) -> None:
        config = tmp_path / "bad.yaml"
        config.write_text('sources: []\n"\\e[2J\\u0007": 1\n')
        result = run("validate", str(config))
        assert result.returncode == 2
        assert "\x1b" not in result.stdout and "\x07" not in result.stdout
        assert f"{config}:2:1: \\x1b[2J\\x07: unknown key '\\x1b[2J\\x07'" in result.stdout

    def test_it_honours_the_logging_options(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        import logging

        from backup_glance.cli import main
        from backup_glance.logs import JsonFormatter

        config = tmp_path / "bad.yaml"
        config.write_text("sources: []\n")
        root = logging.getLogger()
        monkeypatch.setattr(root, "handlers", list(root.handlers))
        monkeypatch.setattr(root, "level", root.level)
        assert main(["validate", "--log-format", "json", "--log-level", "error", str(config)]) == 2
        assert isinstance(root.handlers[0].formatter, JsonFormatter) and root.level == logging.ERROR

    def test_a_python_warning_is_a_log_line_in_our_format_with_secrets_redacted(self) -> None:
        script = (
            "import warnings\n"
            "from backup_glance.logs import setup_logging\n"
            "setup_logging(['hunter2-secret'], fmt='json')\n"
            "warnings.warn('coroutine never awaited, token hunter2-secret', RuntimeWarning)\n"
        )
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        (line,) = result.stderr.splitlines()
        event = json.loads(line)
        assert event["logger"] == "py.warnings" and event["level"] == "warning"
        assert "coroutine never awaited" in event["message"] and "hunter2-secret" not in line

    def test_nesting_beyond_the_stack_is_a_problem_and_exit_2(self, tmp_path: Path) -> None:
        config = tmp_path / "deep.yaml"
        config.write_text("sources: " + "[" * 600 + "]" * 600 + "\n")
        result = run("validate", str(config))
        assert result.returncode == 2, result.stderr
        assert f"{config}: values nested too deeply" in result.stdout
        assert "internal error" not in result.stderr


class TestLoggingEnvironment:
    @pytest.mark.parametrize(
        ("variable", "value", "choices"),
        [
            ("BACKUP_GLANCE_LOG_LEVEL", "verbose", "debug, info, warning, error"),
            ("BACKUP_GLANCE_LOG_FORMAT", "yaml", "text, json"),
        ],
    )
    def test_a_bad_value_is_a_usage_error_naming_the_variable(
        self, tmp_path: Path, variable: str, value: str, choices: str
    ) -> None:
        result = run("check", cwd=tmp_path, env={variable: value})
        assert result.returncode == 2, result.stderr
        assert f"environment variable {variable} is '{value}'; use one of {choices}" in result.stderr
        assert "internal error" not in result.stderr

    def test_case_and_empty_values_are_accepted(self, tmp_path: Path) -> None:
        config = pbs_config(tmp_path, "https://pbs.lan:8007")
        result = run(
            "validate", str(config), env={"BACKUP_GLANCE_LOG_LEVEL": "WARNING", "BACKUP_GLANCE_LOG_FORMAT": ""}
        )
        assert result.returncode == 0, result.stderr


class TestServeStartsAndStops:
    def test_sigterm_sigint_and_sighup_take_the_same_graceful_path(self, tmp_path: Path) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            with ServeProcess(env={"HOME": str(tmp_path), "TMPDIR": str(tmp_path)}) as serve:
                assert httpx.get(serve.url + "/healthz").status_code == 200
                demo_dirs = list(tmp_path.glob("backup-glance-demo-*"))
                assert len(demo_dirs) == 1
                code, seconds = serve.stop(signum)
            assert code == 0, serve.output
            assert seconds < 5, seconds
            assert not demo_dirs[0].exists(), "the demo's temporary folder was left behind"
            assert "Traceback" not in serve.output

    def test_under_nohup_a_hangup_leaves_it_running(self, tmp_path: Path) -> None:
        command = ["nohup", sys.executable, "-m", "backup_glance"]
        with ServeProcess(env={"HOME": str(tmp_path), "TMPDIR": str(tmp_path)}, command=command) as serve:
            assert serve.process is not None
            serve.process.send_signal(signal.SIGHUP)
            time.sleep(1.0)
            assert serve.process.poll() is None, serve.output
            assert httpx.get(serve.url + "/healthz").status_code == 200
            code, _seconds = serve.stop(signal.SIGTERM)
        assert code == 0, serve.output

    def test_history_is_checkpointed_and_closed_even_while_a_source_hangs(
        self, tmp_path: Path, hanging_server: str
    ) -> None:
        config = pbs_config(tmp_path, hanging_server)
        with ServeProcess(["--config", str(config)], env={"HOME": str(tmp_path)}) as serve:
            assert httpx.get(serve.url + "/api/v1/status").status_code == 200
            code, seconds = serve.stop(signal.SIGTERM)
        assert code == 0, serve.output
        assert seconds < 8, seconds
        assert (tmp_path / "history.sqlite3").exists()
        assert not (tmp_path / "history.sqlite3-wal").exists() and not (tmp_path / "history.sqlite3-shm").exists()
        sqlite3.connect(tmp_path / "history.sqlite3").execute("PRAGMA quick_check").fetchall()

    def test_a_port_in_use_is_one_line_naming_it(self, tmp_path: Path) -> None:
        taken = socket.create_server(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        try:
            result = run("serve", "--port", str(port), cwd=tmp_path, env={"HOME": str(tmp_path)})
        finally:
            taken.close()
        assert result.returncode == 4
        assert result.stderr.strip().splitlines()[-1] == (
            f"backup-glance: cannot listen on 127.0.0.1:{port}: the port is already in use (another backup-glance, "
            "or another program); stop it or choose another port with --port or server.port"
        )
        assert "serving on" not in result.stderr

    def test_an_unknown_host_is_one_line_naming_it(self, tmp_path: Path) -> None:
        result = run("serve", "--host", "no-such-host.invalid", cwd=tmp_path, env={"HOME": str(tmp_path)})
        assert result.returncode == 4
        assert "cannot listen on no-such-host.invalid:8765: unknown host name 'no-such-host.invalid'" in result.stderr
        assert "Traceback" not in result.stderr

    def test_a_port_out_of_range_is_a_usage_error(self) -> None:
        result = run("serve", "--port", "70000")
        assert result.returncode == 2
        assert "port 70000 is out of range" in result.stderr
        assert "Traceback" not in result.stderr

    def test_uvicorns_own_lines_use_our_format(self, tmp_path: Path) -> None:
        with ServeProcess(["--log-format", "json", "--log-level", "debug"], env={"HOME": str(tmp_path)}) as serve:
            serve.stop()
        events = [json.loads(line) for line in serve.lines]  # every line, whoever logged it, is our JSON
        assert any(e["logger"].startswith("uvicorn") for e in events), serve.output


class TestState:
    def test_history_defaults_to_the_user_state_folder_not_the_current_one(self, tmp_path: Path) -> None:
        config = (
            pbs_config(tmp_path, "https://127.0.0.1:9")
            .read_text()
            .replace(f"history: {{path: {tmp_path / 'history.sqlite3'}}}\n", "")
        )
        (tmp_path / "bg.yaml").write_text(config)
        home = tmp_path / "home"
        home.mkdir()
        result = run("check", "--config", str(tmp_path / "bg.yaml"), cwd=Path("/"), env={"HOME": str(home)})
        assert result.returncode == 3, result.stderr
        state = home / ".local" / "state" / "backup-glance"
        assert (state / "history.sqlite3").exists()
        assert oct(state.stat().st_mode & 0o777) == "0o700"
        data = tmp_path / "data"
        result = run("check", "--config", str(tmp_path / "bg.yaml"), env={"BACKUP_GLANCE_DATA": str(data)})
        assert (data / "history.sqlite3").exists(), result.stderr

    @pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run as nobody")
    def test_an_unprivileged_user_in_the_root_folder_gets_a_working_state_folder(self, tmp_path: Path) -> None:
        home = Path("/tmp") / f"bg-home-{os.getpid()}"
        home.mkdir(mode=0o777, exist_ok=True)
        home.chmod(0o777)
        try:
            result = subprocess.run(
                [
                    "setpriv",
                    "--reuid=65534",
                    "--regid=65534",
                    "--clear-groups",
                    "--",
                    sys.executable,
                    "-m",
                    "backup_glance",
                    "check",
                ],
                capture_output=True,
                text=True,
                timeout=120,
                cwd="/",
                env={**ENV_CLEAN, "HOME": str(home)},
                check=False,
            )
            assert result.returncode == 2, result.stderr  # the demo: critical
            assert "Permission denied" not in result.stderr and "Traceback" not in result.stderr
        finally:
            subprocess.run(["rm", "-rf", str(home)], check=False)


class TestVersionAndDemo:
    def test_version(self) -> None:
        result = run("--version")
        assert result.returncode == 0 and result.stdout.strip() == f"backup-glance {__version__}"

    @pytest.mark.parametrize(("command", "demo"), [("serve", True), ("check", True), ("validate", False)])
    def test_help_promises_the_demo_only_where_a_missing_config_runs_it(
        self, command: str, demo: bool, tmp_path: Path
    ) -> None:
        helped = " ".join(run(command, "--help", env={"COLUMNS": "1000"}).stdout.split())
        assert ("none found: the built-in demo homelab" in helped) is demo, helped
        if not demo:  # what its help says instead: it stops and asks for one
            assert "none found: an error" in helped
            stopped = run(command, cwd=tmp_path)
            assert stopped.returncode == 2 and "no configuration file found" in stopped.stderr, stopped.stderr
        result = run("demo", "--print-config", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "DEMO_" not in result.stdout and "${secret:pbs_token}" in result.stdout
        assert "serving on" not in result.stderr
        secrets = tmp_path / "secrets"
        secrets.mkdir(mode=0o700)  # as the README makes it: its files are then nobody else's to read
        for name in ("pve_token", "pbs_token", "databasement_token", "backrest_password"):
            (secrets / name).write_text(f"{name}-value\n")
        config = tmp_path / "starter.yaml"
        config.write_text(result.stdout)
        config.chmod(0o600)
        checked = run("validate", str(config), env={"BACKUP_GLANCE_SECRETS_DIR": str(secrets)})
        assert checked.returncode == 0, checked.stdout
        assert "warning" not in checked.stdout
