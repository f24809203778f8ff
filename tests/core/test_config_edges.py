"""Values a configuration can hold that the shape alone lets through: numbers where text goes, true where a
number goes, numbers too long to print, schedules that never come, `after:` circles, lines a key could forge.
Each is found by `validate`, pointing at its key, instead of failing `serve` later (or never working)."""

from __future__ import annotations

import logging
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from backup_glance.config import parse_text
from backup_glance.config._notify import schedule_problem

PBS = "  - {name: pbs, type: pbs, url: 'https://pbs.lan:8007', token_id: 'a@pbs!b', token_secret: s}\n"


def problems(extra: str = "", services: str = "", sources: str = PBS) -> list[str]:
    text = f"timezone: UTC\nsources:\n{sources}" + (f"services:\n{services}" if services else "") + extra
    report = parse_text(text, filename="bg.yaml", env={})
    return [str(p) for p in report.problems]


class TestNumbersWhereTextGoes:
    """The model reads a number written where text goes as that text (`url: 42` is "42"): the checks of the text
    must read it so too, or `validate` passes what `serve` then refuses (or, for a URL, never uses)."""

    def test_a_number_as_quiet_hours_or_digest(self) -> None:
        found = problems("notify:\n  - {url: 'ntfy://ntfy.lan/b', quiet: 99, digest: 99}\n")
        assert found[0] == (
            "bg.yaml:5:32: notify[0].quiet: '99' is not a span of hours: write HH:MM-HH:MM, e.g. \"22:00-07:00\""
        )
        assert found[1].startswith("bg.yaml:5:43: notify[0].digest: bad minute '99' in '99' (allowed 0..59)")
        assert len(found) == 2

    def test_a_number_as_a_notify_or_ping_url(self) -> None:
        assert problems("notify:\n  - {url: 42}\nheartbeat: {url: 42, fail_url: 7}\n") == [
            "bg.yaml:5:6: notify[0].url: is not an Apprise URL: write SERVICE://..., e.g. ntfy://ntfy.lan/backups "
            "or mailto://user:pass@host",
            "bg.yaml:6:13: heartbeat.url: must start with http:// or https://, e.g. https://hc-ping.com/UUID",
            "bg.yaml:6:22: heartbeat.fail_url: must start with http:// or https://, e.g. https://hc-ping.com/UUID",
        ]

    def test_a_number_as_root_path_or_token_or_after(self) -> None:
        found = problems("server: {root_path: 42, auth_token: 123}\n", services="  - {id: a, guest: 1, after: [7]}\n")
        assert found == [
            "bg.yaml:5:31: services[0].after[0]: '7' names no service id and no source",
            "bg.yaml:6:10: server.root_path: must start with '/', e.g. /backups",
            "bg.yaml:6:25: server.auth_token: must be at least 16 characters (e.g. the output of 'openssl rand -hex "
            "24')",
        ]


class TestFlagsAreNoNumbers:
    @pytest.mark.parametrize(
        ("extra", "key"),
        [
            ("server: {port: true}\n", "server.port"),
            ("anomalies: {size_drop: true}\n", "anomalies.size_drop"),
            ("anomalies: {min_history: false}\n", "anomalies.min_history"),
        ],
    )
    def test_true_or_false_where_a_number_goes(self, extra: str, key: str) -> None:
        (found,) = problems(extra)
        assert f" {key}: must be a number, not " in found

    def test_a_guest_of_true(self) -> None:
        assert problems(services="  - {id: a, guest: true}\n") == [
            "bg.yaml:5:13: services[0].guest: must be a number, not true"
        ]

    def test_numbers_still_read_from_text(self) -> None:
        """A ${VAR} always arrives as text: "8080" is still a port."""
        report = parse_text("sources:\n" + PBS + "server: {port: '8080'}\n", filename="bg.yaml", env={})
        assert report.config is not None and report.config.server.port == 8080


class TestNumbersTooLongToPrint:
    def test_a_huge_hexadecimal_in_a_bounded_field(self) -> None:
        (found,) = problems("server: {port: 0x" + "f" * 900 + "}\n")
        assert found == "bg.yaml:4:10: server.port: must be at most 65535, not a number of about 1,084 digits"

    def test_a_number_longer_than_any_setting_takes(self) -> None:
        """Decimals past 4,300 digits Python refuses to read: the YAML reader stops long before."""
        assert problems(services="  - {id: a, guest: " + "9" * 5000 + "}\n") == [
            "bg.yaml:5:20: a number 5,000 characters long: no setting takes one that long (is a quote missing?)"
        ]


