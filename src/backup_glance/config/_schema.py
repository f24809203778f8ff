"""The shape of a configuration: typed, frozen records with field-level checks that speak plainly.

Only the shape and the format of single values are checked here; what the values mean together (names that
must be unique, `after:` references, files that must be readable, timeouts below intervals) is `_checks`' job,
so every problem can point at the exact key it is about. Secrets are `SecretStr`, whose repr is stars.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import zoneinfo
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    SecretStr,
    Strict,
    Tag,
    model_validator,
)

from ..clean import MAX_NAME, hidden_character, safe_repr

_FLAG_WORDS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}


def _flag_word(value: object) -> object:
    """The words YAML 1.2 reads as booleans, also as text: a `${VAR}` reference always arrives as text."""
    return _FLAG_WORDS.get(value, value) if isinstance(value, str) else value


# Only `true` and `false`: pydantic would read the text "no", "off" or "0" as false, the YAML 1.1 booleans this
# project's YAML 1.2 loader deliberately leaves as text.
Flag = Annotated[bool, Strict(), BeforeValidator(_flag_word)]


def _no_flag(value: object) -> object:
    """true and false are no numbers: pydantic reads them as 1 and 0 (`port: true` would serve on port 1)."""
    if isinstance(value, bool):
        raise ValueError(f"must be a number, not {str(value).lower()}")
    return value


Whole = Annotated[int, BeforeValidator(_no_flag)]
Real = Annotated[float, BeforeValidator(_no_flag)]


def as_text(value: object) -> str | None:
    """A value as the model reads text: a string, or a number written where text goes (`url: 42` is "42", as
    `coerce_numbers_to_str` reads it); None for anything else, which the model refuses on its own."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, int) and value.bit_length() > 1000:  # no text setting is such a number (str() refuses)
        return None
    return str(value)


MAX_DURATION = timedelta(days=36500)  # a hundred years: anything longer is a typo, and timedelta overflows soon

_DURATION_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)", re.IGNORECASE)
_BARE_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_HINT = "use a number with a unit, e.g. 30s, 5m, 2h, 14d, 1w or 1h30m"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_FINGERPRINT = re.compile(r"[0-9a-fA-F]{2}(?::?[0-9a-fA-F]{2}){31}")


