"""Configuration files: YAML 1.2, ${...} references, every problem at its key's line and column, in plain words."""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from backup_glance.config import _variables as variables
from backup_glance.config import parse_config, parse_text, read_config, secrets_of, service_specs
from backup_glance.errors import ConfigError

PBS = """\
  - name: pbs
    type: pbs
    url: https://pbs.lan:8007
    token_id: "monitor@pbs!glance"
    token_secret: ${PBS_TOKEN}
"""
ENV = {"PBS_TOKEN": "x"}


def config_text(*, sources: str = PBS, services: str = "", extra: str = "") -> str:
    text = f"timezone: Europe/Madrid\nsources:\n{sources}"
    if services:
        text += f"services:\n{services}"
    return text + extra


def problems_of(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, filename="bg.yaml", env=ENV if env is None else env)
    return caught.value.problems


class TestProblems:
    def test_a_missing_environment_variable_is_named_at_its_key(self) -> None:
        assert problems_of(config_text(), env={}) == [
            "bg.yaml:7:5: sources[0].token_secret: environment variable PBS_TOKEN is not set"
        ]

    def test_every_problem_is_listed_at_once_at_the_key_itself(self) -> None:
        services = "  - id: vault\n    guest: 101\n    grace: soon\n    colour: red\n"
        problems = problems_of(config_text(services=services, extra="timezone2: x\n"))
        assert problems == [
            "bg.yaml:11:5: services[0].grace: not a duration: 'soon'; "
            "use a number with a unit, e.g. 30s, 5m, 2h, 14d, 1w or 1h30m",
            "bg.yaml:12:5: services[0].colour: unknown key 'colour'",
            "bg.yaml:13:1: timezone2: unknown key 'timezone2' — did you mean 'timezone'?",
        ]

    def test_missing_variables_are_listed_with_everything_else(self) -> None:
        text = config_text(services="  - id: vault\n    guest: 101\n    grac: 2h\n")
        assert problems_of(text, env={}) == [
            "bg.yaml:7:5: sources[0].token_secret: environment variable PBS_TOKEN is not set",
            "bg.yaml:11:5: services[0].grac: unknown key 'grac' — did you mean 'grace'?",
        ]

    def test_misspelt_source_types_get_a_suggestion_and_the_list(self) -> None:
        (problem,) = problems_of(config_text(sources="  - name: nas\n    type: backrst\n    url: http://nas:9898\n"))
        assert problem == (  # at its `type:` line, not at the item's first key
            "bg.yaml:4:5: sources[0].type: unknown source type 'backrst' — did you mean 'backrest'? "
            "(known: pbs, pve, databasement, backrest, restic)"
        )

    def test_a_source_without_a_known_type_still_has_its_unknown_keys_named(self) -> None:
        """Every problem at once: `typ: pbs` said only "type is required", and hid the misspelt key beside it."""
        problems = problems_of(config_text(sources=PBS.replace("type: pbs", "typ: pbs").replace("token_id", "tokn_id")))
        assert problems == [
            "bg.yaml:3:5: sources[0]: type is required: one of pbs, pve, databasement, backrest, restic",
            "bg.yaml:4:5: sources[0].typ: unknown key 'typ' — did you mean 'type'?",
            "bg.yaml:6:5: sources[0].tokn_id: unknown key 'tokn_id' — did you mean 'token_id'?",
        ]
        unknown_type = problems_of(config_text(sources=PBS.replace("type: pbs", "type: pbsx") + "    colour: red\n"))
        assert len(unknown_type) == 2 and unknown_type[0].startswith(
            "bg.yaml:4:5: sources[0].type: unknown source type"
        )
        assert unknown_type[1].startswith("bg.yaml:8:5: sources[0].colour: unknown key 'colour'")

    @pytest.mark.parametrize(
        ("line", "message"),
        [
            ("url: pbs.lan:8007", "must start with http:// or https://, e.g. https://pbs.lan:8007"),
            ("url: https://pbs.lan:99999", "the port is not a number from 1 to 65535"),
            ("fingerprint: '64:d3'", "fingerprint must be 32 hex pairs like 64:d3:ff:... (SHA-256); "),
            ("max_in_flight: 0", "must be at least 1, not 0"),
            ("verify_tls: maybe", "must be true or false, not 'maybe'"),
            ("poll_interval: 2 hours", "not a duration: '2 hours'"),
            ("poll_interval: 99999999999w", "is out of range (at most 100 years)"),
            ("poll_interval: .inf", "is out of range"),
            ("poll_interval: 300", "'300' has no unit: write 300s, 300m, 300h or 300d"),
            ("poll_interval: '1.5'", "'1.5' has no unit"),
        ],
    )
    def test_values_are_explained_without_regexes_or_library_wording(self, line: str, message: str) -> None:
        source = PBS.replace("    url: https://pbs.lan:8007\n", "") + "    url: https://pbs.lan:8007\n"
        if line.startswith("url:"):
            source = source.replace("url: https://pbs.lan:8007", line)
        else:
            source += f"    {line}\n"
        (problem,) = problems_of(config_text(sources=source))
        assert message in problem
        assert "String should" not in problem and "Input should" not in problem and "^(?:" not in problem
        assert problem.startswith(("bg.yaml:7:5: sources[0].", "bg.yaml:8:5: sources[0]."))

    @pytest.mark.parametrize(
        ("token_id", "message"),
        [
            (
                "monitor@pve",
                "'monitor@pve' is a user, not a token: add '!' and the token's name, e.g. monitor@pbs!glance",
            ),
            ("glance", "'glance' is not an API token id USER@REALM!TOKENNAME"),
            ("root@pam!tok=d63e505a-e3ec", "holds more than the token's id: its secret (after ':' or '=') goes in"),
        ],
    )
    def test_a_token_id_proxmox_cannot_know_is_named_not_met_by_a_401(self, token_id: str, message: str) -> None:
        (problem,) = problems_of(config_text(sources=PBS.replace('"monitor@pbs!glance"', f'"{token_id}"')))
        assert problem.startswith("bg.yaml:6:5: sources[0].token_id: ") and message in problem
        assert "d63e505a" not in problem  # a secret pasted with the id is not shown back

    @pytest.mark.parametrize("token_id", ["root@pam!monitoring", "jo@example.org@ldap!glance-1", "a.b-c@pve!t_1"])
    def test_token_ids_proxmox_knows_are_taken(self, token_id: str) -> None:
        config = parse_config(config_text(sources=PBS.replace('"monitor@pbs!glance"', f'"{token_id}"')), env=ENV)
        assert config.sources[0].token_id == token_id  # type: ignore[union-attr]

    def test_a_name_with_spaces_is_refused_in_words(self) -> None:
        (problem,) = problems_of(config_text(sources=PBS.replace("name: pbs", "name: pbs main")))
        assert problem == (
            "bg.yaml:3:5: sources[0].name: 'pbs main' is not a usable name: start with a letter or digit, "
            "then letters, digits, '.', '_', '-'"
        )

    def test_yaml_syntax_errors_name_the_line_and_column(self) -> None:
        (problem,) = problems_of("sources: [\n  - name: x\n")
        assert problem.startswith("bg.yaml:2:3: not valid YAML")

    def test_a_tab_indent_is_explained(self) -> None:
        (problem,) = problems_of("sources:\n\t- name: x\n")
        assert problem == "bg.yaml:2:1: not valid YAML: a tab character here; indent with spaces"

    def test_top_level_x_keys_hold_anchors_and_nothing_else(self) -> None:
        text = (
            "x-proxmox: &proxmox {url: 'https://pbs.lan:8007', token_id: 'monitor@pbs!glance', token_secret: x}\n"
            + config_text(sources="  - {<<: *proxmox, name: pbs, type: pbs}\n")
        )
        config = parse_config(text, env={})
        assert config.sources[0].url == "https://pbs.lan:8007"
        (problem,) = problems_of(text.replace("x-proxmox:", "xproxmox:"))
        assert problem.startswith("bg.yaml:1:1: xproxmox: unknown key 'xproxmox'")

    def test_a_second_document_is_named_as_such(self) -> None:
        # It read backwards: "but found another document expected a single document in the stream".
        (problem,) = problems_of("timezone: UTC\n---\nsources: []\n")
        assert problem == "bg.yaml:2:1: not valid YAML: a second document starts here (after '---'); the file holds one"

    def test_a_duplicate_key_is_an_error_at_the_second_one(self) -> None:
        problems = problems_of(config_text(extra="timezone: UTC\n"))
        assert problems == ["bg.yaml:8:1: key 'timezone' appears twice (first on line 1); keep one"]

    def test_an_empty_file_says_there_are_no_sources(self) -> None:
        assert problems_of("") == ["bg.yaml: sources: no sources: add at least one under sources: (pbs, pve, ...)"]

    def test_a_list_at_the_top_level_is_refused(self) -> None:
        assert problems_of("- a\n- b\n") == [
            "bg.yaml:1:1: the top level must be a mapping of keys (timezone, sources, services, ...)"
        ]

    def test_an_alias_bomb_is_refused_not_expanded(self) -> None:
        bomb = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
        for level in "bcdefgh":
            prev = chr(ord(level) - 1)
            bomb += f"{level}: &{level} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
        (problem,) = problems_of(bomb)
        assert "more than 200000 values" in problem


