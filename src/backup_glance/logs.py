"""Logging for every command: one line per event with its context fields, as text or JSON, secrets redacted.

    setup_logging(secrets_of(config), level="info", fmt="text")

One handler on the root logger, so uvicorn's loggers (which propagate once uvicorn is given no logging config
of its own) pass the same redaction filter and formatter as ours. Control characters from anything a source
or a client sent are escaped, so no message can forge a second log line or drive the terminal.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "color_message"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
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
            line += " " + " ".join(f"{key}={escape_controls(str(value))}" for key, value in context.items())
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
    """Route every logger, uvicorn's included, through one redacting handler on stderr; returns it."""
    handler = logging.StreamHandler(sys.stderr)
    formatter: logging.Formatter = (
        JsonFormatter() if fmt == "json" else ContextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.setFormatter(formatter)
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
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
