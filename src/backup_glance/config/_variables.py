"""`${...}` references in configuration files, spelt as Glance spells them:

    ${NAME}                   the environment variable NAME
    ${secret:NAME}            the file /run/secrets/NAME (Docker and Podman secrets; the folder can be changed
                              with the environment variable BACKUP_GLANCE_SECRETS_DIR)
    ${readFileFromEnv:NAME}   the file whose absolute path is in the environment variable NAME
    \\${                       a literal "${"

Glance replaces references in the raw text and then parses YAML, so a secret holding `: #` or `{` breaks the
file or changes its meaning. Here each reference is first swapped for a placeholder of the same length (so every
line and column stays right) built from private-use characters (so YAML reads it as a plain string anywhere,
flow mappings included); after parsing, a string holding placeholders gets the values. A substituted value is
therefore always exactly one string, as written. A file's trailing newline is dropped.
"""

from __future__ import annotations

import os
import re
import select
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ._yaml import KeyPath, Position

DEFAULT_SECRETS_DIR = "/run/secrets"
SECRETS_DIR_VARIABLE = "BACKUP_GLANCE_SECRETS_DIR"
MAX_SECRET_BYTES = 64 * 1024  # a token or a password; a bigger file was picked by mistake

_MARK = "\uf8ff"
_PAD = "\uf8fe"
_DIGIT0 = 0xE000
_BASE = 4096
# Every "${" is a reference (or "\\${", a literal): one that is not well formed is a problem, not text kept as is.
_REFERENCE = re.compile(r"\\\$\{|\$\{(?P<body>[^}\n]*)(?P<close>\}?)")
_SHELL_FORM = re.compile(r":[-=?+]")
_BODY = re.compile(r"(?:(?P<kind>[A-Za-z]+):)?(?P<name>.*)", re.DOTALL)
_PLACEHOLDER = re.compile(f"{_MARK}([\ue000-\uefff])([\ue000-\uefff]){_PAD}*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SECRET_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
# Environment variables whose values are redacted from logs even outside secret fields (e.g. in a URL).
_SECRET_LOOKING = re.compile(r"TOKEN|SECRET|PASS|PWD|KEY|CRED|AUTH", re.IGNORECASE)
KINDS = ("secret", "readFileFromEnv")
# Keys whose empty value would weaken something (no auth, no credentials): empty is only allowed when written so.
SECRET_KEYS = ("auth_token", "calendar_key", "token_secret", "token", "password")


class SecretFileError(Exception):
    """A secret file could not be used; the message names the file and says why, never its content."""


PIPE_WAIT_S = 10.0  # how long a pipe's writer (`<(sops -d ...)`) may take to finish writing


def read_at_most(path: Path, most: int) -> bytes:
    """Up to `most` + 1 bytes of the file at `path`. A pipe or a device (`<(sops -d file)`, /dev/stdin) is read as
    its writer writes, never waited on for ever: a named pipe nobody opens for writing, or a writer that sends
    nothing for PIPE_WAIT_S, is a TimeoutError. A device or an unnamed pipe at its end is just empty. OSError as
    `open` raises it."""
    if path.is_file() or not path.exists():
        with path.open("rb") as handle:
            return handle.read(most + 1)
    # A named pipe may get its writer after we open it; an unnamed one (`<(cmd)`: /proc/<pid>/fd/pipe:[n]) had
    # it before, and at its end it has said everything.
    named_pipe = stat.S_ISFIFO(path.stat().st_mode) and "pipe:[" not in os.path.realpath(path)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        chunks: list[bytes] = []
        size = 0
        deadline = time.monotonic() + PIPE_WAIT_S  # moved on by every chunk that comes
        while size <= most:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:  # a writer that has not written (all of) it yet
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([fd], [], [], left)[0]:
                    raise TimeoutError(f"nothing came through it for {PIPE_WAIT_S:g} s") from None
                continue
            if not chunk and not chunks and named_pipe:  # no writer yet: one may come
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"nothing came through it within {PIPE_WAIT_S:g} s (does anything write to it?)")
                time.sleep(0.05)
                continue
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            deadline = time.monotonic() + PIPE_WAIT_S
        return b"".join(chunks)[: most + 1]
    finally:
        os.close(fd)