class TestUrls:
    @pytest.mark.parametrize(
        ("url", "problem"),
        [
            ("https://", "names no host, e.g. https://pbs.lan:8007"),
            ("https://pbs lan:8007", "holds a space or a control character (write a space in a path as %20)"),
            ("https://[::1:8007", "has a '[' without its ']', or no IPv6 address inside them: write one as [fd00::2]"),
            ("https://[pbs]/", "has a '[' without its ']', or no IPv6 address inside them: write one as [fd00::2]"),
            ("https://pbs.lan:0", "the port is not a number from 1 to 65535"),
        ],
    )
    def test_a_source_url_says_what_is_wrong(self, url: str, problem: str) -> None:
        source = f"  - {{name: pbs, type: pbs, url: '{url}', token_id: 'a@pbs!b', token_secret: s}}\n"
        (found,) = problems(sources=source)
        assert found.endswith(f"sources[0].url: '{url}': {problem}")

    def test_a_ping_url_is_checked_like_a_source_url_but_never_shown(self) -> None:
        found = problems("heartbeat: {url: 'https://hc.lan:0/ping/secret-uuid'}\n")
        assert found == ["bg.yaml:4:13: heartbeat.url: the port is not a number from 1 to 65535"]


class TestSchedules:
    NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)

    @pytest.mark.parametrize("expression", ["*-02-30 03:00", "2020-01-01 00:00", "2026-12-07 11:00"])
    def test_a_schedule_that_never_comes_again(self, expression: str) -> None:
        assert schedule_problem(expression, "proxmox", "UTC", now=self.NOW) == (
            "never comes: no run after now (a date that is past, or that no calendar has)"
        )

    def test_a_date_still_ahead_is_fine(self) -> None:
        assert schedule_problem("2026-12-07 13:00", "proxmox", "UTC", now=self.NOW) is None

    def test_a_digest_more_often_than_a_minute_is_a_flood(self) -> None:
        minute = timedelta(minutes=1)
        assert schedule_problem("*:*:0/30", "proxmox", "UTC", least_gap=minute, now=self.NOW) == (
            "comes again within 1 minute (a flood): write when it is due, e.g. mon 08:00"
        )
        assert schedule_problem("*:*", "proxmox", "UTC", least_gap=minute, now=self.NOW) is None

    def test_validate_names_the_key(self) -> None:
        restic = (
            "  - {name: r, type: restic, repository: /srv/r, password_env: RP, schedule: '*-02-30 03:00', "
            "dialect: proxmox}\n"
        )
        found = problems("notify:\n  - {url: 'ntfy://ntfy.lan/b', digest: '*:*:*'}\n", sources=PBS + restic)
        assert "bg.yaml:4:67: sources[1].schedule: never comes: no run after now" in "\n".join(found)
        assert "bg.yaml:6:32: notify[0].digest: comes again within 1 minute (a flood)" in "\n".join(found)


class TestAfterCircles:
    def test_a_service_waiting_for_itself(self) -> None:
        assert problems(services="  - {id: a, guest: 1, after: [a]}\n") == [
            "bg.yaml:5:31: services[0].after[0]: a service cannot wait for itself"
        ]

    def test_a_circle_is_named_once_where_it_closes(self) -> None:
        services = (
            "  - {id: a, guest: 1, after: [b]}\n  - {id: b, guest: 2, after: [x, c]}\n"
            "  - {id: c, guest: 3, after: [a]}\n  - {id: x, guest: 4}\n  - {id: y, guest: 5, after: [a]}\n"
        )
        assert problems(services=services) == [
            "bg.yaml:7:31: services[2].after[0]: after: goes round in a circle (a → b → c → a): none can ever go first"
        ]

    def test_a_long_chain_is_no_circle_and_no_recursion(self) -> None:
        services = "".join(f"  - {{id: s{i}, guest: {i + 1}, after: [s{i + 1}]}}\n" for i in range(3000))
        assert problems(services=services + "  - {id: s3000, guest: 9999}\n") == []


class TestPrintedProblems:
    def test_a_line_break_in_a_key_cannot_forge_a_problem_line(self, tmp_path: Path) -> None:
        config = tmp_path / "bg.yaml"
        config.write_text(
            "sources:\n" + PBS + '"evil\\nbg.yaml:1:1: fake": 1\n'
            "notify:\n  - {url: 'ntfy://ntfy.lan/b', digest: \"mon\\n08:00 x\"}\n"
        )
        done = subprocess.run(
            [sys.executable, "-m", "backup_glance", "validate", str(config)], capture_output=True, text=True
        )
        assert done.returncode == 2
        lines = done.stdout.splitlines()
        assert not any(line.startswith("bg.yaml:1:1") for line in lines)
        assert any("evil\\nbg.yaml:1:1: fake: unknown key" in line for line in lines)
        # the caret's lines are indented, and the caret stands under the line break it is about
        at = next(i for i, line in enumerate(lines) if "notify[0].digest" in line)
        assert lines[at + 1 : at + 3] == ["  mon\ufffd08:00 x", "     ^"]
        assert all(line.startswith(str(tmp_path)) or line.startswith("  ") for line in lines)