def parse_duration(value: object) -> timedelta:
    """ "90s", "5m", "2h", "14d", "1w", "1h30m", or 0. A number without a unit is refused, written as text or not:
    `max_age: 26` meant hours or days, never 26 seconds.

    >>> parse_duration("2h"), parse_duration("1h30m"), parse_duration(0)
    (datetime.timedelta(seconds=7200), datetime.timedelta(seconds=5400), datetime.timedelta(0))
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, float) and math.isinf(value):  # `.inf`: a duration, if one past any range
        seconds = value
    elif (text := as_text(value)) is None:
        raise ValueError(f"not a duration: {_shown(value)}; {_DURATION_HINT}")
    else:
        seconds = _duration_text(text)
    if math.isnan(seconds) or abs(seconds) > MAX_DURATION.total_seconds():
        raise ValueError(f"duration {_shown(value)} is out of range (at most {MAX_DURATION.days // 365} years)")
    return timedelta(seconds=seconds)


def _duration_text(text: str) -> float:
    stripped = text.strip()
    negative = stripped.startswith("-")
    body = stripped[1:] if negative else stripped
    total, end = 0.0, 0
    for match in _DURATION_PART.finditer(body):
        if match.start() != end:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]
        end = match.end()
    if _BARE_NUMBER.fullmatch(body):
        if float(body) == 0:  # nothing, in any unit
            return 0.0
        raise ValueError(f"{_shown(text)} has no unit: write {stripped}s, {stripped}m, {stripped}h or {stripped}d")
    if not body or end != len(body) or body[end:].strip():
        raise ValueError(f"not a duration: {_shown(text)}; {_DURATION_HINT}")
    return -total if negative else total


def _offsite_shape(value: object) -> object:
    """One message for both shapes, not one per member of the union (and no "no" read as false)."""
    value = _flag_word(value)
    if (
        value is None
        or isinstance(value, bool)
        or (isinstance(value, list) and not any(isinstance(v, list | dict) for v in value))
    ):
        return value
    raise ValueError(f"must be true, false or a list of locations, e.g. [offsite-store], not {_shown(value)}")


def _shown(value: object) -> str:
    text = spelled(value)
    return text if len(text) <= 60 else text[:57] + "..."


def spelled(value: object) -> str:
    """A value as a message quotes it: null, true and false as YAML spells them, anything else by its repr."""
    if value is None or isinstance(value, bool):
        return {None: "null (empty)", True: "true", False: "false"}[value]
    return safe_repr(value)


def _check_zone(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"not a time zone: {_shown(value)}; use an IANA name like Europe/Vienna")
    if _zone_named(value) is None:
        raise ValueError(f"unknown time zone {_shown(value)}; use an IANA name like Europe/Vienna")
    return value


MAX_NAME_LENGTH = 64  # a source name or service id: it is in every key, URL and log line of its own


def _check_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(
            f"{_shown(value)} is not a usable name: start with a letter or digit, then letters, digits, '.', '_', '-'"
        )
    if len(value) > MAX_NAME_LENGTH:
        raise ValueError(f"{_shown(value)} is {len(value):,} characters long; a name has at most {MAX_NAME_LENGTH}")
    return value


def _check_shown_text(value: str) -> str:
    """Text the board shows as it is written (a service's or a job's name, a silence's reason): on one line (a
    folded YAML scalar ends in a line break), without characters that hide or reorder what follows them."""
    value = " ".join(value.split())
    hidden = hidden_character(value)
    if hidden is not None:
        raise ValueError(
            f"{_shown(value)} holds the character {hidden}, which does not show as itself: the board would hide "
            "it, or show the text after it in another order; remove it"
        )
    return value


def _check_shown_name(value: str) -> str:
    value = _check_shown_text(value)
    if len(value) > MAX_NAME:
        raise ValueError(f"{_shown(value)} is {len(value):,} characters long; a name shown has at most {MAX_NAME}")
    return value


def without_userinfo(url: str) -> str:
    """A URL as it may be shown: a "user:password@" in front of the host becomes "***@".

    >>> without_userinfo("https://monitor:Pw@pbs.lan:8007/x"), without_userinfo("pbs.lan")
    ('https://***@pbs.lan:8007/x', 'pbs.lan')
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority = rest[:end]
    if "@" in authority:
        authority = "***@" + authority.rsplit("@", 1)[1]
    return scheme + sep + authority + rest[end:]


def _check_url(value: str) -> str:
    if without_userinfo(value) != value:  # first: every later message shows the URL
        raise ValueError("put credentials in their own keys (token, password), not in the URL")
    problem = http_url_problem(value, example="https://pbs.lan:8007")
    if problem is not None:
        raise ValueError(f"{_shown(value)}: {problem}")
    return value


def http_url_problem(url: str, *, example: str) -> str | None:
    """Why `url` is no http(s) URL the HTTP client can reach, worded without the URL (a ping URL is a secret);
    None when it is one.

    >>> http_url_problem("https://pbs lan:8007", example="https://pbs.lan:8007")
    'holds a space or a control character (write a space in a path as %20)'
    """
    try:
        parts = urlsplit(url.strip())
    except ValueError:  # only a bracketed host that is no IPv6 address, or a '[' left open
        return "has a '[' without its ']', or no IPv6 address inside them: write one as [fd00::2]"
    try:
        port = parts.port
    except ValueError:
        port = 0
    if parts.scheme not in ("http", "https"):
        return f"must start with http:// or https://, e.g. {example}"
    host = parts.hostname or ""
    if not host:
        return f"names no host, e.g. {example}"
    if port == 0:
        return "the port is not a number from 1 to 65535"
    if any(char.isspace() or not char.isprintable() for char in url.strip()):
        return "holds a space or a control character (write a space in a path as %20)"
    return None


