"""`backup-glance schedule`: run in-process through argparse, and once as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from backup_glance.cli import build_parser


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(["schedule", *argv])
    code: int = args.func(args)
    return code


def test_it_prints_the_next_runs_like_systemd_analyze(capsys: pytest.CaptureFixture[str]) -> None:
    code = run(["mon..fri 02:00", "--tz", "Europe/Vienna", "--after", "2025-01-15T12:00", "-n", "3"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0] == "Expression:  mon..fri 02:00  (proxmox, Europe/Vienna)"
    assert out[1] == "Description: Mon–Fri at 02:00 (Europe/Vienna)"
    assert out[2:] == [
        "  1  Thu 2025-01-16 02:00:00 +01:00  in 14h",
        "  2  Fri 2025-01-17 02:00:00 +01:00  in 1d 14h",
        "  3  Mon 2025-01-20 02:00:00 +01:00  in 4d 14h",
    ]


def test_it_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["30 2 * * *", "--dialect", "cron", "--after", "1736942400", "-n", "2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == {
        "expression": "30 2 * * *",
        "dialect": "cron",
        "timezone": "UTC",
        "description": "At 02:30 every day (UTC)",
        "next": ["2025-01-16T02:30:00+00:00", "2025-01-17T02:30:00+00:00"],
    }


def test_it_says_when_there_are_no_more_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["2015-10-21", "--after", "2025-01-01T00:00Z"]) == 0
    assert "no runs after 2025-01-01T00:00:00+00:00" in capsys.readouterr().out


def test_the_first_years_print_with_four_digits(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["04:00", "--after", "0001-01-03T00:00Z", "--tz", "UTC", "-n", "1"]) == 0
    assert "  1  Wed 0001-01-03 04:00:00 +00:00  in 4h" in capsys.readouterr().out


@pytest.mark.parametrize(("after", "until"), [("2027-03-28T00:00", "in 3h"), ("2027-10-31T00:00", "in 5h")])
def test_the_time_until_a_run_counts_real_hours_across_a_dst_change(
    after: str, until: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two times of one zone subtract by wall clock in Python: 00:00 to 04:00 is four hours on no DST night."""
    assert run(["04:00", "--tz", "Europe/Vienna", "--after", after, "-n", "1"]) == 0
    assert capsys.readouterr().out.rstrip().endswith(until)


def test_a_bad_expression_exits_2_with_a_caret(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["mon,xyz 02:00"]) == 2
    err = capsys.readouterr().err
    assert "bad weekday 'xyz'" in err
    assert err.splitlines()[-2:] == ["  mon,xyz 02:00", "      ^"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["daily", "--tz", "Nowhere/Town"], "unknown time zone 'Nowhere/Town'"),
        (["daily", "--after", "yesterday"], "--after: not an ISO-8601 time or epoch seconds: 'yesterday'"),
        (  # the engine's range ends there: "no runs after 0001-01-01" would be a wrong answer
            ["daily", "--after", "0001-01-01T00:00"],
            "--after: '0001-01-01T00:00' is outside the years schedules are computed for (0001-01-03 to 9999-12-29)",
        ),
        (["daily", "--after", "9999-12-31T00:00Z"], "is outside the years schedules are computed for"),
    ],
)
def test_bad_options_exit_2_with_a_message(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(argv) == 2
    assert message in capsys.readouterr().err


def test_the_module_entry_point_works_as_a_subprocess() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "backup_glance", "schedule", "hourly", "--after", "2025-01-15T10:17:23Z", "-n", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Wed 2025-01-15 11:00:00 +00:00  in 42m 37s" in proc.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "backup_glance", "schedule", "12:60"], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "bad minute '60'" in bad.stderr


def test_schedule_starts_without_logging_the_web_server_or_the_sources() -> None:
    """`backup-glance schedule` is a quick tool (issue 12: under 80 ms): it imports only the schedule engine."""
    script = (
        "import sys\n"
        "from backup_glance.cli import main\n"
        "code = main(['schedule', '04:00', '--after', '2025-01-15T12:00', '--tz', 'UTC'])\n"
        "heavy = ('logging', 'pathlib', 'uvicorn', 'httpx', 'jinja2', 'backup_glance.sources', 'backup_glance.web')\n"
        "print(code, sorted(m for m in sys.modules if m in heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.stdout.splitlines()[-1] == "0 []", result.stdout + result.stderr


def test_a_reader_that_stops_reading_ends_it_quietly() -> None:
    """`backup-glance schedule daily -n 50 | head -3`: once the reader has gone, the rest is not wanted. Exit
    141, as a shell reports a command SIGPIPE ended, with nothing on stderr (no "internal error", no
    traceback at exit)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "backup_glance", "schedule", "daily", "-n", "50"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before it writes a line: nobody will read any
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141, err
    assert err == ""


@pytest.mark.parametrize("argv", [["schedule", "daily", "-n", "3"], ["validate", "/nonexistent/bg.yaml"]])
def test_a_closed_output_is_no_bug(argv: list[str]) -> None:
    """`backup-glance schedule daily >&-`: Python starts with no sys.stdout at all, and its flush was a bug report
    (exit 70). What would be printed goes nowhere; the exit code is the command's own."""
    done = subprocess.run(
        [sys.executable, "-m", "backup_glance", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=60,
        preexec_fn=lambda: os.close(1),
    )
    assert done.returncode == (0 if argv[0] == "schedule" else 2), done.stderr
    assert b"internal error" not in done.stderr and b"Traceback" not in done.stderr


def test_a_full_disk_under_the_output_is_said_so() -> None:
    with open("/dev/full", "wb") as full:
        done = subprocess.run(
            [sys.executable, "-m", "backup_glance", "schedule", "daily", "-n", "3"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    assert done.returncode == 74
    assert done.stderr == "backup-glance: cannot write the output: No space left on device\n"


def test_a_bug_in_a_command_without_a_log_shows_its_traceback_when_asked() -> None:
    """`schedule` sets up no logging: "run again with --log-level debug" printed the same one line again."""
    script = (
        "import sys\n"
        "from backup_glance.cli import main\n"
        "from backup_glance.commands import schedule\n"
        "def broken(_args):\n"
        "    raise ZeroDivisionError('the bug')\n"
        "schedule.run = broken\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )

    def stderr_of(*argv: str) -> str:
        done = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, timeout=60)
        assert done.returncode == 70, done.stderr
        return done.stderr

    assert "Traceback" not in stderr_of("schedule", "daily")
    err = stderr_of("schedule", "daily", "--log-level", "debug")
    assert "ZeroDivisionError: the bug" in err and err.endswith("report the traceback\n")
