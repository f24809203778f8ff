"""What a configuration means, checked before anything polls: references, files, schedules, safe values."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from backup_glance.config import parse_text, read_config

PBS = "  - {name: pbs, type: pbs, url: 'https://pbs.lan:8007', token_id: 'a@pbs!b', token_secret: s}\n"


@pytest.fixture
def open_path() -> Iterator[Path]:
    """A folder every user can pass through (pytest's own are below a 0700 folder: nothing in them is readable by
    others, whatever its mode)."""
    path = Path(tempfile.mkdtemp(prefix="bg-modes-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def findings(sources: str = PBS, services: str = "", extra: str = "", env: dict[str, str] | None = None) -> list[str]:
    text = f"timezone: UTC\nsources:\n{sources}" + (f"services:\n{services}" if services else "") + extra
    return [str(p) for p in parse_text(text, filename="bg.yaml", env=env or {}).problems]


def test_a_secret_with_a_space_at_an_end_is_warned_about_and_not_shown(tmp_path: Path) -> None:
    """Pasted with a space into its file, it passed `validate`, and every poll met a 401."""
    secret = tmp_path / "pbs.token"
    secret.write_text("d63e505a-e3ec \n")
    secret.chmod(0o600)
    source = PBS.replace("token_secret: s", f"token_secret_file: {secret}")
    (warning,) = findings(sources=source)
    assert warning.endswith("sources[0].token_secret: warning: starts or ends with a space or tab: is that part of it?")
    assert "d63e505a" not in warning
    assert findings() == []


def test_plain_http_to_proxmox_is_warned_about() -> None:
    """Its API speaks HTTPS only: a poll over http:// met only "Server disconnected without sending a response"."""
    assert findings(sources=PBS.replace("https://pbs.lan:8007", "http://pbs.lan:8007")) == [
        "bg.yaml:3:28: sources[0].url: warning: Proxmox answers HTTPS only (https://...:8007); http:// works only "
        "through a proxy that adds TLS"
    ]
    assert findings() == []


class TestReferences:
    def test_no_sources_at_all_is_an_error(self) -> None:
        assert findings(sources="  []\n") == [
            "bg.yaml:2:1: sources: no sources: add at least one under sources: (pbs, pve, ...)"
        ]

    def test_every_service_names_a_target(self) -> None:
        assert findings(services="  - id: vault\n    name: Vault\n") == [
            "bg.yaml:5:5: services[0]: service 'vault' names nothing to watch: "
            "add guest:, database:, plan:, restic: or targets:"
        ]

    def test_two_services_claiming_one_guest_is_a_warning_only(self) -> None:
        text = "timezone: UTC\nsources:\n" + PBS + "services:\n  - {id: a, guest: 101}\n  - {id: b, guest: 101}\n"
        report = parse_text(text, filename="bg.yaml", env={})
        assert report.config is not None
        assert [str(p) for p in report.warnings] == [
            "bg.yaml:6:5: services[1]: warning: service 'b' watches guest:101, which services[0] watches too"
        ]

    def test_after_that_is_both_a_service_and_a_source_must_say_which(self) -> None:
        services = "  - {id: pbs, guest: 1}\n  - {id: files, guest: 2222, after: [pbs]}\n"
        assert findings(services=services) == [
            "bg.yaml:6:38: services[1].after[0]: 'pbs' is both a service and a source: write service:pbs or source:pbs"
        ]
        services = "  - {id: pbs, guest: 1}\n  - {id: files, guest: 2222, after: ['service:pbs', 'source:pbs']}\n"
        assert findings(services=services) == []

    def test_after_naming_nothing_suggests_a_name(self) -> None:
        services = "  - {id: database, guest: 1}\n  - {id: files, guest: 2222, after: [databse, 'source:pbx']}\n"
        assert findings(services=services) == [
            "bg.yaml:6:38: services[1].after[0]: 'databse' names no service id and no source "
            "— did you mean 'database'?",
            "bg.yaml:6:47: services[1].after[1]: no source is named 'pbx' — did you mean 'pbs'?",
        ]

    def test_duplicate_names_point_at_the_second(self) -> None:
        assert findings(sources=PBS + PBS) == [
            "bg.yaml:4:6: sources[1].name: two sources are named 'pbs' (also sources[0])"
        ]

    def test_a_service_restricted_to_an_unknown_source(self) -> None:
        assert findings(services="  - {id: a, plan: p, source: backrst}\n") == [
            "bg.yaml:5:22: services[0].source: no source is named 'backrst'"
        ]