def path_problem(path: str) -> str | None:
    """What makes `path` unusable as the sub-path the board is served under, or None.

    >>> path_problem("/backups"), path_problem("//nas")
    (None, "must not start with '//' (a browser reads //nas as another host), e.g. /backups")
    """
    if not path.isascii():
        return "must be plain ASCII (the web server passes the sub-path on as ASCII), e.g. /backups"
    if path.startswith("//"):
        return f"must not start with '//' (a browser reads {path[:20]} as another host), e.g. /backups"
    if any(c in path for c in " ?#") or not path.isprintable():
        return "must not hold spaces, control characters, '?' or '#', e.g. /backups"
    return None


def _check_public_url(value: str) -> str:
    parts = urlsplit(value)
    if not parts.netloc.isascii():  # it is sent in a header (Widget-Title-URL), which carries ASCII only
        host = parts.hostname or ""
        try:
            ascii_host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(f"its host {_shown(host)} is no host name a browser can reach") from None
        port = f":{parts.port}" if parts.port else ""
        spelled = urlunsplit((parts.scheme, ascii_host + port, parts.path, "", ""))
        raise ValueError(f"its host must be written as browsers send it (IDNA): {spelled}")
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise ValueError(
            f"{_shown(value)}: no query (?...) or fragment (#...); give the address the board is served at, "
            "e.g. https://glance.example.com/backups"
        )
    problem = path_problem(parts.path)
    if problem is not None:
        raise ValueError(f"its path {_shown(parts.path)} {problem}")
    return value


def _check_fingerprint(value: str) -> str:
    if not _FINGERPRINT.fullmatch(value.strip()):
        raise ValueError(
            "fingerprint must be 32 hex pairs like 64:d3:ff:... (SHA-256); "
            "'proxmox-backup-manager cert info' prints it on PBS, 'pvenode cert info' on PVE"
        )
    return value.strip()


def _header_problem(value: str) -> str | None:
    """What keeps `value` out of an HTTP header (where tokens travel), or None; never the value itself."""
    for position, char in enumerate(value, 1):
        if not char.isascii() or not char.isprintable():
            what = (
                "a line break"
                if char in "\r\n"
                else "a control character"
                if char.isascii()
                else "a non-ASCII character"
            )
            return f"holds {what} (character {position}): the HTTP header it is sent in carries printable ASCII only"
    return None


def _check_header_text(value: str) -> str:
    problem = _header_problem(value)
    if problem is not None:
        raise ValueError(f"{_shown(value)} {problem}")
    return value


def _check_header_secret(value: SecretStr) -> SecretStr:
    problem = _header_problem(value.get_secret_value())
    if problem is not None:  # a secret is never shown, not even in part (a stray newline from `echo` in a file)
        raise ValueError(f"the secret {problem}")
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
HeaderText = Annotated[str, AfterValidator(_check_header_text)]
HeaderSecret = Annotated[SecretStr, AfterValidator(_check_header_secret)]
Zone = Annotated[str, BeforeValidator(_check_zone)]
Name = Annotated[str, AfterValidator(_check_name)]
ShownName = Annotated[str, AfterValidator(_check_shown_name)]
ShownText = Annotated[str, AfterValidator(_check_shown_text)]
Url = Annotated[str, AfterValidator(_check_url)]
PublicUrl = Annotated[str, AfterValidator(_check_url), AfterValidator(_check_public_url)]
Fingerprint = Annotated[str, AfterValidator(_check_fingerprint)]


class _Strict(BaseModel):
    # Numbers are welcome where text is expected (`id: 101`, `database: 2024`); YAML typed them, not the user.
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


class SourceConfig(_Strict):
    """Fields every source has."""

    name: Name
    type: str
    poll_interval: Duration = timedelta(minutes=5)
    timeout: Duration = timedelta(seconds=10)  # each request
    poll_deadline: Duration | None = None  # the whole poll; default: half the interval, at least 3 timeouts
    max_in_flight: Whole = Field(default=4, ge=1, le=64)
    # Which of its locations are offsite (README: Protection): true = all of them, a list = those named
    # (datastores or "store/namespace", storages, repositories, volumes, PBS remotes), false = none. Unset: a
    # remote repository URI and the far side of a PBS sync are offsite, the rest is not.
    offsite: Annotated[bool | list[str] | None, BeforeValidator(_offsite_shape)] = None

    def deadline(self) -> timedelta:
        if self.poll_deadline is not None:
            return self.poll_deadline
        return min(self.poll_interval, max(self.poll_interval / 2, self.timeout * 3))


