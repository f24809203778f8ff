"""The one exception hierarchy of backup-glance.

    BackupGlanceError
    ├── ConfigError            file, line and key path of every problem found
    ├── ScheduleError          the expression and the part that is wrong (also a ValueError)
    ├── SourceError            the source's name and kind; `permanent` tells the collector whether to retry soon
    │   ├── SourceUnreachable      connection refused, DNS, reset: transient
    │   ├── SourceTimeout          no answer within the per-request timeout: transient
    │   ├── SourceAuthError        token rejected (HTTP 401/403): permanent until the config changes
    │   ├── SourceTLSError         certificate not trusted or fingerprint mismatch: permanent
    │   └── SourceProtocolError    payload not what the reference says (malformed, truncated, too large)
    └── HistoryError           the SQLite history could not be opened or written

Messages are written for a person and name the thing that is wrong, never a secret.
"""

from __future__ import annotations

from .clean import clean_text

MAX_MESSAGE = 1000


class BackupGlanceError(Exception):
    """Base class of every error backup-glance raises on purpose."""


class ConfigError(BackupGlanceError):
    """The configuration is invalid; `problems` lists every problem found, one line each."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class ScheduleError(BackupGlanceError, ValueError):
    """A schedule expression cannot be parsed; `position` is the offset of the offending part."""

    def __init__(self, message: str, *, expression: str = "", position: int | None = None) -> None:
        self.expression = expression
        self.position = position
        super().__init__(message)

    def caret(self) -> str:
        """The expression on its own line with a caret under the offending part ("" when that is unknown).

        >>> ScheduleError("bad hour", expression="mon 25:00", position=4).caret()
        '\\n  mon 25:00\\n      ^'
        """
        if self.position is None or not 0 <= self.position <= len(self.expression):
            return ""
        # One column a character, and no line break: the caret stays under its part, and the line stays one.
        shown = "".join(char if char.isprintable() else " " if char == "\t" else "\ufffd" for char in self.expression)
        return f"\n  {shown}\n  {' ' * self.position}^"


class SourceError(BackupGlanceError):
    """Talking to a source failed."""

    permanent = False

    def __init__(self, message: str, *, source: str = "", kind: str = "", http_status: int | None = None) -> None:
        self.source = source
        self.kind = kind
        # The HTTP status that caused this error, when there was one: lets a source tell "this endpoint does not
        # exist on this version" (404/501) from other failures without parsing the message.
        self.http_status = http_status
        prefix = f"{kind} '{source}': " if source else ""
        # The message often quotes what the source sent (an error body): no line breaks or escape sequences
        # may reach a log line, and no megabyte may reach the board.
        super().__init__(clean_text(prefix + message, MAX_MESSAGE))


class SourceUnreachable(SourceError):
    """The source could not be reached (refused, DNS, reset)."""


class SourceTimeout(SourceError):
    """The source did not answer within the request timeout."""


class SourceAuthError(SourceError):
    """The source rejected our credentials; retrying fast will not help."""

    permanent = True


class SourceTLSError(SourceError):
    """The source's certificate is not trusted or does not match the pinned fingerprint."""

    permanent = True


class SourceProtocolError(SourceError):
    """The source answered with something that is not what its API documents."""


class HistoryError(BackupGlanceError):
    """The history database could not be used."""
