"""The `notify:` and `heartbeat:` keys: what their values mean, and which parts of their URLs are secret.

    quiet_hours("22:00-07:00")          # (time(22, 0), time(7, 0)); ValueError in plain words
    url_secrets("ntfys://tk_abc12345@ntfy.lan/backups")   # the whole URL and its token-like parts

Checked here (short of the network): every notify URL is one Apprise understands (Apprise is imported only when
there is one), `repeat` is at least a minute, `quiet` is `HH:MM-HH:MM`, `digest` is a Proxmox calendar event,
heartbeat URLs are http(s) and `every` is at least 5 s. No message ever repeats a URL: it may hold credentials.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

from ..errors import ScheduleError
from ..schedule import parse_schedule
from ._schema import as_text, http_url_problem, machine_zone, parse_duration
from ._yaml import KeyPath

MIN_REPEAT = timedelta(minutes=1)
MIN_HEARTBEAT = timedelta(seconds=5)
_QUIET = re.compile(r"\s*([01]?\d|2[0-3]):([0-5]\d)\s*-\s*([01]?\d|2[0-3]):([0-5]\d)\s*")
_PIECES = re.compile(r"[/:@?&=#,;+]+")
_HAS_LETTER = re.compile(r"[A-Za-z]")
_HAS_DIGIT = re.compile(r"\d")


def quiet_hours(text: str) -> tuple[time, time]:
    """ "22:00-07:00" -> (start, end) in the display zone; the span may cross midnight.

    >>> quiet_hours("22:00-07:00")
    (datetime.time(22, 0), datetime.time(7, 0))
    """
    match = _QUIET.fullmatch(text)
    if match is None:
        raise ValueError(f'{_short(text)} is not a span of hours: write HH:MM-HH:MM, e.g. "22:00-07:00"')
    h1, m1, h2, m2 = map(int, match.groups())
    if (h1, m1) == (h2, m2):
        raise ValueError('start and end are the same: quiet hours need a span, e.g. "22:00-07:00"')
    return time(h1, m1), time(h2, m2)


def scheme_of(url: str) -> str:
    """What a URL may show of itself in a message: its scheme only ("ntfy://…")."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    return f"{scheme}://…" if scheme.isalnum() and len(scheme) <= 20 else "the URL"