class HttpSourceConfig(SourceConfig):
    url: Url
    verify_tls: Flag = True
    ca_file: str | None = None
    fingerprint: Fingerprint | None = None


# USER@REALM!TOKENNAME, as Proxmox writes an API token's id (`monitor@pbs!glance`); a user name may hold an @
# itself (`jo@example.org@ldap`), as Proxmox's own pattern for user ids allows.
_TOKEN_ID = re.compile(r"[^\s:/!=]+@[A-Za-z][A-Za-z0-9._-]*![A-Za-z0-9_][A-Za-z0-9._-]*")


def _check_token_id(value: str) -> str:
    """An id Proxmox can know: without it, every poll would meet a bare 401 ("token rejected") and the user guess."""
    if _TOKEN_ID.fullmatch(value):
        return value
    if "!" in value and any(c in value.partition("!")[2] for c in ":="):  # the header's whole value, secret and all
        raise ValueError("holds more than the token's id: its secret (after ':' or '=') goes in token_secret")
    example = "e.g. monitor@pbs!glance: a user, its realm and the token's name, as the token list shows it"
    if "!" not in value and "@" in value:
        raise ValueError(f"{_shown(value)} is a user, not a token: add '!' and the token's name, {example}")
    raise ValueError(f"{_shown(value)} is not an API token id USER@REALM!TOKENNAME, {example}")


class ProxmoxSourceConfig(HttpSourceConfig):
    token_id: Annotated[HeaderText, AfterValidator(_check_token_id)]
    token_secret: HeaderSecret | None = None
    token_secret_file: str | None = None  # read into token_secret when the file is loaded

    @model_validator(mode="after")
    def _secret(self) -> ProxmoxSourceConfig:
        if self.token_secret is None:
            raise ValueError("token_secret is required (or token_secret_file, or ${secret:NAME})")
        return self


class PbsSourceConfig(ProxmoxSourceConfig):
    type: Literal["pbs"]
    # A namespace list to restrict to; empty = all namespaces of all datastores.
    datastores: list[str] = []
    # Namespace -> the PVE source whose guests back up there (from the PVE sources' `pbs_namespace`): guests in
    # those namespaces are matched by (namespace, VMID). Filled when the file is read; empty: by VMID alone.
    _guest_namespaces: dict[str, str] = PrivateAttr(default_factory=dict)

    @property
    def guest_namespaces(self) -> dict[str, str]:
        return self._guest_namespaces


_NAMESPACE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*){0,7}")


def _check_namespace(value: str) -> str:
    if not _NAMESPACE.fullmatch(value) or len(value) > 256:
        raise ValueError(f"{_shown(value)} is not a PBS namespace: names joined by '/', e.g. site-b or site-b/prod")
    return value


Namespace = Annotated[str, AfterValidator(_check_namespace)]


class PveSourceConfig(ProxmoxSourceConfig):
    type: Literal["pve"]
    # The PBS namespace this cluster's guests back up into, or one per PBS source ({pbs-main: site-b}): two
    # clusters reusing VMIDs in one PBS stay apart. Unset: guests are matched by VMID alone.
    pbs_namespace: Namespace | dict[str, Namespace] | None = None

    def namespace_on(self, pbs_source: str) -> str | None:
        """The namespace this cluster's guests use on PBS source `pbs_source` (None: not said)."""
        if isinstance(self.pbs_namespace, dict):
            return self.pbs_namespace.get(pbs_source)
        return self.pbs_namespace


class DatabasementSourceConfig(HttpSourceConfig):
    type: Literal["databasement"]
    token: HeaderSecret | None = None
    token_file: str | None = None
    organization_id: HeaderText | None = None
    timezone: Zone = "UTC"
    per_page: Whole = Field(default=100, ge=1, le=100)

    @model_validator(mode="after")
    def _secret(self) -> DatabasementSourceConfig:
        if self.token is None:
            raise ValueError("token is required (or token_file, or ${secret:NAME})")
        return self