def read_secret_file(path: str | Path) -> str:
    """The text of a secret file without its trailing newline (nor a byte-order mark), or SecretFileError naming
    the path."""
    path = Path(path)
    try:
        if path.is_dir():
            raise SecretFileError(f"{path} is a folder, not a file")
        raw = read_at_most(path, MAX_SECRET_BYTES)
    except TimeoutError as exc:
        raise SecretFileError(f"cannot read {path}: {exc}") from None
    except OSError as exc:
        reason = (exc.strerror or exc.__class__.__name__).lower()
        raise SecretFileError(f"cannot read {path}: {reason}") from None
    except ValueError:  # a NUL in the name: no file can be called that
        raise SecretFileError(f"cannot read {str(path)!r}: a file name cannot hold a NUL character") from None
    if len(raw) > MAX_SECRET_BYTES:
        raise SecretFileError(f"{path} is larger than {MAX_SECRET_BYTES // 1024} KB; is it the right file?")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretFileError(f"{path} is not UTF-8 text") from None
    # A byte-order mark (Notepad writes one) is never part of a token or a password: it read as "a non-ASCII
    # character (character 1)".
    return text.removeprefix("\ufeff").rstrip("\r\n")


@dataclass(frozen=True, slots=True)
class _Reference:
    text: str  # as written, e.g. "${secret:pbs_token}"
    kind: str | None  # None: environment variable; "literal": an escaped "${"
    name: str


