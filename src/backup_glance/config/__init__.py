"""Edge: YAML + environment + secret files -> a validated `Config`. Nothing else reads them.

    report = read_config("backup-glance.yaml")   # never raises on bad input
    report.errors, report.warnings                # each a Problem: file, line, column, key path, plain words
    config = load_config("backup-glance.yaml")   # the Config, or ConfigError listing every error at once

The file is YAML 1.2 (`off` is a string), `${...}` references are resolved after parsing (see `_variables`),
`*_file` keys are read, and then shape (`_schema`, worded by `_messages`) and meaning (`_checks`) are checked
together, so one run lists everything. Relative paths in the file are relative to the file's folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from ..errors import ConfigError
from ._checks import Finding, check, file_mode_findings, resolve_after
from ._messages import UNKNOWN_KEY, translate
from ._notify import display_url, quiet_hours, scheme_of, url_secrets
from ._schema import (
    MAX_DURATION,
    AnomaliesConfig,
    AnySourceConfig,
    BackrestSourceConfig,
    Config,
    DatabasementSourceConfig,
    DefaultsConfig,
    HeartbeatConfig,
    HistoryConfig,
    HttpSourceConfig,
    NotifyConfig,
    PbsSourceConfig,
    ProtectionConfig,
    ProxmoxSourceConfig,
    PveSourceConfig,
    ResticSourceConfig,
    ServerConfig,
    ServiceConfig,
    SourceConfig,
    parse_duration,
)
from ._specs import anomaly_policy, protection_policy, secrets_of, service_specs, silence_end
from ._variables import (
    DEFAULT_SECRETS_DIR,
    SECRETS_DIR_VARIABLE,
    SecretFileError,
    Variables,
    read_at_most,
    read_secret_file,
)
from ._yaml import KeyPath, Position, YamlProblem, dotted, load_yaml

MAX_CONFIG_BYTES = 1024 * 1024

# Secret value key <- file key, per source type (restic reads its password_file itself).
_SECRET_FILES = {
    "pbs": (("token_secret", "token_secret_file"),),
    "pve": (("token_secret", "token_secret_file"),),
    "databasement": (("token", "token_file"),),
    "backrest": (("password", "password_file"),),
}
_PATH_KEYS = ("ca_file", "password_file", "token_file", "token_secret_file")
_UNREAD = "(unread)"  # stands in for a secret whose file failed; the report has an error, so it is never used


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a configuration file, at the line and column of the key it is about."""

    message: str
    file: str = "<config>"
    line: int = 0
    column: int = 0
    path: KeyPath = ()
    warning: bool = False

    def __str__(self) -> str:
        where = self.file + (f":{self.line}:{self.column}" if self.line else "")
        key = f" {dotted(self.path)}:" if self.path else ""
        return f"{where}:{key} {'warning: ' if self.warning else ''}{self.message}"


@dataclass
class Report:
    """The outcome of reading a configuration: the Config when it has no errors, and every problem found."""

    config: Config | None
    problems: list[Problem] = field(default_factory=list)
    literal_secrets: list[KeyPath] = field(default_factory=list)  # secrets written into the file itself

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if not p.warning]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.warning]


def read_config(path: str | Path, *, env: Mapping[str, str] | None = None) -> Report:
    """Read and check a configuration file; every kind of bad input becomes a Problem, never an exception."""
    env = os.environ if env is None else env
    name = str(path)
    text, problem = _read_text(Path(path))
    if problem is not None:
        return Report(None, [replace(problem, file=name)])
    assert text is not None
    report = parse_text(text, filename=name, env=env, base_dir=Path(path).resolve().parent)
    if report.literal_secrets:  # a file holding only ${...} references is no more secret than a README
        secrets_dir = env.get(SECRETS_DIR_VARIABLE) or DEFAULT_SECRETS_DIR
        shown = ", ".join(dotted(p) for p in report.literal_secrets[:3])
        for finding in file_mode_findings((), Path(path), secrets_dir):
            message = f"{finding.message} — it holds secrets ({shown}); or move them to ${{secret:NAME}} files"
            report.problems.insert(0, Problem(message, name, warning=True))
    return report


def load_config(path: str | Path, *, env: Mapping[str, str] | None = None) -> Config:
    """The Config in `path`, or ConfigError listing every error (warnings do not stop it)."""
    return _config_or_raise(read_config(path, env=env))


def parse_config(
    text: str, *, filename: str = "<config>", env: Mapping[str, str] | None = None, base_dir: Path | None = None
) -> Config:
    """The Config in `text`, or ConfigError listing every error."""
    return _config_or_raise(parse_text(text, filename=filename, env=env, base_dir=base_dir))