class BackrestSourceConfig(HttpSourceConfig):
    type: Literal["backrest"]
    username: str | None = None
    password: SecretStr | None = None
    password_file: str | None = None
    timezone: Zone | None = None  # the Backrest host's zone for CLOCK_LOCAL cron; default: UTC

    @model_validator(mode="after")
    def _secret(self) -> BackrestSourceConfig:
        if self.username and self.password is None:
            raise ValueError("password is required with username (or password_file, or ${secret:NAME})")
        return self


def _check_environment(env: dict[str, str]) -> dict[str, str]:
    """What an environment can carry: a name without '=' or NUL, a value without NUL (else every run fails)."""
    for name, value in env.items():
        if not name or "=" in name or "\0" in name:
            raise ValueError(f"{_shown(name)} is no environment variable name (it must be non-empty, without '=')")
        if "\0" in value:
            raise ValueError(f"the value of {_shown(name)} holds a NUL character, which no environment can carry")
    return env


class ResticSourceConfig(SourceConfig):
    type: Literal["restic"]
    repository: Annotated[str, Field(min_length=1)]
    password_file: str | None = None
    password_env: str | None = None  # name of an environment variable holding the password
    # extra environment for restic (e.g. AWS_ACCESS_KEY_ID)
    env: Annotated[dict[str, str], AfterValidator(_check_environment)] = {}
    group_by: list[Literal["host", "paths", "tags"]] = ["host", "paths"]
    schedule: str | None = None
    dialect: Literal["proxmox", "cron"] = "cron"
    timezone: Zone = "UTC"
    max_age: Duration | None = None
    restic_binary: Annotated[str, Field(min_length=1)] = "restic"

    @model_validator(mode="after")
    def _password(self) -> ResticSourceConfig:
        if not self.password_file and not self.password_env:
            raise ValueError("password_file or password_env is required (restic never gets it on a command line)")
        return self


SOURCE_TYPES: dict[str, type[SourceConfig]] = {
    "pbs": PbsSourceConfig,
    "pve": PveSourceConfig,
    "databasement": DatabasementSourceConfig,
    "backrest": BackrestSourceConfig,
    "restic": ResticSourceConfig,
}

AnySourceConfig = Annotated[
    PbsSourceConfig | PveSourceConfig | DatabasementSourceConfig | BackrestSourceConfig | ResticSourceConfig,
    Field(discriminator="type"),
]


class SilenceConfig(_Strict):
    reason: ShownText
    until: date | datetime | None = None


class ProtectionConfig(_Strict):
    """What backups must achieve beyond running (README: Protection). Unset keys ask nothing."""

    copies: Whole | None = Field(default=None, ge=1, le=100)  # locations holding a snapshot within the lookback
    offsite: Whole | None = Field(default=None, ge=0, le=100)  # ... of which offsite
    offsite_lag: Duration | None = None  # the newest offsite copy at most this much older than the newest copy
    encrypted_offsite: Flag | None = None  # every offsite copy encrypted
    restore_test: Duration | None = None  # a successful restore test within this long


class AnomaliesConfig(_Strict):
    """A newest backup far smaller, or a run far longer, than usual (README: Protection). On by default."""

    enabled: Flag = True
    size_drop: Real = Field(default=0.5, gt=0, lt=1)
    duration_rise: Real = Field(default=3.0, gt=1, le=1000)
    min_history: Whole = Field(default=7, ge=3, le=1000)

    @model_validator(mode="before")
    @classmethod
    def _switch(cls, data: object) -> object:
        data = _flag_word(data)
        if isinstance(data, str):
            raise ValueError(f"must be true, false or a mapping of its settings, not {_shown(data)}")
        return {"enabled": data} if isinstance(data, bool) else data


def _protection_kind(value: Any) -> str:
    return PROTECTION_OFF if value is False else PROTECTION_POLICY