@dataclass
class Variables:
    """Prepares the text, then substitutes the values in parsed strings, collecting problems instead of failing."""

    env: Mapping[str, str]
    references: list[_Reference] = field(default_factory=list)
    problems: list[tuple[KeyPath, Position | None, str]] = field(default_factory=list)
    unresolved: set[KeyPath] = field(default_factory=set)  # paths whose value is missing: skip later complaints
    secret_values: list[str] = field(default_factory=list)  # for the log redaction filter
    substituted: set[KeyPath] = field(default_factory=set)  # paths whose value came through a reference
    files: list[tuple[KeyPath, Position | None, Path]] = field(default_factory=list)  # secret files read, by path

    def prepare(self, text: str) -> str:
        """The text with every reference replaced by a placeholder of the same length."""
        if _MARK in text:
            raise ValueError("the file contains the private-use character U+F8FF, which backup-glance reserves")

        def swap(match: re.Match[str]) -> str:
            written = match.group(0)
            if written == "\\${":
                reference = _Reference(written, "literal", "")
            elif not match.group("close"):
                reference = _Reference(written, "unclosed", "")
            elif _SHELL_FORM.search(match.group("body")):  # a shell default or check, ${HOME:-x}, ${HOME:?}
                reference = _Reference(written, None, match.group("body"))
            else:
                body = _BODY.fullmatch(match.group("body"))
                assert body is not None  # it matches any text
                reference = _Reference(written, body.group("kind"), body.group("name"))
            index = len(self.references)
            self.references.append(reference)
            if index >= _BASE * _BASE:
                raise ValueError("too many ${...} references")
            placeholder = _MARK + chr(_DIGIT0 + index // _BASE) + chr(_DIGIT0 + index % _BASE)
            return placeholder + _PAD * (len(written) - len(placeholder))

        return _REFERENCE.sub(swap, text)

    def original(self, text: str) -> str:
        """A string with its placeholders turned back into the references as written (keys, messages)."""
        return _PLACEHOLDER.sub(lambda m: self._reference(m).text, text)

    def substitute(self, text: str, path: KeyPath, position: Position) -> str | None:
        """The value of a parsed string with its references resolved; None when it holds none."""
        if _MARK not in text:
            return None
        self.substituted.add(path)
        sources: list[str] = []

        def value(match: re.Match[str]) -> str:
            reference = self._reference(match)
            resolved = self._value(reference, path, position)
            if reference.kind != "literal":
                sources.append(self._describe(reference))
            return resolved

        result = _PLACEHOLDER.sub(value, text)
        if result == "" and path not in self.unresolved and path and path[-1] in SECRET_KEYS:
            # An empty variable or secret file must not quietly turn authentication or credentials off.
            where = " and ".join(sources) or "the reference"
            key = path[-1]
            if key in ("auth_token", "calendar_key"):
                hint = f'set it, or write {key}: "" in the file to turn it off on purpose'
            else:
                hint = f"it must hold the {key}"
            self.problems.append((path, position, f"{where} {'are' if len(sources) > 1 else 'is'} empty; {hint}"))
            self.unresolved.add(path)
        return result

    def _describe(self, reference: _Reference) -> str:
        if reference.kind is None:
            return f"environment variable {reference.name}"
        if reference.kind == "secret":
            folder = self.env.get(SECRETS_DIR_VARIABLE) or DEFAULT_SECRETS_DIR
            return f"secret '{reference.name}' ({Path(folder) / reference.name})"
        if reference.kind == "readFileFromEnv":
            return f"the file named by {reference.name}"
        return reference.text

    def _reference(self, match: re.Match[str]) -> _Reference:
        index = (ord(match.group(1)) - _DIGIT0) * _BASE + (ord(match.group(2)) - _DIGIT0)
        return self.references[index]

    def _value(self, reference: _Reference, path: KeyPath, position: Position) -> str:
        if reference.kind == "literal":
            return "${"
        try:
            value, secret, file = self._resolve(reference)
        except LookupError as exc:
            self.problems.append((path, position, str(exc.args[0])))
            self.unresolved.add(path)
            return ""
        if file is not None:
            self.files.append((path, position, file))
        if secret and value:
            self.secret_values.append(value)
        return value

    def _resolve(self, reference: _Reference) -> tuple[str, bool, Path | None]:
        """-> (the value, whether it is a secret, the file it was read from)."""
        kind, name = reference.kind, reference.name
        if kind == "unclosed":
            raise LookupError(
                f"{reference.text!r}: a reference without its closing '}}' (write \\${{ for a literal '${{')"
            )
        if kind is None:
            if _SHELL_FORM.search(name):
                raise LookupError(f"{reference.text}: shell forms (${{NAME:-default}}, ${{NAME:?}}) are not supported")
            if not _ENV_NAME.fullmatch(name):
                raise LookupError(f"{reference.text}: not a variable name (letters, digits and _)")
            if name not in self.env:
                raise LookupError(f"environment variable {name} is not set")
            return self.env[name], bool(_SECRET_LOOKING.search(name)), None
        if kind == "secret":
            if not _SECRET_NAME.fullmatch(name):
                raise LookupError(f"{reference.text}: a secret's name is a file name (letters, digits, . _ -)")
            folder = self.env.get(SECRETS_DIR_VARIABLE)
            file = Path(folder or DEFAULT_SECRETS_DIR) / name
            if not folder and not file.exists():  # a first run outside a container: say where they are looked for
                where = f"{DEFAULT_SECRETS_DIR}, the default; set {SECRETS_DIR_VARIABLE} to a folder of your own"
                raise LookupError(f"secret '{name}': no file {file} (secret files are read from {where})")
            return self._file(file, f"secret '{name}'"), True, file
        if kind == "readFileFromEnv":
            if not _ENV_NAME.fullmatch(name):
                raise LookupError(f"{reference.text}: not a variable name (letters, digits and _)")
            if name not in self.env:
                raise LookupError(f"environment variable {name} is not set (it should hold a file's path)")
            target = Path(self.env[name])
            if not target.is_absolute():
                raise LookupError(f"environment variable {name} must hold an absolute path, not {str(target)!r}")
            return self._file(target, f"file from {name}"), True, target
        known = ", ".join(f"${{{k}:NAME}}" for k in KINDS)
        raise LookupError(f"{reference.text}: unknown kind '{kind}' (use ${{NAME}}, {known})")

    @staticmethod
    def _file(path: Path, what: str) -> str:
        try:
            return read_secret_file(path)
        except SecretFileError as exc:
            raise LookupError(f"{what}: {exc}") from None


__all__ = [
    "DEFAULT_SECRETS_DIR",
    "SECRETS_DIR_VARIABLE",
    "SecretFileError",
    "Variables",
    "read_secret_file",
]