class TestYaml12:
    @pytest.mark.parametrize("word", ["off", "no", "on", "yes", "Off", "NO", "y", "n"])
    def test_yaml_1_1_booleans_are_strings(self, word: str) -> None:
        text = config_text(services=f"  - {{id: svc, name: {word}, guest: 101}}\n")
        config = parse_config(text, env=ENV)
        assert config.services[0].name == word

    @pytest.mark.parametrize(
        ("written", "shown"), [("no", "'no'"), ("off", "'off'"), ("yes", "'yes'"), ("'y'", "'y'"), ("0", "0")]
    )
    def test_only_true_and_false_are_booleans(self, written: str, shown: str) -> None:
        # Text is text: a YAML 1.1 "no" must not quietly turn discovery, or TLS verification, off.
        assert problems_of(config_text(extra=f"discover: {written}\n")) == [
            f"bg.yaml:8:1: discover: must be true or false, not {shown}"
        ]
        sources = PBS.replace("    token_id", f"    verify_tls: {written}\n    offsite: {written}\n    token_id")
        assert problems_of(config_text(sources=sources)) == [
            f"bg.yaml:6:5: sources[0].verify_tls: must be true or false, not {shown}",
            "bg.yaml:7:5: sources[0].offsite: must be true, false or a list of locations, e.g. [offsite-store], "
            f"not {shown}",
        ]

    def test_a_boolean_from_a_reference_is_read_from_its_text(self) -> None:
        # ${VAR} always arrives as text: "true" and "false" are what YAML 1.2 would have read as booleans.
        sources = PBS.replace("    token_id", "    verify_tls: ${TLS}\n    token_id")
        text = config_text(sources=sources, extra="discover: ${DISCOVER}\nanomalies: ${ANOMALIES}\n")
        config = parse_config(text, env={**ENV, "TLS": "false", "DISCOVER": "true", "ANOMALIES": "FALSE"})
        assert (config.sources[0].verify_tls, config.discover, config.anomalies.enabled) == (False, True, False)
        refused = problems_of(text, env={**ENV, "TLS": "no", "DISCOVER": "1", "ANOMALIES": "off"})
        assert refused == [
            "bg.yaml:6:5: sources[0].verify_tls: must be true or false, not 'no'",
            "bg.yaml:9:1: discover: must be true or false, not '1'",
            "bg.yaml:10:1: anomalies: must be true, false or a mapping of its settings, not 'off'",
        ]

    def test_numbers_are_accepted_where_text_is_expected(self) -> None:
        config = parse_config(config_text(services="  - {id: 101, guest: 101, database: 2024}\n"), env=ENV)
        assert (config.services[0].id, config.services[0].database) == ("101", "2024")

    def test_sexagesimal_and_underscores_stay_strings(self) -> None:
        text = config_text(services="  - {id: a, targets: [12:30:00, 1_000]}\n")
        assert parse_config(text, env=ENV).services[0].targets == ["12:30:00", "1_000"]

    def test_a_date_is_read_from_text(self) -> None:
        text = config_text(services="  - {id: a, guest: 1, silence: {reason: r, until: 2027-01-01}}\n")
        (spec,) = service_specs(parse_config(text, env=ENV))
        assert spec.silence is not None and spec.silence.until == datetime(2027, 1, 1, tzinfo=ZoneInfo("Europe/Madrid"))