PROTECTION_POLICY, PROTECTION_OFF = "policy", "off"  # tags in error locations, which `_messages` leaves out
# A tagged union: only the member the value is meant for reports errors (not "literal[False]: must be one of
# False" beside every mistake in a policy).
ServiceProtection = Annotated[
    Annotated[ProtectionConfig, Tag(PROTECTION_POLICY)] | Annotated[Literal[False], Tag(PROTECTION_OFF)],
    Discriminator(_protection_kind),
]


class ServiceConfig(_Strict):
    id: Name
    name: ShownName | None = None
    guest: Whole | None = Field(default=None, ge=1, le=999_999_999)
    database: str | None = None  # Databasement "server/database"
    plan: str | None = None  # Backrest plan id
    restic: str | None = None  # restic group ("host" or "host:/path")
    targets: list[str] = []  # raw target keys, for anything else
    source: str | None = None
    grace: Duration | None = None
    max_age: Duration | None = None
    lookback: Duration | None = None
    silence: SilenceConfig | None = None
    # Services or whole sources whose runs must finish before this one starts: "NAME", "service:NAME" or
    # "source:NAME" (the last two when a service and a source share a name). Resolved to the prefixed form.
    after: list[str] = []
    # Key by key over defaults.protection; false: no protection policy for this service.
    protection: ServiceProtection | None = None

    def target_count(self) -> int:
        return len(self.targets) + sum(v is not None for v in (self.guest, self.database, self.plan, self.restic))


class JobConfig(_Strict):
    """How one job shows on the calendar, by its key ("pbs-main/verify/v-main-daily"): presentation only."""

    name: ShownName | None = None  # replaces the job's own name; the system stays in front ("PBS · Verify main")
    hide: Flag = False  # leave it off the calendar views and the ICS feed (it is still judged)


class DefaultsConfig(_Strict):
    grace: Duration = timedelta(hours=1)
    lookback: Duration = timedelta(days=14)
    max_age: Duration = timedelta(hours=26)
    protection: ProtectionConfig | None = None  # off unless set


class HistoryConfig(_Strict):
    path: str | None = None  # default: $BACKUP_GLANCE_DATA/history.sqlite3, else the per-user state folder
    retention: Duration = timedelta(days=90)


_HOST = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*\.?")
_ORIGIN = re.compile(
    r"[a-z][a-z0-9+.-]*:|([a-z][a-z0-9+.-]*://)?(\*|(\*\.)?[a-z0-9_.-]+|\[[0-9a-f:.]+\])(:(\d+|\*))?(/[^\s;,']*)?"
)


def _check_host(value: str) -> str:
    host = value.strip().lower()
    if host == "*":
        return host
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        pass
    if not _HOST.fullmatch(host):
        raise ValueError(
            f"{_shown(value)} is not a host name: write the name alone, without scheme, port or path, "
            "e.g. backups.example.com or 192.168.1.20, or '*' for any"
        )
    return host.rstrip(".")


def _check_frame_ancestor(value: str) -> str:
    text = value.strip()
    if text.lower() in ("self", "'self'", "none", "'none'"):
        return "'" + text.strip("'").lower() + "'"
    if not _ORIGIN.fullmatch(text.lower()):
        raise ValueError(
            f"{_shown(value)} is not an origin a page may be framed by: use e.g. https://glance.example.com, "
            "http://192.168.1.20:8080, 'self' or 'none'"
        )
    return text


HostName = Annotated[str, AfterValidator(_check_host)]
FrameAncestor = Annotated[str, AfterValidator(_check_frame_ancestor)]


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: Whole = Field(default=8765, ge=1, le=65535)
    auth_token: SecretStr | None = None
    # The public URL (behind a reverse proxy): Widget-Title-URL and every link point there; its path, if any,
    # is the sub-path the proxy serves backup-glance under.
    base_url: PublicUrl | None = None
    root_path: str | None = None  # the sub-path, when it differs from base_url's path or there is no base_url
    calendar_key: SecretStr | None = None  # opens /calendar.ics?key=... and nothing else
    # Host names the web server answers to (DNS rebinding); None: any with auth_token, else the safe ones
    # (web/headers.py says which). "*": any.
    allowed_hosts: list[HostName] | None = None
    # Who may show the page in a frame (CSP frame-ancestors), e.g. Glance's origin for its iframe widget.
    frame_ancestors: list[FrameAncestor] = ["'self'"]

    @model_validator(mode="before")
    @classmethod
    def _empty_is_none(cls, data: object) -> object:
        if isinstance(data, dict):
            return {k: (None if k in ("auth_token", "calendar_key") and v == "" else v) for k, v in data.items()}
        return data