class TestFiles:
    def test_ca_file_must_hold_a_certificate(self, tmp_path: Path) -> None:
        ca = trustme.CA()
        good = tmp_path / "ca.pem"
        ca.cert_pem.write_to_path(str(good))
        (tmp_path / "empty.pem").write_text("no certificate here\n")
        source = (
            "  - {name: pbs, type: pbs, url: 'https://pbs.lan:8007', token_id: 'a@pbs!t', "
            "token_secret: s, ca_file: %s}\n"
        )
        assert findings(sources=source % good) == []
        assert findings(sources=source % (tmp_path / "empty.pem")) == [
            f"bg.yaml:3:95: sources[0].ca_file: {tmp_path}/empty.pem holds no PEM certificate "
            "(expected -----BEGIN CERTIFICATE-----)"
        ]
        assert findings(sources=source % (tmp_path / "missing.pem")) == [
            f"bg.yaml:3:95: sources[0].ca_file: cannot read {tmp_path}/missing.pem: no such file"
        ]

    def test_restic_schedule_and_password_are_checked(self, tmp_path: Path) -> None:
        restic = (
            "  - name: offsite\n    type: restic\n    repository: /srv/restic\n"
            f"    password_file: {tmp_path / 'pw'}\n    schedule: '30 3 * *'\n    restic_binary: /bin/true\n"
        )
        assert findings(sources=restic) == [
            f"bg.yaml:6:5: sources[0].password_file: cannot read {tmp_path}/pw: no such file or directory",
            "bg.yaml:7:5: sources[0].schedule: a cron expression has 5 fields (minute hour day-of-month month "
            "day-of-week), got 4 at position 8\n  30 3 * *\n          ^",
        ]

    def test_a_restic_password_file_restic_could_read_only_once_is_refused(self, tmp_path: Path) -> None:
        os.mkfifo(tmp_path / "pw")
        pipe = tmp_path / "pw"
        restic = f"  - {{name: o, type: restic, repository: /r, password_file: {pipe}, restic_binary: /bin/true}}\n"
        (finding,) = findings(sources=restic)
        assert finding.endswith(
            f"sources[0].password_file: {tmp_path}/pw is not a regular file; restic reads it at every poll "
            "(for a pipe or a password manager, set password_env)"
        )

    def test_a_restic_password_variable_must_be_set(self) -> None:
        restic = "  - {name: o, type: restic, repository: /r, password_env: RESTIC_PW, restic_binary: /bin/true}\n"
        assert findings(sources=restic) == [
            "bg.yaml:3:45: sources[0].password_env: environment variable RESTIC_PW is not set"
        ]
        assert findings(sources=restic, env={"RESTIC_PW": "x"}) == []

    @pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
    def test_an_unreadable_secret_file_is_named(self, tmp_path: Path) -> None:
        secret = tmp_path / "t"
        secret.write_text("x")
        secret.chmod(0)
        source = (
            f"  - {{name: pbs, type: pbs, url: 'https://pbs.lan', token_id: 'a@pbs!t', token_secret_file: {secret}}}\n"
        )
        assert any("permission denied" in f for f in findings(sources=source))

    def test_secret_files_readable_by_others_are_warned_about(self, open_path: Path) -> None:
        tmp_path = open_path
        secret = tmp_path / "token"
        secret.write_text("x")
        secret.chmod(0o644)
        config = tmp_path / "bg.yaml"
        config.write_text(
            "sources:\n"
            f"  - {{name: pbs, type: pbs, url: 'https://pbs.lan', token_id: 'a@pbs!t', token_secret_file: {secret}}}\n"
        )
        config.chmod(0o644)  # only references: no more secret than a README, and a DynamicUser must read it
        report = read_config(config, env={})
        assert report.config is not None
        assert [p.message for p in report.warnings] == [f"{secret} can be read by other users (mode 644); chmod 600 it"]
        secret.chmod(0o600)
        assert read_config(config, env={}).warnings == []

    def test_a_config_holding_a_secret_itself_is_warned_about_when_others_can_read_it(self, open_path: Path) -> None:
        config = open_path / "bg.yaml"
        config.write_text(
            "sources:\n  - {name: pbs, type: pbs, url: 'https://pbs.lan', token_id: 'a@pbs!t', token_secret: literal}\n"
            "server: {auth_token: '${TOKEN}'}\n"
        )
        config.chmod(0o640)
        report = read_config(config, env={"TOKEN": "t" * 20})
        assert [p.message for p in report.warnings] == [
            f"{config} can be read by other users (mode 640); chmod 600 it — it holds secrets "
            "(sources[0].token_secret); or move them to ${secret:NAME} files"
        ]
        config.chmod(0o600)
        assert read_config(config, env={"TOKEN": "t" * 20}).warnings == []

    def test_files_in_a_secrets_folder_others_cannot_enter_are_not_warned_about(self, open_path: Path) -> None:
        folder = open_path / "secrets"
        folder.mkdir(mode=0o700)
        (folder / "pbs").write_text("x")
        (folder / "pbs").chmod(0o444)
        source = (
            "  - {name: pbs, type: pbs, url: 'https://pbs.lan', token_id: 'a@pbs!t', token_secret: '${secret:pbs}'}\n"
        )
        env = {"BACKUP_GLANCE_SECRETS_DIR": str(folder)}
        assert findings(sources=source, env=env) == []
        folder.chmod(0o755)  # e.g. a host folder made with a plain mkdir: every user reaches the file
        assert findings(sources=source, env=env) == [
            f"bg.yaml:3:73: sources[0].token_secret: warning: {folder / 'pbs'} can be read by other users (mode 444); "
            "chmod 600 it"
        ]

    def test_a_secret_file_below_any_folder_others_cannot_enter_is_not_warned_about(self, open_path: Path) -> None:
        folder = open_path / "etc" / "backup-glance"
        folder.mkdir(parents=True)
        secret = folder / "pbs.token"
        secret.write_text("x")
        source = (
            f"  - {{name: pbs, type: pbs, url: 'https://pbs.lan', token_id: 'a@pbs!t', token_secret_file: {secret}}}\n"
        )

        def warned() -> list[str]:
            return [f.split(": warning: ")[1] for f in findings(sources=source) if ": warning: " in f]

        secret.chmod(0o644)
        assert warned() == [f"{secret} can be read by other users (mode 644); chmod 600 it"]
        (open_path / "etc").chmod(0o700)  # not the secrets folder, yet nobody else gets to the file
        assert warned() == []
        (open_path / "etc").chmod(0o710)  # the group passes, others do not: only the group's bit counts
        secret.chmod(0o604)
        assert warned() == []
        secret.chmod(0o640)
        assert warned() == [f"{secret} can be read by other users (mode 640); chmod 600 it"]
        (open_path / "etc").chmod(0o755)