def _config_or_raise(report: Report) -> Config:
    if report.config is None:
        raise ConfigError([str(p) for p in report.errors])
    return report.config


def _read_text(path: Path) -> tuple[str | None, Problem | None]:
    try:
        if path.is_dir():
            return None, Problem("is a folder, not a configuration file")
        raw = read_at_most(path, MAX_CONFIG_BYTES)
    except TimeoutError as exc:
        return None, Problem(f"cannot read the configuration file: {exc}")
    except FileNotFoundError:
        return None, Problem("cannot read the configuration file: no such file")
    except PermissionError:
        return None, Problem("cannot read the configuration file: permission denied (check its owner and mode)")
    except OSError as exc:
        return None, Problem(f"cannot read the configuration file: {exc.strerror or exc.__class__.__name__}")
    if len(raw) > MAX_CONFIG_BYTES:
        return None, Problem(f"larger than {MAX_CONFIG_BYTES // 1024} KB; is this the right file?")
    try:
        return raw.decode("utf-8").removeprefix("\ufeff"), None
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        message = f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as UTF-8"
        return None, Problem(message, line=line, column=column)


def parse_text(
    text: str, *, filename: str = "<config>", env: Mapping[str, str] | None = None, base_dir: Path | None = None
) -> Report:
    """Check configuration text; `base_dir` anchors relative paths (default: the current folder)."""
    env = os.environ if env is None else env
    variables = Variables(env)
    try:
        prepared = variables.prepare(text)
        document = load_yaml(prepared, on_scalar=variables.substitute, on_key=variables.original)
    except YamlProblem as exc:
        return Report(None, [Problem(exc.message, filename, exc.line, exc.column, exc.path)])
    except ValueError as exc:
        return Report(None, [Problem(str(exc), filename)])
    positions = document.positions
    problems = [Problem(p.message, filename, p.line, p.column) for p in document.problems]
    secrets_dir = env.get(SECRETS_DIR_VARIABLE) or DEFAULT_SECRETS_DIR
    for path, position, message in variables.problems:
        problems.append(_problem(Finding(path, message), filename, positions, fallback=position))
    for path, position, file in variables.files:
        for finding in file_mode_findings(path, file, secrets_dir):
            problems.append(_problem(finding, filename, positions, fallback=position))
    data = {} if document.data is None else document.data
    if not isinstance(data, dict):
        problems.append(
            Problem("the top level must be a mapping of keys (timezone, sources, services, ...)", filename, 1, 1)
        )
        return Report(None, problems)
    # Docker Compose's habit: top-level `x-...` keys hold what anchors point at (`x-pve: &pve {...}`), nothing else.
    data = {key: value for key, value in data.items() if not (isinstance(key, str) and key.startswith("x-"))}
    findings, file_secrets = _resolve_files(data, base_dir or Path.cwd(), secrets_dir)
    config: Config | None = None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        findings += [Finding(path, message) for path, message in translate(exc, data)]
    else:
        findings += _ended_silences(config)
    findings += check(data, env, secrets_dir)
    skipped = variables.unresolved  # their value is a stand-in: what is said of it is not about the file
    for finding in findings:
        about_value = any(finding.path[: len(p)] == p for p in skipped)
        if not about_value or finding.message.startswith(UNKNOWN_KEY):  # a misspelled key is wrong all the same
            problems.append(_problem(finding, filename, positions))
    problems.sort(key=lambda p: (p.line, p.column))
    literal = [p for p in _secret_paths(data) if p not in variables.substituted]
    if config is None or any(not p.warning for p in problems):
        return Report(None, problems, literal)
    config = _resolved(config)
    config._substituted_secrets = (*variables.secret_values, *file_secrets)
    return Report(config, problems, literal)


def _ended_silences(config: Config) -> list[Finding]:
    """A warning for each silence whose end is past: it silences nothing, and its reason would mislead."""
    zone, now = ZoneInfo(config.timezone), datetime.now(UTC)
    findings = []
    for index, service in enumerate(config.services):
        end = silence_end(service.silence.until, zone) if service.silence is not None else None
        if end is not None and end <= now:
            shown = end.astimezone(zone).strftime("%Y-%m-%d %H:%M")
            findings.append(
                Finding(("services", index, "silence", "until"), f"ended {shown}: it silences nothing; remove it", True)
            )
    return findings


def _secret_paths(data: dict[str, Any]) -> list[KeyPath]:
    """Where the file holds a secret value (given directly or by reference)."""
    paths: list[KeyPath] = []
    sources = data.get("sources")
    for index, source in enumerate(sources if isinstance(sources, list) else []):
        if isinstance(source, dict):
            file_keys = {file_key for _, file_key in _SECRET_FILES.get(str(source.get("type")), ())}
            for key in ("token_secret", "token", "password"):
                if source.get(key) and not any(source.get(f) for f in file_keys):
                    paths.append(("sources", index, key))
            env = source.get("env")
            if isinstance(env, dict):
                paths += [("sources", index, "env", k) for k, v in env.items() if v]
    server = data.get("server")
    if isinstance(server, dict):
        paths += [("server", key) for key in ("auth_token", "calendar_key") if server.get(key)]
    return paths