def display_url(url: str) -> str:
    """scheme://host/… of an http(s) URL: enough to tell targets apart, no path token, no credentials.

    >>> display_url("https://user:pw@hc.lan:8000/ping/5b2a-uuid?x=1")
    'https://hc.lan:8000/…'
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return scheme_of(url)
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}/…" if parts.scheme and host else scheme_of(url)


def url_secrets(url: str) -> list[str]:
    """The parts of a notification or ping URL that must never reach a log line: the whole URL, its password,
    and every piece that looks like a token (a Healthchecks UUID, a Gotify or Discord token, a bot token, a
    random ntfy topic). Host names and short words are left alone, so the log stays readable; a URL with none
    of these holds no secret and is not hidden either (the log would not say which target a line is about).

    >>> url_secrets("https://hc.lan/ping/0f4c5b2a-1d2e-4f3a-9b8c-7d6e5f4a3b2c")[2:]
    ['0f4c5b2a-1d2e-4f3a-9b8c-7d6e5f4a3b2c']
    >>> url_secrets("ntfy://ntfy.lan/backups")
    []
    """
    _scheme, sep, rest = url.partition("://")
    body = rest if sep else url
    parts: list[str] = []
    authority = body.split("/", 1)[0]
    if "@" in authority:
        user, _, password = authority.rpartition("@")[0].partition(":")
        parts += [password, unquote(password)] if password else [user, unquote(user)]
    for piece in _PIECES.split(body):
        parts += [candidate for candidate in (piece, unquote(piece)) if _token_like(candidate)]
    parts = [part for part in parts if len(part) >= 4]  # the log filter ignores shorter ones anyway
    return list(dict.fromkeys([url, body, *parts])) if parts else []


def _token_like(piece: str) -> bool:
    if "." in piece or len(piece) < 8:
        return False  # host names, IP addresses, ports and short words
    mixed = bool(_HAS_LETTER.search(piece)) and bool(_HAS_DIGIT.search(piece))
    return mixed or len(piece) >= 20


def notify_findings(data: dict[str, Any]) -> Iterator[tuple[KeyPath, str, bool]]:
    """(key path, message, is_warning) for the notify and heartbeat keys of the parsed document."""
    zone = data.get("timezone") if isinstance(data.get("timezone"), str) else machine_zone()
    targets = data.get("notify")
    if isinstance(targets, list):
        urls: dict[str, int] = {}
        for index, target in enumerate(targets):
            if isinstance(target, dict):
                yield from _target(("notify", index), target, str(zone))
                url = as_text(target.get("url"))
                if url is not None and url.strip():
                    if url.strip() in urls:
                        yield ("notify", index, "url"), f"the same URL as notify[{urls[url.strip()]}]", False
                    urls.setdefault(url.strip(), index)
    heartbeat = data.get("heartbeat")
    if isinstance(heartbeat, dict):
        for key in ("url", "fail_url"):
            url = as_text(heartbeat.get(key))
            if url is not None and (problem := http_url_problem(url, example="https://hc-ping.com/UUID")):
                yield ("heartbeat", key), problem, False
        every = _duration(heartbeat.get("every"))
        if every is not None and every < MIN_HEARTBEAT:
            yield ("heartbeat", "every"), f"must be at least {int(MIN_HEARTBEAT.total_seconds())}s", False


def _target(path: KeyPath, target: dict[str, Any], zone: str) -> Iterator[tuple[KeyPath, str, bool]]:
    # Numbers count as the text the model reads them as (`quiet: 99` is "99"), so they are checked too.
    url = as_text(target.get("url"))
    if url is not None:
        problem = apprise_problem(url)
        if problem:
            yield (*path, "url"), problem, False
    repeat = _duration(target.get("repeat"))
    if repeat is not None and repeat < MIN_REPEAT:
        yield (*path, "repeat"), "must be at least 1m (a reminder every few seconds is a flood)", False
    quiet = as_text(target.get("quiet"))
    if quiet is not None:
        try:
            quiet_hours(quiet)
        except ValueError as exc:
            yield (*path, "quiet"), str(exc), False
    digest = as_text(target.get("digest"))
    if digest is not None and (problem := schedule_problem(digest, "proxmox", zone, least_gap=MIN_REPEAT)):
        yield (*path, "digest"), problem, False
    if target.get("alerts") is False and not digest:
        yield path, "alerts: false without a digest: this target would never hear anything", True


def schedule_problem(
    expression: str, dialect: str, zone: str, *, least_gap: timedelta | None = None, now: datetime | None = None
) -> str | None:
    """Why `expression` is no schedule to keep: it does not parse, it never comes again (a date long past, a
    February 30th), or two of its runs lie less than `least_gap` apart. None when it is fine.

    >>> schedule_problem("*-02-30 03:00", "proxmox", "UTC")
    'never comes: no run after now (a date that is past, or that no calendar has)'
    """
    try:
        schedule = parse_schedule(expression, dialect=dialect, tz=zone)
    except ScheduleError as exc:
        return f"{exc}{exc.caret()}"
    first = schedule.next_after(now or datetime.now(UTC))
    if first is None:
        return "never comes: no run after now (a date that is past, or that no calendar has)"
    if least_gap is None:
        return None
    second = schedule.next_after(first)
    if second is not None and second.timestamp() - first.timestamp() < least_gap.total_seconds():  # real time
        return f"comes again within {_span(least_gap)} (a flood): write when it is due, e.g. mon 08:00"
    return None


def _span(gap: timedelta) -> str:
    seconds = int(gap.total_seconds())
    return f"{seconds // 60} minute{'s' * (seconds != 60)}" if seconds % 60 == 0 else f"{seconds} s"


def apprise_problem(url: str) -> str | None:
    """Why Apprise cannot use `url`, worded without the URL itself; None when it can."""
    text = url.strip()
    if not text:
        return "must not be empty: an Apprise URL, e.g. ntfy://ntfy.lan/backups"
    if "://" not in text:
        return "is not an Apprise URL: write SERVICE://..., e.g. ntfy://ntfy.lan/backups or mailto://user:pass@host"
    import apprise  # only when the config has targets: it takes a fifth of a second to load

    # Its log lines repeat the URL (a refused one in part: "mailto://me:a...z@host"), and this runs before the log
    # knows which secrets to hide: it says nothing while it reads one; the message below says what is wrong.
    apprise_log = logging.getLogger("apprise")
    apprise_log.setLevel(logging.WARNING)
    was_disabled = apprise_log.disabled
    apprise_log.disabled = True
    try:
        understood = apprise.Apprise.instantiate(text) is not None
    finally:
        apprise_log.disabled = was_disabled
    if not understood:
        return (
            f"{scheme_of(text)}: Apprise does not understand this URL (an unknown service, or a part it needs is "
            f"missing); see Apprise's list of services and their URL formats{_encoding_hint(text)}"
        )
    return None


def _encoding_hint(url: str) -> str:
    """A hint when the credentials of `url` hold a character that ends them early in a URL.

    >>> _encoding_hint("mailto://me:pa#ss@example.org")
    '; a user or password holding # ? / or @ must have it percent-encoded (%23 %3F %2F %40)'
    """
    rest = url.partition("://")[2]
    credentials = rest.rpartition("@")[0]
    if any(char in credentials for char in "#?/@"):
        return "; a user or password holding # ? / or @ must have it percent-encoded (%23 %3F %2F %40)"
    return ""


def _duration(value: object) -> timedelta | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError:
        return None  # reported as a shape problem


def _short(text: str) -> str:
    shown = repr(text)
    return shown if len(shown) <= 40 else shown[:37] + "..."


__all__ = ["apprise_problem", "display_url", "notify_findings", "quiet_hours", "scheme_of", "url_secrets"]