class TestHeaderCredentials:
    """Tokens travel in HTTP headers: one that cannot crashed `check` and `serve` (non-ASCII), or had its
    whole value quoted by the HTTP library's refusal, onto the board (a newline left in a secret file)."""

    def test_a_secret_a_header_cannot_carry_is_refused_without_showing_it(self, tmp_path: Path) -> None:
        secret = tmp_path / "token"
        secret.write_text("SuperSecretTok3n\nX\n")
        sources = f"  - {{name: db, type: databasement, url: 'https://db.lan', token_file: {secret}}}\n"
        (finding,) = findings(sources=sources)
        assert finding == (
            "bg.yaml:3:5: sources[0].token: the secret holds a line break (character 17): the HTTP header it is "
            "sent in carries printable ASCII only"
        )

    @pytest.mark.parametrize(
        ("fields", "key", "shown"),
        [
            ("token_id: 'mönitor@pbs!glance', token_secret: s", "token_id", "'mönitor@pbs!glance' holds a non-ASCII"),
            ("token_id: 'a@pbs!b', token_secret: \"s\\tx\"", "token_secret", "the secret holds a control"),
            ("token_id: 'a@pbs!b', token_secret: tök€n", "token_secret", "the secret holds a non-ASCII"),
        ],
    )
    def test_token_ids_and_secrets_are_printable_ascii(self, fields: str, key: str, shown: str) -> None:
        (finding,) = findings(sources=f"  - {{name: pbs, type: pbs, url: 'https://pbs.lan', {fields}}}\n")
        where, said = finding.split(": ", 1)
        assert where.startswith("bg.yaml:3:") and said.startswith(f"sources[0].{key}: {shown}")
        assert "tök€n" not in finding

    def test_an_organization_id_is_printable_ascii_too(self) -> None:
        source = "  - {name: db, type: databasement, url: 'https://db.lan', token: t, organization_id: Örg}\n"
        (finding,) = findings(sources=source)
        assert "sources[0].organization_id: 'Örg' holds a non-ASCII character (character 1)" in finding