class TestTargetsNoSourceCanReport:
    """Warnings, not errors: a config may name its targets before its sources are added."""

    SOURCES = PBS + (
        "  - {name: pve-b, type: pve, url: 'https://pve.lan:8006', token_id: 'a@pve!b', token_secret: s,"
        " pbs_namespace: cluster-b}\n"
    )

    def warnings(self, services: str) -> list[str]:
        text = f"timezone: UTC\nsources:\n{self.SOURCES}services:\n{services}"
        report = parse_text(text, filename="bg.yaml", env={})
        assert report.config is not None  # they pass
        return [str(p) for p in report.warnings]

    def test_keys_of_every_kind(self) -> None:
        targets = [
            "guest:101",
            "guest:pve-b/102",
            "pbs-group:pbs/vm/7",
            "pbs-host:pbs/nas",
            "guest:nosuch/101",
            "bogus:1",
            "guest:x1",
            "pbs-host:pbz/x",
            "restic:r/x",
        ]
        found = self.warnings(f"  - {{id: a, targets: {targets}}}\n".replace("'", '"'))
        assert [line.split(": warning: ", 1)[1] for line in found] == [
            "no PVE source named 'nosuch' has a pbs_namespace",
            "'bogus' is no kind of target; write one of guest:VMID, guest:CLUSTER/VMID, pbs-host:SOURCE/ID, "
            "pbs-group:SOURCE/TYPE/ID, databasement:SOURCE/SERVER/DATABASE, backrest:SOURCE/PLAN, restic:SOURCE/NAME",
            "'x1' is no VMID (a whole number)",
            "no pbs source is named 'pbz' — did you mean 'pbs'?",
            "no restic source is named 'r'",
        ]
        assert [line.split(": ", 2)[1] for line in found] == [
            "services[0].targets[4]",
            "services[0].targets[5]",
            "services[0].targets[6]",
            "services[0].targets[7]",
            "services[0].targets[8]",
        ]

    def test_any_source_of_the_kind_is_written_as_a_star(self) -> None:
        assert self.warnings('  - {id: a, targets: ["pbs-host:*/nas"]}\n') == []

    def test_a_shorthand_without_its_kind_of_source(self) -> None:
        found = self.warnings("  - {id: a, database: mariadb/x}\n  - {id: b, plan: p}\n  - {id: c, restic: host}\n")
        assert [line.split(": ", 1)[1] for line in found] == [
            "services[0].database: warning: no databasement source is configured: nothing can report it",
            "services[1].plan: warning: no backrest source is configured: nothing can report it",
            "services[2].restic: warning: no restic source is configured: nothing can report it",
        ]

    def test_a_database_without_its_server(self) -> None:
        source = "  - {name: db, type: databasement, url: 'https://db.lan', token: t}\n"
        self.SOURCES += source
        assert [w.split(": ", 1)[1] for w in self.warnings("  - {id: a, database: nextcloud}\n")] == [
            "services[0].database: warning: write the server and the database, e.g. mariadb/nextcloud"
        ]


def test_a_misspelled_key_is_named_even_when_its_secret_cannot_be_read() -> None:
    """The unread secret was the only problem shown: the typo came to light only after the file was made."""
    source = "  - {name: pbs, type: pbs, url: 'https://pbs.lan:8007', token_id: 'a@pbs!b', tokn_secret: ${PBS}}\n"
    found = problems(sources=source)
    assert [line.split(": ", 2)[2] for line in found] == [
        "environment variable PBS is not set",
        "unknown key 'tokn_secret' — did you mean 'token_secret'?",
    ]


def test_a_missing_secret_file_says_where_secret_files_are_looked_for() -> None:
    """A first run with pipx: nothing said that secrets come from /run/secrets unless a variable says otherwise."""
    source = PBS.replace("token_secret: s", "token_secret: ${secret:nope}")
    (found,) = problems(sources=source)
    assert found.endswith(
        "secret 'nope': no file /run/secrets/nope (secret files are read from /run/secrets, the default; "
        "set BACKUP_GLANCE_SECRETS_DIR to a folder of your own)"
    )


