"""Logging for every command: one line per event with its context fields, as text or JSON, secrets redacted.

    setup_logging(secrets_of(config), level="info", fmt="text")

One handler on the root logger, so uvicorn's loggers (which propagate once uvicorn is given no logging config
of its own) pass the same redaction filter and formatter as ours. Control characters from anything a source
or a client sent are escaped, so no message can forge a second log line or drive the terminal.

No client can fill a disk through the log either: `RateLimit` lets a burst of lines through per logger and
message template, then a trickle, and writes "N similar lines suppressed" in their place (at the next line
that passes after `summary_every` seconds, and whenever `flush_suppressed()` is called: `serve` does so
periodically and when it stops); a global ceiling bounds all lines together.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "color_message"}
# Control characters, and the direction overrides and isolates that would show a line in another order than it reads.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
_NEEDS_QUOTES = re.compile(r'[\s="\\]')
_TRACEBACKS = logging.Formatter()


def escape_controls(text: str, *, keep_newlines: bool = False) -> str:
    """Control characters as visible escapes.

    >>> escape_controls("a\\nCRITICAL x\\x1b[2J")
    'a\\\\nCRITICAL x\\\\x1b[2J'
    """

    def visible(match: re.Match[str]) -> str:
        char = match.group(0)
        if keep_newlines and char == "\n":
            return char
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(
            char, f"\\x{ord(char):02x}" if ord(char) < 256 else f"\\u{ord(char):04x}"
        )

    return _CONTROL.sub(visible, text)


def logfmt_value(value: object) -> str:
    """A field's value as logfmt writes it: quoted when it holds a space, '=', '"' or '\\', so that a value a client
    sent ("/x reason=ok client=10.0.0.1") cannot pose as fields of its own.

    >>> logfmt_value("pbs-main"), logfmt_value("/x client=10.0.0.1"), logfmt_value('a"b'), logfmt_value("")
    ('pbs-main', '"/x client=10.0.0.1"', '"a\\\\"b"', '""')
    """
    text = str(value)
    if text and not _NEEDS_QUOTES.search(text):
        return escape_controls(text)
    return '"' + escape_controls(text.replace("\\", "\\\\").replace('"', '\\"')) + '"'


class RedactSecrets(logging.Filter):
    """Replaces any configured secret that slipped into a message or field with stars."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Longest first, so a secret that contains another is starred whole.
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def _clean(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "********")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._clean(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            # Format the traceback now (Formatter.format reuses a set exc_text), so it can be cleaned too: an
            # exception message may quote a URL, a header or a config value.
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._clean(record.exc_text)
        if record.stack_info:
            record.stack_info = self._clean(record.stack_info)
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, self._clean(value))
        return True


class _Bucket:
    """A token bucket: `capacity` lines at once, refilled at `rate` lines a second."""

    __slots__ = ("at", "capacity", "rate", "tokens")

    def __init__(self, capacity: float, rate: float, now: float) -> None:
        self.capacity, self.rate, self.tokens, self.at = capacity, rate, capacity, now

    def refill(self, now: float) -> float:
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        return self.tokens

    def take(self, now: float) -> bool:
        if self.refill(now) >= 1.0:
            self.tokens -= 1.0
            return True
        return False


_SUMMARY = "_suppressed_summary"
_MANY = (__name__, "(many different messages)")


