"""Review findings: values that validated but then opened the board, broke every request or leaked a password."""

from __future__ import annotations

from pathlib import Path

import pytest

from backup_glance.config import parse_config, parse_text, read_config
from backup_glance.config._variables import SecretFileError, read_secret_file
from backup_glance.errors import ConfigError

PBS = """\
sources:
  - name: pbs
    type: pbs
    url: https://pbs.lan:8007
    token_id: "monitor@pbs!glance"
    token_secret: ${PBS_TOKEN}
"""
ENV = {"PBS_TOKEN": "x"}


def problems_of(text: str, env: dict[str, str] | None = None, base_dir: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, filename="bg.yaml", env=ENV if env is None else env, base_dir=base_dir)
    return caught.value.problems


class TestEmptySecrets:
    def test_an_empty_variable_for_auth_token_is_an_error_not_an_open_board(self) -> None:
        text = PBS + "server:\n  auth_token: ${BACKUP_GLANCE_TOKEN}\n"
        assert problems_of(text, env={**ENV, "BACKUP_GLANCE_TOKEN": ""}) == [
            "bg.yaml:8:3: server.auth_token: environment variable BACKUP_GLANCE_TOKEN is empty; "
            'set it, or write auth_token: "" in the file to turn it off on purpose'
        ]

    def test_an_empty_secret_file_for_auth_token_is_an_error(self, tmp_path: Path) -> None:
        (tmp_path / "token").write_text("\n")
        text = PBS + "server:\n  auth_token: ${secret:token}\n"
        (problem,) = problems_of(text, env={**ENV, "BACKUP_GLANCE_SECRETS_DIR": str(tmp_path)})
        assert problem.startswith("bg.yaml:8:3: server.auth_token: secret 'token' (")
        assert "token) is empty" in problem

    def test_a_literal_empty_auth_token_still_turns_auth_off(self) -> None:
        config = parse_config(PBS + 'server:\n  auth_token: ""\n', env=ENV)
        assert config.server.auth_token is None

    def test_an_empty_variable_for_a_source_secret_is_an_error(self) -> None:
        assert problems_of(PBS, env={"PBS_TOKEN": ""}) == [
            "bg.yaml:6:5: sources[0].token_secret: environment variable PBS_TOKEN is empty; "
            "it must hold the token_secret"
        ]

    def test_a_literal_empty_source_secret_is_an_error(self) -> None:
        text = PBS.replace("${PBS_TOKEN}", '""')
        assert problems_of(text) == ["bg.yaml:6:5: sources[0].token_secret: is empty; it must hold the token_secret"]

    def test_an_empty_secret_file_key_is_an_error(self, tmp_path: Path) -> None:
        (tmp_path / "pbs.token").write_text("")
        (tmp_path / "pbs.token").chmod(0o600)
        text = PBS.replace("token_secret: ${PBS_TOKEN}", "token_secret_file: pbs.token")
        (problem,) = problems_of(text, base_dir=tmp_path)
        assert problem == (
            f"bg.yaml:6:5: sources[0].token_secret_file: {tmp_path / 'pbs.token'} is empty; "
            "it must hold the token_secret"
        )


class TestUnusableCharacters:
    @pytest.mark.parametrize(
        ("line", "message"),
        [
            (
                '  auth_token: "abcdefgh\\ud800ijklmnopq"\n',
                "bg.yaml:8:15: server.auth_token: a lone surrogate (\\ud800) here: half of a character, not text; "
                "write the character itself or its \\U00XXXXXX escape",
            ),
            ('  host: "127.0.0.1\\0"\n', "bg.yaml:8:9: server.host: a NUL character (\\0) here; remove it"),
            ('  "a\\0b": 1\n', "bg.yaml:8:3: server: a NUL character (\\0) here in a key; remove it"),
        ],
    )
    def test_nul_and_lone_surrogates_are_refused_where_they_are_written(self, line: str, message: str) -> None:
        assert problems_of(PBS + "server:\n" + line) == [message]

    def test_a_variable_holding_a_surrogate_is_refused(self) -> None:
        # os.environ holds undecodable bytes as lone surrogates (surrogateescape)
        (problem,) = problems_of(PBS, env={"PBS_TOKEN": "abc\udcff"})
        assert problem.startswith(
            "bg.yaml:6:19: sources[0].token_secret: a lone surrogate (\\udcff) here (in the value"
        )