class NotifyConfig(_Strict):
    """One notification target (README: Notifications). Its meaning is checked in `_notify`."""

    url: SecretStr  # any Apprise URL; it may hold credentials, so it is never shown whole
    severity: Literal["warning", "critical"] = "critical"  # the lowest severity that alerts
    repeat: Duration | None = None  # remind while a service stays not ok
    quiet: str | None = None  # "22:00-07:00" in the display zone: held, then sent as one
    digest: str | None = None  # a Proxmox calendar event ("mon 08:00"): a summary of the whole board
    alerts: Flag = True  # false: this target gets the digest only


class HeartbeatConfig(_Strict):
    url: SecretStr  # pinged after board updates, at most every `every`
    fail_url: SecretStr | None = None  # pinged instead while the board is critical
    every: Duration = timedelta(minutes=5)


class Config(_Strict):
    timezone: Zone = Field(default_factory=lambda: machine_zone())
    sources: list[AnySourceConfig] = []
    services: list[ServiceConfig] = []
    defaults: DefaultsConfig = DefaultsConfig()
    history: HistoryConfig = HistoryConfig()
    server: ServerConfig = ServerConfig()
    # Also show everything the sources report that no configured service claims. Default: only when no
    # services are configured.
    discover: Flag | None = None
    # Per job key, a calendar label or `hide: true`. Keys cannot be checked without the sources: one that
    # matches no job simply changes nothing.
    jobs: dict[str, JobConfig] = {}
    notify: list[NotifyConfig] = []
    heartbeat: HeartbeatConfig | None = None
    anomalies: AnomaliesConfig = AnomaliesConfig()
    # Values that reached the file through ${...} or *_file and count as secrets wherever they landed (a URL, a
    # header): the log redaction filter hides them too.
    _substituted_secrets: tuple[str, ...] = PrivateAttr(default=())


LOCALTIME = Path("/etc/localtime")
TIMEZONE_FILE = Path("/etc/timezone")  # Debian's name of the zone, beside a copied /etc/localtime


def machine_zone() -> str:
    """The machine's zone name: `TZ`, else where /etc/localtime links to, else (a copy of the zone's file, as a
    Docker `-v /etc/localtime:/etc/localtime:ro` makes it) /etc/timezone, or the zone whose file it is."""
    tz = os.environ.get("TZ")
    if tz and (named := _zone_named(tz.lstrip(":"))):
        return named
    try:
        link = os.readlink(LOCALTIME)
    except OSError:
        pass
    else:
        marker = "zoneinfo/"
        if marker in link:
            return link.split(marker, 1)[1]
    try:
        named = _zone_named(TIMEZONE_FILE.read_text(encoding="utf-8", errors="replace").strip())
    except OSError:
        named = None
    if named:
        return named
    try:
        return _zone_of_file(LOCALTIME.read_bytes())
    except OSError:
        return "UTC"


def _zone_named(name: str) -> str | None:
    """`name` when it is a zone this machine knows, else None."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None
    return name


def _zone_of_file(data: bytes) -> str:
    """The first zone, Region/City first, whose compiled file is `data`; UTC when none is."""
    found = []
    for root in map(Path, zoneinfo.TZPATH):
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d not in ("posix", "right"))
            for file in files:
                candidate = Path(folder, file)
                try:
                    if candidate.stat().st_size == len(data) and candidate.read_bytes() == data:
                        found.append(candidate.relative_to(root).as_posix())
                except OSError:
                    continue
        if found:
            return min(found, key=lambda name: ("/" not in name, name.startswith("Etc/"), name))
    return "UTC"