class RateLimit(logging.Filter):
    """Per (logger, message template): `burst` lines, then `per_second`; all lines together: `total_burst`,
    then `total_per_second`. What is held back is counted and written as one summary line per template (the
    `max_summaries` most frequent; the rest, and lines over the global ceiling, share one more line).

    >>> limit = RateLimit(burst=2, per_second=0, clock=lambda: 0.0)
    >>> [limit.filter(logging.makeLogRecord({"msg": "x %s", "args": (n,), "levelno": 30})) for n in range(4)]
    [True, True, False, False]
    >>> [r.getMessage() for r in limit.take_summaries()]
    ['2 similar lines suppressed']
    """

    def __init__(
        self,
        *,
        burst: int = 100,
        per_second: float = 0.5,
        total_burst: int = 500,
        total_per_second: float = 50.0,
        summary_every: float = 30.0,
        max_templates: int = 1000,
        max_summaries: int = 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.burst, self.per_second = float(burst), per_second
        self.summary_every, self.max_templates, self.max_summaries = summary_every, max_templates, max_summaries
        self._clock = clock
        now = clock()
        self._total = _Bucket(total_burst, total_per_second, now)
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._held: dict[tuple[str, str], list[int]] = {}  # key -> [count, highest level]
        self._summary_at = now + summary_every
        self._lock = threading.Lock()
        self.handler: logging.Handler | None = None  # where summaries go; set by setup_logging

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _SUMMARY, False):
            return True
        template = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
        key = (record.name, template[:200])
        with self._lock:
            now = self._clock()
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self.max_templates:  # pruned at each summary, not here: O(1) per line
                    key = _MANY
                bucket = self._buckets.setdefault(key, _Bucket(self.burst, self.per_second, now))
            allowed = bucket.take(now)
            if allowed and not self._total.take(now):
                allowed, key = False, _MANY
            if not allowed:
                held = self._held.setdefault(key, [0, record.levelno])
                held[0] += 1
                held[1] = max(held[1], record.levelno)
            due = now >= self._summary_at
        if due:
            self.flush()
        return allowed

    def _prune(self, now: float) -> None:
        for key in [k for k, b in self._buckets.items() if b.refill(now) >= b.capacity and k not in self._held]:
            del self._buckets[key]

    def take_summaries(self) -> list[logging.LogRecord]:
        """The summary lines for everything held back so far (and forget it)."""
        with self._lock:
            held, self._held = self._held, {}
            now = self._clock()
            self._summary_at = now + self.summary_every
            self._prune(now)
        ranked = sorted(held.items(), key=lambda item: item[1][0], reverse=True)
        if len(ranked) > self.max_summaries:
            rest = ranked[self.max_summaries - 1 :]
            many = [sum(c for _, (c, _) in rest), max(level for _, (_, level) in rest)]
            ranked = [*ranked[: self.max_summaries - 1], (_MANY, many)]
        summaries = []
        for (name, template), (count, level) in ranked:
            record = logging.LogRecord(name, level, "", 0, f"{count} similar lines suppressed", None, None)
            setattr(record, "like", template[:120])  # noqa: B010 - not a LogRecord attribute
            setattr(record, _SUMMARY, True)
            summaries.append(record)
        return summaries

    def flush(self) -> None:
        """Write the pending summaries through the handler."""
        handler = self.handler
        for record in self.take_summaries():
            if handler is not None:
                handler.handle(record)


def flush_suppressed() -> None:
    """Write every pending "N similar lines suppressed" summary of the root logger's handlers now."""
    for handler in logging.getLogger().handlers:
        for log_filter in handler.filters:
            if isinstance(log_filter, RateLimit):
                log_filter.flush()


def _context(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")}


class ContextFormatter(logging.Formatter):
    """`2026-12-05 23:10:01,123 WARNING backup_glance.collector: poll failed source=pbs error=...`"""

    def format(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.getMessage())
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        context = _context(record)
        if context:
            line += " " + " ".join(f"{key}={logfmt_value(value)}" for key, value in context.items())
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + escape_controls(record.exc_text, keep_newlines=True)
        if record.stack_info:
            line += "\n" + escape_controls(self.formatStack(record.stack_info), keep_newlines=True)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the context fields, and `exception` if any."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _context(record).items():
            document.setdefault(key, value if isinstance(value, int | float | bool | None) else str(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            document["exception"] = record.exc_text
        return json.dumps(document, ensure_ascii=True)


def setup_logging(secrets: Iterable[str] = (), *, level: str = "info", fmt: str = "text") -> logging.Handler:
    """Route every logger, uvicorn's included, and Python's warnings through one redacting handler on stderr;
    returns it."""
    handler = logging.StreamHandler(sys.stderr)
    formatter: logging.Formatter = (
        JsonFormatter() if fmt == "json" else ContextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.setFormatter(formatter)
    limit = RateLimit()  # first: it keys on the message template, which redaction replaces with the message
    limit.handler = handler
    handler.addFilter(limit)
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # a library's warning is a log line in our format too, not raw text on stderr
    quiet = logging.DEBUG if level == "debug" else logging.WARNING
    for name in ("httpx", "httpcore", "uvicorn", "uvicorn.error", "uvicorn.access", "asyncio"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
        logger.setLevel(quiet)
    return handler


def update_secrets(handler: logging.Handler, secrets: Iterable[str]) -> None:
    """Swap the redaction list of a handler made by `setup_logging` (once the config is read)."""
    for old in [f for f in handler.filters if isinstance(f, RedactSecrets)]:
        handler.removeFilter(old)
    handler.addFilter(RedactSecrets(secrets))
