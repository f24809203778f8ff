"""Edge: YAML + environment + secret files -> a validated `Config`. Nothing else reads them.

Every problem is reported at once, each naming the file, the line and the key path. `${VAR}` is replaced from
the environment (a missing one is an error naming it, never a value); `*_file` keys read secrets from files.
Secrets are kept in `SecretStr`, whose repr is stars.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import ConfigError
from .model import ServiceSpec, Silence

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def parse_duration(value: object) -> timedelta:
    """Parse "90s", "5m", "2h", "14d", "1w" or a number of seconds.

    >>> parse_duration("2h")
    datetime.timedelta(seconds=7200)
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"bad duration {value!r}: use e.g. 30s, 5m, 2h, 14d")
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    if isinstance(value, str):
        match = _DURATION_RE.match(value)
        if match:
            return timedelta(seconds=float(match.group(1)) * _DURATION_UNITS[match.group(2)])
    raise ValueError(f"bad duration {value!r}: use e.g. 30s, 5m, 2h, 14d")


def _check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r} (use an IANA name like Europe/Vienna)") from exc
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Zone = Annotated[str, BeforeValidator(_check_zone)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _read_secret_file(path: str, what: str) -> SecretStr:
    try:
        return SecretStr(Path(path).read_text(encoding="utf-8").strip())
    except OSError as exc:
        raise ValueError(f"cannot read {what} file {path!r}: {exc.strerror}") from exc


class SourceConfig(_Strict):
    """Fields every source has."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    type: str
    poll_interval: Duration = timedelta(minutes=5)
    timeout: Duration = timedelta(seconds=10)
    max_in_flight: int = Field(default=4, ge=1, le=64)


class HttpSourceConfig(SourceConfig):
    url: str = Field(pattern=r"^https?://")
    verify_tls: bool = True
    ca_file: str | None = None
    fingerprint: str | None = Field(default=None, pattern=r"^(?:[0-9a-fA-F]{2})(?::?[0-9a-fA-F]{2}){31}$")


class ProxmoxSourceConfig(HttpSourceConfig):
    token_id: str
    token_secret: SecretStr | None = None
    token_secret_file: str | None = None

    @model_validator(mode="after")
    def _secret(self) -> ProxmoxSourceConfig:
        if self.token_secret_file and self.token_secret is None:
            object.__setattr__(self, "token_secret", _read_secret_file(self.token_secret_file, "token_secret"))
        if self.token_secret is None:
            raise ValueError("token_secret or token_secret_file is required")
        return self


class PbsSourceConfig(ProxmoxSourceConfig):
    type: Literal["pbs"]
    # A namespace list to restrict to; empty = all namespaces of all datastores.
    datastores: list[str] = []


class PveSourceConfig(ProxmoxSourceConfig):
    type: Literal["pve"]


class DatabasementSourceConfig(HttpSourceConfig):
    type: Literal["databasement"]
    token: SecretStr | None = None
    token_file: str | None = None
    organization_id: str | None = None
    timezone: Zone = "UTC"
    per_page: int = Field(default=100, ge=1, le=100)

    @model_validator(mode="after")
    def _secret(self) -> DatabasementSourceConfig:
        if self.token_file and self.token is None:
            object.__setattr__(self, "token", _read_secret_file(self.token_file, "token"))
        if self.token is None:
            raise ValueError("token or token_file is required")
        return self


class BackrestSourceConfig(HttpSourceConfig):
    type: Literal["backrest"]
    username: str | None = None
    password: SecretStr | None = None
    password_file: str | None = None
    timezone: Zone | None = None  # the Backrest host's zone for CLOCK_LOCAL cron; default: UTC

    @model_validator(mode="after")
    def _secret(self) -> BackrestSourceConfig:
        if self.password_file and self.password is None:
            object.__setattr__(self, "password", _read_secret_file(self.password_file, "password"))
        if self.username and self.password is None:
            raise ValueError("password or password_file is required with username")
        return self


class ResticSourceConfig(SourceConfig):
    type: Literal["restic"]
    repository: str
    password_file: str | None = None
    password_env: str | None = None  # name of an environment variable holding the password
    env: dict[str, str] = {}  # extra environment for restic (e.g. AWS_ACCESS_KEY_ID)
    group_by: list[Literal["host", "paths", "tags"]] = ["host", "paths"]
    schedule: str | None = None
    dialect: Literal["proxmox", "cron"] = "cron"
    timezone: Zone = "UTC"
    max_age: Duration | None = None
    restic_binary: str = "restic"

    @model_validator(mode="after")
    def _password(self) -> ResticSourceConfig:
        if not self.password_file and not self.password_env:
            raise ValueError("password_file or password_env is required")
        return self


AnySourceConfig = Annotated[
    PbsSourceConfig | PveSourceConfig | DatabasementSourceConfig | BackrestSourceConfig | ResticSourceConfig,
    Field(discriminator="type"),
]


class SilenceConfig(_Strict):
    reason: str
    until: date | datetime | None = None


class ServiceConfig(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    name: str | None = None
    guest: int | None = Field(default=None, ge=1)
    database: str | None = None  # Databasement "server/database"
    plan: str | None = None  # Backrest plan id
    restic: str | None = None  # restic group ("host" or "host:/path")
    targets: list[str] = []  # raw target keys, for anything else
    source: str | None = None
    grace: Duration | None = None
    max_age: Duration | None = None
    lookback: Duration | None = None
    silence: SilenceConfig | None = None
    after: list[str] = []  # services (or whole sources) whose runs must finish before this one starts


class DefaultsConfig(_Strict):
    grace: Duration = timedelta(hours=1)
    lookback: Duration = timedelta(days=14)
    max_age: Duration = timedelta(hours=26)


class HistoryConfig(_Strict):
    path: str = "./data/history.sqlite3"
    retention: Duration = timedelta(days=90)


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=1, le=65535)
    auth_token: SecretStr | None = None
    base_url: str | None = None  # public URL, for links in widgets

    @field_validator("auth_token", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value in ("", None) else value


class Config(_Strict):
    timezone: Zone = Field(default_factory=lambda: _machine_zone())
    sources: list[AnySourceConfig] = []
    services: list[ServiceConfig] = []
    defaults: DefaultsConfig = DefaultsConfig()
    history: HistoryConfig = HistoryConfig()
    server: ServerConfig = ServerConfig()
    # Also show everything the sources report that no configured service claims. Default: only when no
    # services are configured.
    discover: bool | None = None

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        seen: set[str] = set()
        for source in self.sources:
            if source.name in seen:
                raise ValueError(f"two sources are named {source.name!r}")
            seen.add(source.name)
        ids: set[str] = set()
        for service in self.services:
            if service.id in ids:
                raise ValueError(f"two services have the id {service.id!r}")
            ids.add(service.id)
        for service in self.services:
            for other in service.after:
                if other not in ids and other not in seen:
                    raise ValueError(f"service {service.id!r}: 'after' names no service id and no source: {other!r}")
        return self


def _machine_zone() -> str:
    tz = os.environ.get("TZ")
    if tz:
        try:
            ZoneInfo(tz)
            return tz
        except (ZoneInfoNotFoundError, ValueError):
            pass
    try:
        link = os.readlink("/etc/localtime")
        marker = "zoneinfo/"
        if marker in link:
            return link.split(marker, 1)[1]
    except OSError:
        pass
    return "UTC"


# --- loading -------------------------------------------------------------------------------------------------


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that remembers the line of every mapping key, by key path."""


def _compose_lines(text: str) -> dict[tuple[str | int, ...], int]:
    lines: dict[tuple[str | int, ...], int] = {}
    node = yaml.compose(text, Loader=_LineLoader)

    def walk(n: yaml.Node, path: tuple[str | int, ...]) -> None:
        lines.setdefault(path, n.start_mark.line + 1)
        if isinstance(n, yaml.MappingNode):
            for key_node, value_node in n.value:
                key = key_node.value
                lines[(*path, key)] = key_node.start_mark.line + 1
                walk(value_node, (*path, key))
        elif isinstance(n, yaml.SequenceNode):
            for index, item in enumerate(n.value):
                walk(item, (*path, index))

    if node is not None:
        walk(node, ())
    return lines


def _substitute_env(
    value: Any,
    env: Mapping[str, str],
    path: tuple[str | int, ...],
    missing: list[tuple[tuple[str | int, ...], str]],
) -> Any:
    if isinstance(value, str):

        def repl(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                missing.append((path, name))
                return ""
            return env[name]

        return _ENV_RE.sub(repl, value)
    if isinstance(value, dict):
        return {k: _substitute_env(v, env, (*path, k), missing) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute_env(v, env, (*path, i), missing) for i, v in enumerate(value)]
    return value


def _dotted(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _line_of(lines: dict[tuple[str | int, ...], int], path: tuple[str | int, ...]) -> int | None:
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get(())


def parse_config(text: str, *, filename: str = "<config>", env: Mapping[str, str] | None = None) -> Config:
    """Validate configuration text; raise ConfigError listing every problem with file, line and key path."""
    env = os.environ if env is None else env
    try:
        raw = yaml.safe_load(text)
        lines = _compose_lines(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{filename}:{mark.line + 1}" if mark is not None else filename
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{filename}:1: the top level must be a mapping of keys (timezone, sources, services, ...)")
    missing: list[tuple[tuple[str | int, ...], str]] = []
    data = _substitute_env(raw, env, (), missing)
    problems = [
        f"{filename}:{_line_of(lines, path)}: {_dotted(path)}: environment variable {name} is not set"
        for path, name in missing
    ]
    if problems:
        raise ConfigError(problems)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(part for part in error["loc"] if not _is_union_tag(part, data))
            message = str(error["msg"]).removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown key"
            elif error["type"] == "missing":
                message = "required key is missing"
            problems.append(f"{filename}:{_line_of(lines, loc)}: {_dotted(loc)}: {message}")
        raise ConfigError(problems) from None


def _is_union_tag(part: object, data: object) -> bool:
    # pydantic puts the discriminator value ("pbs") into the location of tagged-union errors.
    return isinstance(part, str) and part in {"pbs", "pve", "databasement", "backrest", "restic"}


def load_config(path: str | Path, *, env: Mapping[str, str] | None = None) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file: {exc.strerror}") from None
    return parse_config(text, filename=str(path), env=env)


# --- config -> model ---------------------------------------------------------------------------------------


def service_specs(config: Config) -> list[ServiceSpec]:
    """The configured services as health reads them (empty: every target is discovered)."""
    zone = ZoneInfo(config.timezone)
    defaults = config.defaults
    specs = []
    for service in config.services:
        source = service.source or "*"
        keys = [*service.targets]
        if service.guest is not None:
            keys.append(f"guest:{service.guest}")
        if service.database:
            keys.append(f"databasement:{source}/{service.database}")
        if service.plan:
            keys.append(f"backrest:{source}/{service.plan}")
        if service.restic:
            keys.append(f"restic:{source}/{service.restic}")
        silence = None
        if service.silence is not None:
            until = service.silence.until
            if isinstance(until, date) and not isinstance(until, datetime):
                until = datetime(until.year, until.month, until.day, tzinfo=zone)
            elif isinstance(until, datetime) and until.tzinfo is None:
                until = until.replace(tzinfo=zone)
            silence = Silence(reason=service.silence.reason, until=until)
        specs.append(
            ServiceSpec(
                id=service.id,
                name=service.name or service.id,
                target_keys=tuple(keys),
                grace=defaults.grace if service.grace is None else service.grace,
                max_age=defaults.max_age if service.max_age is None else service.max_age,
                lookback=defaults.lookback if service.lookback is None else service.lookback,
                silence=silence,
                after=tuple(service.after),
                source=service.source,
            )
        )
    return specs


def secrets_of(config: Config) -> list[str]:
    """Every secret value in the config, for the log redaction filter (a second line of defence)."""
    values = []
    for source in config.sources:
        for name in ("token_secret", "token", "password"):
            secret = getattr(source, name, None)
            if isinstance(secret, SecretStr) and secret.get_secret_value():
                values.append(secret.get_secret_value())
    for source in config.sources:
        if isinstance(source, ResticSourceConfig):
            # restic's extra environment carries cloud credentials; the password may sit in a variable.
            values += [v for v in source.env.values() if v]
            if source.password_env and os.environ.get(source.password_env):
                values.append(os.environ[source.password_env])
    if config.server.auth_token is not None and config.server.auth_token.get_secret_value():
        values.append(config.server.auth_token.get_secret_value())
    return values