class TestVariables:
    def test_a_reference_works_inside_a_flow_mapping(self) -> None:
        text = config_text(extra="server: {host: 127.0.0.1, auth_token: ${TOKEN}}\n")
        config = parse_config(text, env={**ENV, "TOKEN": "t" * 20})
        assert config.server.auth_token is not None and config.server.auth_token.get_secret_value() == "t" * 20

    @pytest.mark.parametrize("secret", [": # ' \" {", "a: b", "[1, 2]", "- x", "&anchor *alias", "${NOT_AGAIN}", "|"])
    def test_a_substituted_value_is_one_string_exactly_as_written(self, secret: str) -> None:
        config = parse_config(config_text(), env={"PBS_TOKEN": secret})
        assert config.sources[0].token_secret is not None
        assert config.sources[0].token_secret.get_secret_value() == secret

    def test_a_reference_mid_string_and_for_a_number(self) -> None:
        text = config_text(sources=PBS.replace("https://pbs.lan:8007", "https://${HOST}:${PORT}"))
        config = parse_config(text + "server: {port: ${PORT}}\n", env={**ENV, "HOST": "pbs.lan", "PORT": "8007"})
        assert config.sources[0].url == "https://pbs.lan:8007"
        assert config.server.port == 8007

    def test_an_escaped_reference_is_literal(self) -> None:
        text = config_text(services="  - {id: a, guest: 1, name: 'costs \\${PRICE}'}\n")
        assert parse_config(text, env=ENV).services[0].name == "costs ${PRICE}"

    def test_a_reference_that_is_not_well_formed_is_a_problem_not_text(self) -> None:
        written = {
            "${ PBS_TOKEN }": "${ PBS_TOKEN }: not a variable name (letters, digits and _)",
            "${PBS_TOKEN:-x}": "${PBS_TOKEN:-x}: shell forms (${NAME:-default}, ${NAME:?}) are not supported",
            "${HOME:-x}": "${HOME:-x}: shell forms (${NAME:-default}, ${NAME:?}) are not supported",
            "${HOME:?}": "${HOME:?}: shell forms (${NAME:-default}, ${NAME:?}) are not supported",
            "${secret:../pw}": "${secret:../pw}: a secret's name is a file name (letters, digits, . _ -)",
            "${PBS_TOKEN": "'${PBS_TOKEN': a reference without its closing '}' (write \\${ for a literal '${')",
        }
        for reference, message in written.items():
            (problem,) = problems_of(config_text().replace("${PBS_TOKEN}", reference))
            assert problem == f"bg.yaml:7:5: sources[0].token_secret: {message}"

    def test_a_reference_in_a_comment_is_ignored(self) -> None:
        assert parse_config(config_text() + "# token: ${NOT_SET}\n", env=ENV).sources[0].name == "pbs"

    def test_columns_stay_right_after_a_reference(self) -> None:
        text = config_text(services="  - {id: a, name: ${NAME}, guest: 1, colour: x}\n")
        (problem,) = problems_of(text, env={**ENV, "NAME": "a much longer value than the reference"})
        assert problem == "bg.yaml:9:38: services[0].colour: unknown key 'colour'"

    def test_secret_files_come_from_the_secrets_folder(self, tmp_path: Path) -> None:
        (tmp_path / "pbs_token").write_text("from-docker-secret\n")
        text = config_text().replace("${PBS_TOKEN}", "${secret:pbs_token}")
        config = parse_config(text, env={"BACKUP_GLANCE_SECRETS_DIR": str(tmp_path)})
        assert config.sources[0].token_secret is not None
        assert config.sources[0].token_secret.get_secret_value() == "from-docker-secret"
        assert "from-docker-secret" in secrets_of(config)

    def test_read_file_from_env_reads_the_file_named_there(self, tmp_path: Path) -> None:
        (tmp_path / "t").write_text("s3cret: with # odd {chars}\r\n")
        text = config_text().replace("${PBS_TOKEN}", "${readFileFromEnv:PBS_TOKEN_FILE}")
        config = parse_config(text, env={"PBS_TOKEN_FILE": str(tmp_path / "t")})
        assert config.sources[0].token_secret is not None
        assert config.sources[0].token_secret.get_secret_value() == "s3cret: with # odd {chars}"

    def test_a_secret_in_a_pipe_is_read_as_it_is_written_and_one_nobody_writes_is_named(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(variables, "PIPE_WAIT_S", 1.0)
        pipe = tmp_path / "pbs_token"
        os.mkfifo(pipe)
        text = config_text().replace("${PBS_TOKEN}", "${secret:pbs_token}")
        env = {"BACKUP_GLANCE_SECRETS_DIR": str(tmp_path)}
        (problem,) = problems_of(text, env=env)  # not waited on for ever
        assert problem.endswith(f"{pipe}: nothing came through it within 1 s (does anything write to it?)")

        def write_later() -> None:
            time.sleep(0.3)
            with pipe.open("w") as writer:  # blocks until the reader has it open
                writer.write("from-a-pipe\n")

        writer = threading.Thread(target=write_later)
        writer.start()
        secret = parse_config(text, env=env).sources[0].token_secret
        writer.join()
        assert secret is not None and secret.get_secret_value() == "from-a-pipe"

    def test_unreadable_secret_references_are_named(self, tmp_path: Path) -> None:
        text = config_text().replace("${PBS_TOKEN}", "${secret:nope}")
        (problem,) = problems_of(text, env={"BACKUP_GLANCE_SECRETS_DIR": str(tmp_path)})
        assert problem == f"bg.yaml:7:5: sources[0].token_secret: secret 'nope': cannot read {tmp_path}/nope: " + (
            "no such file or directory"
        )
        text = config_text().replace("${PBS_TOKEN}", "${readFileFromEnv:WHERE}")
        (problem,) = problems_of(text, env={"WHERE": "relative/path"})
        assert "environment variable WHERE must hold an absolute path, not 'relative/path'" in problem
        (problem,) = problems_of(config_text().replace("${PBS_TOKEN}", "${vault:x}"))
        assert "${vault:x}: unknown kind 'vault' (use ${NAME}, ${secret:NAME}, ${readFileFromEnv:NAME})" in problem

    def test_env_values_that_look_secret_are_redacted_wherever_they_land(self) -> None:
        text = config_text(services="  - {id: a, guest: 1, name: 'x ${API_KEY} y'}\n")
        config = parse_config(text, env={**ENV, "API_KEY": "key-material-123"})
        assert "key-material-123" in secrets_of(config)


class TestSecretFiles:
    def test_a_secret_file_is_read_and_never_shown(self, tmp_path: Path) -> None:
        secret = tmp_path / "token"
        secret.write_text("from-a-file\n")
        text = config_text(sources=PBS.replace("token_secret: ${PBS_TOKEN}", f"token_secret_file: {secret}"))
        config = parse_config(text, env={})
        source = config.sources[0]
        assert source.token_secret is not None and source.token_secret.get_secret_value() == "from-a-file"
        assert "from-a-file" not in repr(config)
        assert secrets_of(config) == ["from-a-file"]

    def test_a_byte_order_mark_in_a_secret_file_is_no_part_of_the_secret(self, tmp_path: Path) -> None:
        """Notepad saves one: it read as "a non-ASCII character (character 1)"."""
        secret = tmp_path / "token"
        secret.write_bytes(b"\xef\xbb\xbffrom-notepad\r\n")
        text = config_text(sources=PBS.replace("token_secret: ${PBS_TOKEN}", f"token_secret_file: {secret}"))
        source = parse_config(text, env={}).sources[0]
        assert source.token_secret is not None and source.token_secret.get_secret_value() == "from-notepad"

    def test_relative_files_are_relative_to_the_config_file(self, tmp_path: Path) -> None:
        (tmp_path / "secrets").mkdir()
        (tmp_path / "secrets" / "pbs").write_text("relative-secret")
        config_file = tmp_path / "bg.yaml"
        config_file.write_text(
            config_text(sources=PBS.replace("token_secret: ${PBS_TOKEN}", "token_secret_file: secrets/pbs"))
        )
        report = read_config(config_file, env={})
        assert report.config is not None
        assert report.config.sources[0].token_secret is not None
        assert report.config.sources[0].token_secret.get_secret_value() == "relative-secret"

    def test_both_a_secret_and_its_file_is_an_error(self, tmp_path: Path) -> None:
        (tmp_path / "t").write_text("x")
        (problem,) = problems_of(config_text(sources=PBS + f"    token_secret_file: {tmp_path / 't'}\n"))
        assert problem == "bg.yaml:8:5: sources[0].token_secret_file: give token_secret or token_secret_file, not both"

    def test_restic_environment_values_count_as_secrets(self) -> None:
        restic = (
            "  - name: offsite\n    type: restic\n    repository: s3:host/bucket\n    password_env: RESTIC_PW\n"
            "    env: {AWS_SECRET_ACCESS_KEY: aws-secret-value}\n    restic_binary: /bin/true\n"
        )
        config = parse_config(config_text(sources=restic), env={"RESTIC_PW": "pw"})
        assert "aws-secret-value" in secrets_of(config)

    def test_a_source_name_as_long_as_a_paragraph_is_refused(self) -> None:
        (problem,) = problems_of(config_text(sources=PBS.replace("name: pbs", "name: " + "p" * 65)))
        assert problem.endswith("is 65 characters long; a name has at most 64")

    def test_restic_settings_no_run_could_use_are_refused_at_their_key(self) -> None:
        restic = (
            "  - name: offsite\n    type: restic\n    repository: ''\n    password_env: RESTIC_PW\n"
            "    env: {'A=B': x}\n    restic_binary: ''\n"
        )
        assert problems_of(config_text(sources=restic), env={"RESTIC_PW": "pw"}) == [
            "bg.yaml:5:5: sources[0].repository: must not be empty",
            "bg.yaml:7:5: sources[0].env: 'A=B' is no environment variable name (it must be non-empty, without '=')",
            "bg.yaml:8:5: sources[0].restic_binary: must not be empty",
        ]


class TestFiles:
    def test_an_empty_device_or_finished_pipe_is_empty_at_once(self) -> None:
        read_end, write_end = os.pipe()  # `<(sops -d bg.yaml)` when sops printed nothing
        os.close(write_end)
        began = time.monotonic()
        try:
            for path in (Path("/dev/null"), Path(f"/proc/self/fd/{read_end}")):
                (problem,) = read_config(path, env=ENV).errors
                assert problem.message.startswith("no sources")
        finally:
            os.close(read_end)
        assert time.monotonic() - began < 2

    def test_a_configuration_given_through_a_pipe_is_read(self) -> None:
        # `--config <(sops -d bg.yaml)`, `cat bg.yaml | backup-glance validate /dev/stdin`
        read_end, write_end = os.pipe()
        os.write(write_end, config_text().encode())
        os.close(write_end)
        try:
            report = read_config(Path(f"/proc/self/fd/{read_end}"), env=ENV)
        finally:
            os.close(read_end)
        assert report.errors == [] and report.config is not None
        assert report.config.sources[0].name == "pbs"

    def test_bad_files_become_one_problem_each(self, tmp_path: Path) -> None:
        (tmp_path / "latin1.yaml").write_bytes(b"timezone: Europe/Madrid\nname: caf\xe9\n")
        (tmp_path / "binary.yaml").write_bytes(b"\x00\x01\x02ELF\x7f")
        (tmp_path / "folder.yaml").mkdir()
        expected = {
            "latin1.yaml": "latin1.yaml:2:10: not UTF-8 text (byte 0xe9); save the file as UTF-8",  # as every problem
            "binary.yaml": "not valid YAML: a control character here (is this a binary file?)",
            "folder.yaml": "is a folder, not a configuration file",
            "missing.yaml": "cannot read the configuration file: no such file",
        }
        for name, message in expected.items():
            (problem,) = read_config(tmp_path / name, env={}).errors
            assert message in str(problem), name


class TestServiceSpecs:
    def test_each_kind_of_service_names_its_targets(self) -> None:
        services = (
            "  - {id: vault, guest: 101, grace: 0s}\n"
            "  - {id: nc, database: mariadb/nextcloud}\n"
            "  - {id: dumps, plan: databasement-dumps, source: pbs}\n"
            "  - {id: nas, restic: 'nas:/srv'}\n"
        )
        specs = {s.id: s for s in service_specs(parse_config(config_text(services=services), env=ENV))}
        assert specs["vault"].target_keys == ("guest:101",)
        assert specs["nc"].target_keys == ("databasement:*/mariadb/nextcloud",)
        assert specs["dumps"].target_keys == ("backrest:pbs/databasement-dumps",)
        assert specs["nas"].target_keys == ("restic:*/nas:/srv",)
        assert specs["vault"].grace == timedelta(0)  # zero is a value, not "use the default"
        assert specs["nc"].grace == timedelta(hours=1)

    def test_after_is_resolved_to_a_service_or_a_source(self) -> None:
        services = "  - {id: db, guest: 1}\n  - {id: files, plan: files, after: [db, pbs, 'source:pbs']}\n"
        specs = {s.id: s for s in service_specs(parse_config(config_text(services=services), env=ENV))}
        assert specs["files"].after == ("service:db", "source:pbs", "source:pbs")

    def test_a_compound_duration(self) -> None:
        config = parse_config(config_text(services="  - {id: a, guest: 1, grace: 1h30m}\n"), env=ENV)
        assert config.services[0].grace == timedelta(minutes=90)

    def test_problems_carry_their_position_for_tools(self) -> None:
        report = parse_text(config_text(services="  - {id: a}\n"), filename="bg.yaml", env=ENV)
        (problem,) = report.errors
        assert (problem.line, problem.column, problem.path) == (9, 5, ("services", 0))