class TestProtectionMistakes:
    def test_each_mistake_in_a_services_protection_is_said_once_at_its_key(self) -> None:
        """Errors named pydantic's union members ("protection.ProtectionConfig.copies") at the `protection` line,
        each followed by "protection.literal[False]: must be one of False"."""
        services = (
            "  - {id: a, guest: 101, protection: {copies: two}}\n"
            "  - {id: b, guest: 102, protection: {copis: 2}}\n"
            "  - {id: c, guest: 103, protection: 5}\n"
            "  - {id: d, guest: 104, protection: false}\n"
        )
        assert findings(services=services) == [
            "bg.yaml:5:38: services[0].protection.copies: must be a whole number, not 'two'",
            "bg.yaml:6:38: services[1].protection.copis: unknown key 'copis' — did you mean 'copies'?",
            "bg.yaml:7:25: services[2].protection: must be a mapping of keys to values, not 5",
        ]


class TestSafeValues:
    @pytest.mark.parametrize(
        ("line", "message"),
        [
            ("poll_interval: 0s", "sources[0].poll_interval: must be at least 10s"),
            ("poll_interval: -5s", "sources[0].poll_interval: must be at least 10s"),
            ("timeout: -1s", "sources[0].timeout: must be more than 0s"),
            ("timeout: 10m", "sources[0].timeout: must be shorter than poll_interval (5m)"),
        ],
    )
    def test_source_timing_must_make_sense(self, line: str, message: str) -> None:
        source = "  - name: pbs\n    type: pbs\n    url: https://pbs.lan\n    token_id: a@pbs!t\n    token_secret: s\n"
        (finding,) = findings(sources=source + f"    {line}\n")
        assert finding == f"bg.yaml:8:5: {message}"

    def test_negative_grace_and_short_retention_are_refused(self) -> None:
        extra = "defaults: {grace: -1h, lookback: 30d}\nhistory: {retention: 20d}\n"
        assert findings(extra=extra) == [
            "bg.yaml:4:12: defaults.grace: must not be negative",
            "bg.yaml:5:11: history.retention: must be at least 30d: the longest lookback and the calendar's past "
            "window need that much history",
        ]
        assert "history.retention: must be at least 14d" in findings(extra="history: {retention: 0s}\n")[0]

    def test_a_short_auth_token_is_refused(self) -> None:
        (finding,) = findings(extra="server: {auth_token: a}\n")
        assert finding == (
            "bg.yaml:4:10: server.auth_token: must be at least 16 characters "
            "(e.g. the output of 'openssl rand -hex 24')"
        )

    def test_a_public_url_is_written_as_browsers_send_it(self) -> None:
        """A non-ASCII host passed, then every Glance widget answered 500: it goes into the Widget-Title-URL header."""
        (finding,) = findings(extra="server: {base_url: 'https://bäckups.例え.jp:8443/board'}\n")
        assert finding == (
            "bg.yaml:4:10: server.base_url: its host must be written as browsers send it (IDNA): "
            "https://xn--bckups-bua.xn--r8jz45g.jp:8443/board"
        )

    def test_the_calendar_key_differs_from_the_token(self) -> None:
        (finding,) = findings(extra="server: {auth_token: aaaaaaaaaaaaaaaa, calendar_key: aaaaaaaaaaaaaaaa}\n")
        assert "server.calendar_key: must differ from auth_token" in finding
