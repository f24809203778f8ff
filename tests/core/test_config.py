"""Configuration: every problem with file, line and key; secrets from env and files; config -> service specs."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from backup_glance.config import parse_config, secrets_of, service_specs
from backup_glance.errors import ConfigError

PBS = """\
  - name: pbs
    type: pbs
    url: https://pbs.lan:8007
    token_id: "monitor@pbs!glance"
    token_secret: ${PBS_TOKEN}
"""


def config_text(*, sources: str = PBS, services: str = "", extra: str = "") -> str:
    text = f"timezone: Europe/Madrid\nsources:\n{sources}"
    if services:
        text += f"services:\n{services}"
    return text + extra


def problems_of(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, filename="bg.yaml", env={"PBS_TOKEN": "x"} if env is None else env)
    return caught.value.problems


class TestProblems:
    def test_a_missing_environment_variable_is_named_with_its_line(self) -> None:
        assert problems_of(config_text(), env={}) == [
            "bg.yaml:7: sources[0].token_secret: environment variable PBS_TOKEN is not set"
        ]

    def test_every_problem_is_listed_at_once_with_line_and_key(self) -> None:
        services = "  - id: vault\n    guest: 101\n    grace: soon\n    colour: red\n"
        problems = problems_of(config_text(services=services, extra="timezone2: x\n"))
        assert problems == [
            "bg.yaml:11: services[0].grace: bad duration 'soon': use e.g. 30s, 5m, 2h, 14d",
            "bg.yaml:12: services[0].colour: unknown key",
            "bg.yaml:13: timezone2: unknown key",
        ]

    def test_after_must_name_a_service_or_a_source(self) -> None:
        services = "  - id: files\n    plan: files\n    after: [nothing]\n"
        (problem,) = problems_of(config_text(services=services))
        assert "'after' names no service id and no source: 'nothing'" in problem
        ok = config_text(services="  - id: files\n    plan: files\n    after: [pbs]\n")
        assert parse_config(ok, env={"PBS_TOKEN": "x"}).services[0].after == ["pbs"]

    def test_yaml_syntax_errors_name_the_line(self) -> None:
        assert problems_of("sources: [\n  - name: x\n")[0].startswith("bg.yaml:2: not valid YAML")


class TestSecrets:
    def test_a_secret_file_is_read_and_never_shown(self, tmp_path: Path) -> None:
        secret = tmp_path / "token"
        secret.write_text("from-a-file\n")
        text = config_text(sources=PBS.replace("token_secret: ${PBS_TOKEN}", f"token_secret_file: {secret}"))
        config = parse_config(text, env={})
        source = config.sources[0]
        assert source.token_secret is not None and source.token_secret.get_secret_value() == "from-a-file"
        assert "from-a-file" not in repr(config)
        assert secrets_of(config) == ["from-a-file"]

    def test_restic_environment_values_count_as_secrets(self, tmp_path: Path) -> None:
        restic = (
            "  - name: offsite\n    type: restic\n    repository: s3:host/bucket\n    password_env: RESTIC_PW\n"
            "    env: {AWS_SECRET_ACCESS_KEY: aws-secret-value}\n"
        )
        config = parse_config(config_text(sources=restic), env={})
        assert "aws-secret-value" in secrets_of(config)


class TestServiceSpecs:
    def test_each_kind_of_service_names_its_targets(self) -> None:
        services = (
            "  - {id: vault, guest: 101, grace: 0s}\n"
            "  - {id: nc, database: mariadb/nextcloud}\n"
            "  - {id: dumps, plan: databasement-dumps, source: pbs}\n"
            "  - {id: nas, restic: 'nas:/srv'}\n"
        )
        specs = {s.id: s for s in service_specs(parse_config(config_text(services=services), env={"PBS_TOKEN": "x"}))}
        assert specs["vault"].target_keys == ("guest:101",)
        assert specs["nc"].target_keys == ("databasement:*/mariadb/nextcloud",)
        assert specs["dumps"].target_keys == ("backrest:pbs/databasement-dumps",)
        assert specs["nas"].target_keys == ("restic:*/nas:/srv",)
        assert specs["vault"].grace == timedelta(0)  # zero is a value, not "use the default"
        assert specs["nc"].grace == timedelta(hours=1)

    def test_a_silence_until_a_date_ends_at_midnight_in_the_display_zone(self) -> None:
        services = "  - id: scratch\n    guest: 120\n    silence: {reason: test box, until: 2027-01-01}\n"
        (spec,) = service_specs(parse_config(config_text(services=services), env={"PBS_TOKEN": "x"}))
        assert spec.silence is not None
        assert spec.silence.until == datetime(2027, 1, 1, tzinfo=ZoneInfo("Europe/Madrid"))