def test_a_notify_password_that_ends_the_url_early_gets_a_hint_and_apprise_says_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Apprise's own warning named the refused URL with the password's first and last characters."""
    with caplog.at_level(logging.DEBUG):
        found = problems("notify:\n  - {url: 'mailto://me:pa#ss@example.org'}\n")
    (line,) = found
    assert line.endswith("must have it percent-encoded (%23 %3F %2F %40)")
    assert not [r for r in caplog.records if r.name.startswith("apprise")]
    assert "pa#ss" not in line and "p...s" not in caplog.text


def test_a_silence_that_has_ended_is_a_warning() -> None:
    services = (
        "  - {id: a, guest: 1, silence: {reason: 'moved', until: 2020-01-01}}\n"
        "  - {id: b, guest: 2, silence: {reason: 'later', until: 2999-01-01}}\n"
        "  - {id: c, guest: 3, silence: {reason: 'for good'}}\n"
    )
    text = f"timezone: Europe/Madrid\nsources:\n{PBS}services:\n{services}"
    report = parse_text(text, filename="bg.yaml", env={})
    assert report.config is not None
    assert [str(p) for p in report.warnings] == [
        "bg.yaml:5:50: services[0].silence.until: warning: ended 2020-01-01 00:00: it silences nothing; remove it"
    ]


def test_messages_spell_empty_true_and_false_as_the_file_does() -> None:
    """They said `not None` and `not True`, Python's words for what the file wrote as nothing and `true`."""
    found = problems("server: {host: true, port: }\n", sources=PBS.replace("}\n", ", poll_interval: }\n"))
    assert [line.split(": ", 2)[2] for line in found] == [
        "not a duration: null (empty); use a number with a unit, e.g. 30s, 5m, 2h, 14d, 1w or 1h30m",
        "must be text, not true",
        "must be a whole number, not null (empty)",
    ]


class TestShownNames:
    """A service's or a job's name and a silence's reason are shown as written: a character that hides itself or
    reorders what follows (U+202E shows "Nextcloud" + reason backwards) is refused, a folded line is one line."""

    def test_a_direction_override_or_a_bell_is_refused_where_it_is(self) -> None:
        found = problems(
            'jobs:\n  pbs/verify/v1: {name: "v\\a1"}\n', services='  - {id: a, guest: 1, name: "Next\\u202ecloud"}\n'
        )
        assert found == [
            "bg.yaml:5:23: services[0].name: 'Next\\u202ecloud' holds the character U+202E, which does not show as "
            "itself: the board would hide it, or show the text after it in another order; remove it",
            "bg.yaml:7:19: jobs.pbs/verify/v1.name: 'v\\x071' holds the character U+0007, which does not show as "
            "itself: the board would hide it, or show the text after it in another order; remove it",
        ]

    def test_a_folded_reason_is_one_line_and_a_long_name_is_refused(self) -> None:
        services = (
            "  - id: a\n    guest: 1\n    name: "
            + "n" * 201
            + "\n    silence:\n      reason: >\n        moved\n        to the new box\n"
        )
        found = problems(services=services)
        assert found == [
            f"bg.yaml:7:5: services[0].name: '{'n' * 56}... is 201 characters long; a name shown has at most 200"
        ]
        text = (
            "timezone: UTC\nsources:\n"
            + PBS
            + "services:\n  - id: a\n    guest: 1\n    silence:\n"
            + "      reason: >\n        moved\n        to\tthe new box\n"
        )
        report = parse_text(text, filename="bg.yaml", env={})
        assert not report.problems and report.config is not None
        assert report.config.services[0].silence is not None
        assert report.config.services[0].silence.reason == "moved to the new box"


class TestTheMachinesZone:
    """The display zone when `timezone:` is not set. A Docker `-v /etc/localtime:/etc/localtime:ro` makes the file a
    copy, not a link: the board then showed UTC while the machine and the log said Berlin."""

    @pytest.fixture
    def machine(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        from backup_glance.config import _schema

        monkeypatch.delenv("TZ", raising=False)
        monkeypatch.setattr(_schema, "LOCALTIME", tmp_path / "localtime")
        monkeypatch.setattr(_schema, "TIMEZONE_FILE", tmp_path / "timezone")
        return tmp_path

    def test_a_copied_zone_file_is_known_by_its_content(self, machine: Path) -> None:
        from backup_glance.config._schema import machine_zone

        (machine / "localtime").write_bytes(Path("/usr/share/zoneinfo/Europe/Berlin").read_bytes())
        found = machine_zone()
        assert found != "UTC" and ZoneInfo(found).utcoffset(datetime(2027, 1, 1)) == timedelta(hours=1), found
        (machine / "timezone").write_text("Europe/Berlin\n")
        assert machine_zone() == "Europe/Berlin", "Debian's /etc/timezone names it"

    def test_a_link_a_zone_variable_and_nothing(self, machine: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        from backup_glance.config._schema import machine_zone

        assert machine_zone() == "UTC"
        (machine / "localtime").symlink_to("/usr/share/zoneinfo/America/New_York")
        assert machine_zone() == "America/New_York"
        monkeypatch.setenv("TZ", ":Europe/Madrid")
        assert machine_zone() == "Europe/Madrid"
        monkeypatch.setenv("TZ", "Mars/Olympus")
        assert machine_zone() == "America/New_York"