def _resolve_files(data: dict[str, Any], base_dir: Path, secrets_dir: str) -> tuple[list[Finding], list[str]]:
    """Make relative paths absolute (against the file's folder) and read `*_file` secrets into their keys."""
    findings: list[Finding] = []
    secrets: list[str] = []
    history = data.get("history")
    if isinstance(history, dict) and isinstance(history.get("path"), str) and history["path"]:
        history["path"] = str(base_dir / Path(history["path"]).expanduser())
    sources = data.get("sources")
    for index, source in enumerate(sources if isinstance(sources, list) else []):
        if not isinstance(source, dict):
            continue
        for key in _PATH_KEYS:
            if isinstance(source.get(key), str) and source[key]:
                source[key] = str(base_dir / Path(source[key]).expanduser())
        for secret_key, file_key in _SECRET_FILES.get(str(source.get("type")), ()):
            file = source.get(file_key)
            if not isinstance(file, str):
                continue
            path = ("sources", index, file_key)
            if source.get(secret_key) not in (None, ""):
                findings.append(Finding(path, f"give {secret_key} or {file_key}, not both"))
                continue
            try:
                source[secret_key] = read_secret_file(file)
            except SecretFileError as exc:
                findings.append(Finding(path, str(exc)))
                source[secret_key] = _UNREAD  # keeps "is required" from repeating the problem
                continue
            if not source[secret_key]:
                findings.append(Finding(path, f"{file} is empty; it must hold the {secret_key}"))
                source[secret_key] = _UNREAD
                continue
            secrets.append(source[secret_key])
            findings += file_mode_findings(path, Path(file), secrets_dir)
    return findings, [s for s in secrets if s]


def _resolved(config: Config) -> Config:
    """`after:` entries in their explicit form ("service:ID" / "source:NAME"); checks made sure they resolve."""
    service_ids = {s.id for s in config.services}
    source_names = {s.name for s in config.sources}
    services = [
        s.model_copy(update={"after": [resolve_after(a, service_ids, source_names)[0] for a in s.after]})
        for s in config.services
    ]
    return config.model_copy(update={"services": services, "sources": _with_guest_namespaces(config.sources)})


def _with_guest_namespaces(sources: list[AnySourceConfig]) -> list[AnySourceConfig]:
    """Tell each PBS source which of its namespaces belong to which PVE cluster (the PVE sources'
    `pbs_namespace`): guests there are matched by (namespace, VMID); elsewhere by VMID alone, as before."""
    clusters = [s for s in sources if isinstance(s, PveSourceConfig) and s.pbs_namespace is not None]
    if not clusters:
        return sources
    out: list[AnySourceConfig] = []
    for source in sources:
        if isinstance(source, PbsSourceConfig):
            mapping = {ns: pve.name for pve in clusters if (ns := pve.namespace_on(source.name)) is not None}
            source = source.model_copy()
            source._guest_namespaces = mapping
        out.append(source)
    return out


def _problem(
    finding: Finding, filename: str, positions: dict[KeyPath, Position], fallback: Position | None = None
) -> Problem:
    line, column = _position(positions, finding.path) or fallback or (0, 0)
    return Problem(finding.message, filename, line, column, finding.path, finding.warning)


def _position(positions: dict[KeyPath, Position], path: KeyPath) -> Position | None:
    while path:
        if path in positions:
            return positions[path]
        path = path[:-1]
    return (1, 1) if positions else None


__all__ = [
    "MAX_DURATION",
    "AnomaliesConfig",
    "AnySourceConfig",
    "BackrestSourceConfig",
    "Config",
    "DatabasementSourceConfig",
    "DefaultsConfig",
    "HeartbeatConfig",
    "HistoryConfig",
    "HttpSourceConfig",
    "NotifyConfig",
    "PbsSourceConfig",
    "Problem",
    "ProtectionConfig",
    "ProxmoxSourceConfig",
    "PveSourceConfig",
    "Report",
    "ResticSourceConfig",
    "ServerConfig",
    "ServiceConfig",
    "SourceConfig",
    "anomaly_policy",
    "display_url",
    "load_config",
    "parse_config",
    "parse_duration",
    "parse_text",
    "protection_policy",
    "quiet_hours",
    "read_config",
    "scheme_of",
    "secrets_of",
    "service_specs",
    "url_secrets",
]