class TestPublicAddress:
    @pytest.mark.parametrize(
        ("line", "message"),
        [
            (
                'root_path: "/sauvegardés"',
                "server.root_path: must be plain ASCII (the web server passes the sub-path on as ASCII), e.g. /backups",
            ),
            (
                "root_path: //nas",
                "server.root_path: must not start with '//' (a browser reads //nas as another host), e.g. /backups",
            ),
            (
                'root_path: "/my backups"',
                "server.root_path: must not hold spaces, control characters, '?' or '#', e.g. /backups",
            ),
            ('root_path: "/b?x=1"', "server.root_path: must not hold spaces, control characters, '?' or '#'"),
            ('root_path: "/b#top"', "server.root_path: must not hold spaces, control characters, '?' or '#'"),
            (
                "base_url: https://glance.lan/b?x=1",
                "server.base_url: 'https://glance.lan/b?x=1': no query (?...) or fragment (#...)",
            ),
            ("base_url: https://glance.lan/b#top", "server.base_url: 'https://glance.lan/b#top': no query"),
            (
                "base_url: https://glance.lan/sauvegardés",
                "server.base_url: its path '/sauvegardés' must be plain ASCII",
            ),
            ("base_url: https://glance.lan//nas", "server.base_url: its path '//nas' must not start with '//'"),
            ("base_url: https://glance.lan:0/", "server.base_url: 'https://glance.lan:0/': the port is not a number"),
        ],
    )
    def test_sub_paths_that_would_break_every_request_are_refused(self, line: str, message: str) -> None:
        (problem,) = problems_of(PBS + f"server:\n  {line}\n")
        assert problem.startswith("bg.yaml:8:3: " + message)

    def test_a_plain_sub_path_still_passes(self) -> None:
        config = parse_config(PBS + "server:\n  root_path: /backups\n  base_url: https://glance.lan/backups\n", env=ENV)
        assert config.server.root_path == "/backups"


class TestCredentialsInUrls:
    @pytest.mark.parametrize(
        "url",
        [
            "https://monitor:Sup3rSecretPw@pbs.lan:80o7",
            "ftp://monitor:Sup3rSecretPw@pbs.lan",
            "monitor:Sup3rSecretPw@pbs.lan",
            "https://monitor:Sup3rSecretPw@pbs.lan:0",
        ],
    )
    def test_a_password_in_a_url_is_never_repeated(self, url: str) -> None:
        text = PBS.replace("https://pbs.lan:8007", url) + f"server:\n  base_url: '{url}'\n"
        problems = problems_of(text)
        assert len(problems) == 2
        for problem in problems:
            assert "Sup3rSecretPw" not in problem and "monitor" not in problem
            assert problem.endswith("put credentials in their own keys (token, password), not in the URL")


class TestCrashesBecomeProblems:
    def test_a_nul_in_a_secret_file_name_is_a_plain_problem(self) -> None:
        with pytest.raises(SecretFileError, match="cannot read '/tmp/a\\\\x00b': a file name cannot hold a NUL"):
            read_secret_file("/tmp/a\0b")

    def test_six_hundred_nested_brackets_are_a_problem_not_a_recursion_error(self, tmp_path: Path) -> None:
        config = tmp_path / "bg.yaml"
        config.write_text("sources: " + "[" * 600 + "]" * 600 + "\n")
        (problem,) = read_config(config).problems
        assert str(problem) == f"{config}: values nested too deeply (a configuration needs fewer than 64 levels)"

    def test_deep_but_parseable_nesting_is_refused_at_its_place(self) -> None:
        (problem,) = parse_text("sources: " + "[" * 70 + "]" * 70 + "\n", filename="bg.yaml", env={}).problems
        assert str(problem) == "bg.yaml:1:74: sources[0][0]: values nested more than 64 levels deep"


class TestPollDeadline:
    @pytest.mark.parametrize("value", ["-5m", "0s"])
    def test_a_deadline_of_zero_or_less_says_so(self, value: str) -> None:
        text = PBS + f"    poll_deadline: {value}\n"
        assert problems_of(text) == ["bg.yaml:7:5: sources[0].poll_deadline: must be more than 0s"]


class TestSystemdDocs:
    def test_the_readme_creates_every_credential_file_the_unit_loads(self) -> None:
        root = Path(__file__).resolve().parents[2]
        unit = (root / "deploy" / "backup-glance.service").read_text()
        readme = (root / "README.md").read_text()
        section = readme[readme.index("**systemd**") :]
        section = section[: section.index("```\n", section.index("```sh") + 5)]
        loaded = [line.split(":", 1)[1] for line in unit.splitlines() if line.startswith("LoadCredential=")]
        assert loaded
        for path in loaded:
            assert f"install -m 0600 /dev/stdin {path} <<<" in section, path
