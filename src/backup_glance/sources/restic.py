"""restic source: `restic snapshots --json` on a repository -> one `Observation` per poll.

Sits at the start of the flow (sources -> observations -> health). It runs the restic binary as a child process
(see `reference/backrest-restic.md` Part B) and returns model records; it makes no verdicts.

Secrets: the password reaches restic only through the child's environment: `RESTIC_PASSWORD_FILE` (from
`password_file`) or `RESTIC_PASSWORD` (copied from the variable `password_env` names). The repository goes in
`RESTIC_REPOSITORY`, not argv, because a REST/S3 URL may carry credentials; argv is world-readable in `ps`.
Messages quote at most one line restic wrote on stderr, with the repository's user-info redacted.

restic keeps no run history: a failed run leaves no snapshot. Each snapshot is reported as one successful run of
its group's job, so health judges "newest snapshot vs schedule". `--no-lock` because listing is read-only and a
lock would both write to the repository and fail while a backup holds an exclusive lock.

restic up to 0.19 exits 0 when it could not load a snapshot (it warns on stderr and leaves it out) and even when it
could not list the snapshots at all (it prints what it had, often `[]`): stderr is read on success too, so that a
damaged snapshot is named in `problems` and an unlistable repository is an error, not an empty one.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import re
import signal
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

from ..clean import quoted
from ..config import ResticSourceConfig
from ..errors import SourceAuthError, SourceError, SourceProtocolError, SourceTimeout, SourceUnreachable
from ..model import Job, JobKind, JobRun, Observation, RunOutcome, ScheduleRef, Snapshot, Target
from ._bounds import FUTURE_SLACK
from ._util import is_remote_uri, json_loads, left_out, offsite_named, utc_now

KIND = "restic"
log = logging.getLogger(__name__)
_MAX_OUTPUT = 256 * 1024 * 1024  # a JSON list of 100k snapshots is ~60 MB; more means something is wrong
_MAX_STDERR = 64 * 1024  # its start: the first line is shown; also kept: its end (where the exit error is)
_CHUNK = 1024 * 1024
_REAP_SECONDS = 5.0
_LINGER_S = 1.0  # after restic ended, for the end of its output
_ACCESS_S = 5.0  # for the password file to say whether it can be read (a hung NFS or SMB mount never does)
_EXIT_CHECK_S = 0.2
# Inherited variables that would override ours or point restic elsewhere.
_SCRUB = frozenset(
    {
        "RESTIC_PASSWORD",
        "RESTIC_PASSWORD_FILE",
        "RESTIC_PASSWORD_COMMAND",
        "RESTIC_REPOSITORY",
        "RESTIC_REPOSITORY_FILE",
        "RESTIC_KEY_HINT",
        # restic 0.17+ lists only this host's snapshots: an env file shared with a backup container sets it, and
        # every other host's groups would vanish from the board. Kept when the source's own `env` sets it.
        "RESTIC_HOST",
    }
)
# Up to the last '@' before the path: Go (restic) reads "u:p@ss@host" as user "u", password "p@ss".
_USERINFO = re.compile(r"(?<=://)[^/\s]*@")
# What restic up to 0.19 says on stderr, exiting 0, about a snapshot it left out (<= 0.15, then 0.16+ wording) and
# about a listing it could not make (then it prints what it had, often nothing).
_UNLOADED = re.compile(r'(?:could not load snapshot ([0-9a-f]+)|Ignoring "([0-9a-f]+)"): (.*)')
_UNLISTED = re.compile(r"could not load snapshots: (.*)")
_RETRYING = re.compile(r"\) returned error, retrying after ")  # a backend's retry notice: no reason of its own
_RETRY_REASON = re.compile(r"\) returned error, retrying after [^:]*: (.+)")
_FRACTION = re.compile(r"(\.\d{6})\d+")
# Starting the binary failed in a way only a config change fixes (not a binary, a directory, a bad path).
_PERMANENT_ERRNOS = frozenset({errno.ENOEXEC, errno.EISDIR, errno.ENOTDIR, errno.ELOOP, errno.ENAMETOOLONG})


class _Output:
    """What one of restic's pipes said, kept as it is read: its first `most` bytes (more: `overflowed`, and then
    `on_overflow` is called once) and, past those, its last `tail` bytes. Kept here, not in the reading coroutine,
    so that what came before a reading that had to be given up is not lost."""

    def __init__(self, most: int, on_overflow: Callable[[], object] | None = None, *, tail: int = 0) -> None:
        self._most = most
        self._on_overflow = on_overflow
        self._chunks: list[bytes] = []
        self._size = 0
        self._tail_most = tail
        self._tail = b""
        self.overflowed = False

    async def read(self, stream: asyncio.StreamReader | None) -> None:
        """Read `stream` to its end; what is past `most` is read and let go, so restic is never stuck writing."""
        while stream is not None and (chunk := await stream.read(_CHUNK)):
            kept = min(len(chunk), self._most - self._size)
            self._size += len(chunk)
            if kept > 0:
                self._chunks.append(chunk[:kept])
            if self._tail_most and kept < len(chunk):
                self._tail = (self._tail + chunk[max(kept, 0) :])[-self._tail_most :]
            if self._size > self._most and not self.overflowed:
                self.overflowed = True
                if self._on_overflow is not None:
                    self._chunks.clear()  # too much is refused: what came of it is let go at once
                    self._on_overflow()

    def text(self) -> bytes:
        return b"".join(self._chunks)

    def lines(self) -> list[str]:
        """The non-empty lines of the start and (when there was more) the end; a line cut in two is left out."""
        head = b"".join(self._chunks)
        if self._tail:
            head = head.rpartition(b"\n")[0] + b"\n" + self._tail.partition(b"\n")[2]
        text = head.decode("utf-8", "replace")
        return [line.strip() for line in text.splitlines() if line.strip()]


async def _drain(stream: asyncio.StreamReader | None) -> None:
    while stream is not None and await stream.read(_CHUNK):
        pass


async def _until_done(process: asyncio.subprocess.Process, readers: asyncio.Future[Any]) -> None:
    """Until restic's output has ended, or restic has and then _LINGER_S more: a child it left running (a daemon a
    wrapper script starts) may hold its pipes open for ever, after restic said everything."""
    while not readers.done():
        if process.returncode is not None:
            await asyncio.wait({readers}, timeout=_LINGER_S)
            break
        await asyncio.wait({readers}, timeout=_EXIT_CHECK_S)
    if readers.done():
        readers.result()  # a reading that failed says why
        await process.wait()  # its output ended: restic is ending too


def _kill_group(process: asyncio.subprocess.Process) -> None:
    """SIGKILL to restic's process group: restic, and whatever it started that is still there."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


async def _stop_group(process: asyncio.subprocess.Process) -> bool:
    """Kill the group and reap restic; whether it ended. Its pipes are read to their end first: Python 3.11's asyncio
    has a child reaped only once they closed, and a pipe whose reading was given up mid-way never would."""
    _kill_group(process)
    try:
        async with asyncio.timeout(_LINGER_S if process.returncode is not None else _REAP_SECONDS):
            await asyncio.gather(_drain(process.stdout), _drain(process.stderr))
            await process.wait()
    except TimeoutError:
        # Something outside restic's group holds its pipes open: let go of them, or asyncio would wait for them to
        # close before it counted restic as ended (and complain when its loop closes first).
        transport = getattr(process, "_transport", None)
        if transport is not None:
            transport.close()
        if process.returncode is None:
            log.warning("restic did not end after being killed", extra={"pid": process.pid})
    return process.returncode is not None


def redact(text: str) -> str:
    """Hide `user:password@` in URLs.

    >>> redact("rest:https://u:secret@host:8000/repo"), redact("rest:https://u:p@ss@host/a@b")
    ('rest:https://***@host:8000/repo', 'rest:https://***@host/a@b')
    """
    return _USERINFO.sub("***@", text)


def parse_time(value: str) -> datetime:
    """RFC 3339 with nanoseconds and an offset -> aware UTC (Python keeps microseconds).

    >>> parse_time("2026-08-06T02:00:05.123456789+02:00").isoformat()
    '2026-08-06T00:00:05.123456+00:00'
    """
    text = _FRACTION.sub(r"\1", value.strip()).replace("Z", "+00:00")
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp without an offset: {value!r}")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # "0001-01-01T00:30:00+01:00": in UTC it falls before year 1 (or after 9999)
        raise ValueError(f"timestamp outside the calendar: {value!r}") from None


class ResticSource:
    """Lists the snapshots of one restic repository and groups them (host, paths, tags)."""

    def __init__(
        self,
        config: ResticSourceConfig,
        *,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.name = config.name
        self.kind = KIND
        self._config = config
        self._environ = os.environ if environ is None else environ
        self._clock = clock
        self._repository = redact(config.repository)  # as messages name it
        # A restic that a kill did not end (stuck in a hung NFS/SMB mount, where SIGKILL waits for the I/O), and
        # when it was started: no other is started for this repository until it ended, or one would pile up, with
        # the thread that waits for it, at every poll.
        self._unended: tuple[asyncio.subprocess.Process, float] | None = None
        # Each group's key -> when the last poll in which restic loaded every snapshot listed it (see `_unread`).
        self._read_in_full: dict[str, datetime] = {}
        self._access: asyncio.Future[bool] | None = None  # the password file's check, while it has not answered

    async def aclose(self) -> None:
        return None

    def _error(self, cls: type[SourceError], message: str, *, permanent: bool | None = None) -> SourceError:
        error = cls(message, source=self.name, kind=KIND)
        if permanent is not None:
            error.permanent = permanent  # a config problem: retrying soon will not help
        return error

    def _child_env(self) -> dict[str, str]:
        env = {k: v for k, v in self._environ.items() if k not in _SCRUB}
        env.update(self._config.env)
        env["RESTIC_REPOSITORY"] = self._config.repository
        if self._config.password_file:
            env["RESTIC_PASSWORD_FILE"] = self._config.password_file
        elif self._config.password_env:
            password = self._environ.get(self._config.password_env)
            if not password:
                raise self._error(
                    SourceError, f"environment variable {self._config.password_env} is not set", permanent=True
                )
            env["RESTIC_PASSWORD"] = password
        return env

    async def _readable(self, path: str) -> bool:
        """Whether restic will be able to read `path`, asked in a thread: on a hung NFS or SMB mount the answer
        never comes, and on the event loop that would stop every source and the web server with it. A check
        still waiting is waited for again, not joined by another at every poll (each would hold a thread of the
        pool the history writes use too)."""
        if self._access is None:
            self._access = asyncio.ensure_future(asyncio.to_thread(os.access, path, os.R_OK))
        try:
            async with asyncio.timeout(_ACCESS_S):
                return await asyncio.shield(self._access)
        except TimeoutError:
            raise self._error(
                SourceUnreachable,
                f"password_file {path!r} did not answer within {_ACCESS_S:g} s (on a hung NFS or SMB mount?)",
            ) from None
        finally:
            if self._access.done():  # answered (or failed): the next poll asks afresh
                self._access = None

    def _check_unended(self) -> None:
        if self._unended is None:
            return
        process, started = self._unended
        if process.returncode is not None:
            self._unended = None
            return
        minutes = (time.monotonic() - started) / 60
        raise self._error(
            SourceUnreachable,
            f"restic (pid {process.pid}) started for {self._repository} {minutes:.0f} min ago has not ended although"
            " it was killed: it waits on the repository's storage (a hung NFS or SMB mount?); no other restic is"
            " started until it ends",
        )

    async def _run(self, *args: str) -> tuple[bytes, list[str]]:
        """restic's stdout and the lines of its stderr, when it exited 0."""
        self._check_unended()
        if self._config.password_file and not await self._readable(self._config.password_file):
            raise self._error(SourceError, f"cannot read password_file {self._config.password_file!r}", permanent=True)
        env = self._child_env()
        binary = self._config.restic_binary
        started = time.monotonic()
        try:
            process = await asyncio.create_subprocess_exec(
                binary,
                *args,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                # A group of its own: what restic starts (ssh for sftp, a wrapper's children) is stopped with it.
                start_new_session=True,
            )
        except FileNotFoundError:
            raise self._error(
                SourceError, f"restic binary {binary!r} not found (install restic or set restic_binary)", permanent=True
            ) from None
        except PermissionError:
            raise self._error(SourceError, f"restic binary {binary!r} is not executable", permanent=True) from None
        except OSError as exc:  # exec format error, a directory, out of processes or memory, ...
            reason = exc.strerror or exc.__class__.__name__
            permanent = exc.errno in _PERMANENT_ERRNOS
            raise self._error(
                SourceError, f"cannot start restic binary {binary!r}: {reason}", permanent=permanent
            ) from None
        except ValueError as exc:  # an environment no process can have (configs are checked; a last guard)
            raise self._error(SourceError, f"cannot start restic binary {binary!r}: {exc}", permanent=True) from None
        said = _Output(_MAX_OUTPUT, on_overflow=partial(_kill_group, process))
        complained = _Output(_MAX_STDERR, tail=_MAX_STDERR)
        readers = asyncio.gather(said.read(process.stdout), complained.read(process.stderr))
        try:
            async with asyncio.timeout(self._config.timeout.total_seconds()):  # wait_for may swallow a cancel on 3.11
                await _until_done(process, readers)
        except TimeoutError:
            seconds = self._config.timeout.total_seconds()
            message = f"restic snapshots of {self._repository} did not finish within {seconds:g}s"
            # A backend retries a failing read for about 45 s (restic 0.14): its notice says why, where a bare
            # timeout would not.
            if (retrying := _last_retry(complained.lines())) is not None:
                message += f" (it kept retrying: {redact(retrying)[:200]})"
            raise self._error(SourceTimeout, message) from None
        finally:
            # Done, timed out, too much said, or the poll was cancelled (shutdown): never leave restic, or anything
            # it started, running behind us.
            readers.cancel()
            await asyncio.wait({readers})
            if not readers.cancelled():
                readers.exception()  # seen: a reading given up is not an error of its own
            if not await _stop_group(process):
                self._unended = (process, started)
        if said.overflowed:
            raise self._error(
                SourceProtocolError,
                f"restic printed more than {_MAX_OUTPUT // 2**20} MB; refused (repository {self._repository})",
            )
        if process.returncode != 0:
            raise self._exit_error(process.returncode or 0, complained.lines())
        return said.text(), complained.lines()

    def _exit_error(self, code: int, lines: list[str]) -> SourceError:
        """Exit codes per reference B.2; restic < 0.17 exits 1 for everything, so stderr is read too."""
        stderr = "\n".join(lines)
        first = redact(_reason(lines))[:200]
        repository = self._repository
        if code == 12 or "wrong password" in stderr:
            return self._error(SourceAuthError, f"wrong password or no key found for repository {repository}")
        if code == 10 or "Is there a repository at the following location" in stderr:
            return self._error(SourceUnreachable, f"no repository at {repository} ({first})")
        if code == 11:
            return self._error(SourceUnreachable, f"repository {repository} is locked ({first})")
        if code == 130:
            return self._error(SourceUnreachable, f"restic was interrupted (repository {repository})")
        if code < 0:  # ended by a signal: the OOM killer, someone's kill; no code of its own to show
            name = _signal_name(-code)
            return self._error(SourceUnreachable, f"restic was killed by {name} (out of memory?) on {repository}")
        return self._error(SourceUnreachable, f"restic exited with code {code} on {repository}: {first}")

    async def poll(self) -> Observation:
        now = self._clock()
        raw, complaints = await self._run("snapshots", "--json", "--no-lock")
        repository = self._repository
        unloaded: list[str] = []
        for line in complaints:
            if (unlisted := _UNLISTED.match(line)) is not None:
                reason = redact(unlisted.group(1))[:200]
                raise self._error(SourceUnreachable, f"restic could not list the snapshots of {repository} ({reason})")
            if (found := _UNLOADED.match(line)) is not None:
                snapshot_id, reason = (found.group(1) or found.group(2))[:8], redact(found.group(3))[:200]
                unloaded.append(f"restic could not load snapshot {snapshot_id} ({reason})")
        if not raw.strip():
            raise self._error(SourceProtocolError, f"restic printed nothing (repository {repository})")
        try:
            items = json_loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:  # RecursionError: nested too deep
            raise self._error(
                SourceProtocolError,
                f"restic printed malformed JSON ({exc.__class__.__name__}) (repository {repository})",
            ) from None
        if items is None:  # restic 0.9-0.11 print `null` for an empty repository
            items = []
        if not isinstance(items, list):
            raise self._error(
                SourceProtocolError, f"restic snapshots --json did not print a list (repository {repository})"
            )
        observation = self._observation(now, items, unloaded)
        return replace(observation, unread=self._unread(observation, now, damaged=bool(unloaded)))

    def _unread(
        self, observation: Observation, now: datetime, *, damaged: bool
    ) -> tuple[tuple[str, datetime | None], ...]:
        """While restic cannot load a snapshot, which group it was is not known (the newest of any, say, or the
        only one of a group no longer listed): every group is as last read in full, and health says so after two
        poll intervals, as for a PBS namespace it could not read. A group first seen then was never read in full."""
        listed = [target.key for target in observation.targets]
        if not damaged:
            self._read_in_full = dict.fromkeys(listed, now)
            return ()
        return tuple((key, self._read_in_full.get(key)) for key in dict.fromkeys([*self._read_in_full, *listed]))

    def group_of(self, item: Mapping[str, Any]) -> str:
        """The group label: parts in `group_by` order joined by ':' (e.g. "nas01:/data/home")."""
        parts: list[str] = []
        for part in self._config.group_by:
            if part == "host":
                parts.append(str(item.get("hostname", "")))
            else:
                parts.append(_joined(item.get(part)))
        return ":".join(parts)

    def _observation(self, now: datetime, items: list[Any], unloaded: list[str] | None = None) -> Observation:
        """`unloaded`: the snapshots restic said it left out."""
        location = self._repository
        targets: dict[str, Target] = {}
        snapshots: list[Snapshot] = []
        runs: list[JobRun] = []
        unreadable: list[str] = []  # entries left out, and why: one bad entry costs that snapshot, not the poll
        noise: list[str] = []  # entries that are no snapshot at all
        twice: list[str] = []
        readable: list[tuple[dict[str, Any], datetime, str]] = []
        for number, item in enumerate(items, 1):
            if not isinstance(item, dict):
                noise.append(f"entry {number} is no snapshot: {quoted(item)}")
                continue
            full_id = item.get("id")  # 64 hex digits in every restic; `short_id` is deprecated
            if not isinstance(full_id, str) or not full_id:
                unreadable.append("unreadable snapshot entry (no id)")
                continue
            try:
                taken_at = parse_time(str(item["time"]))
            except (KeyError, ValueError) as exc:
                unreadable.append(f"unreadable snapshot entry ({exc.__class__.__name__}: {exc})")
                continue
            readable.append((item, taken_at, full_id))
        # A snapshot id is unique within a source (history keys on it), and restic's short ids are 8 hex digits:
        # at 100,000 snapshots two share one more likely than not. Those keep their full id; the very same id
        # listed again (no repository can hold it twice) costs the later entry.
        shorts = Counter(full_id[:8] for full_id in {full_id for _item, _at, full_id in readable})
        seen: set[str] = set()
        for item, taken_at, full_id in readable:
            if full_id in seen:
                twice.append(f"snapshot {full_id[:8]} listed twice")
                continue
            seen.add(full_id)
            snapshot_id = full_id[:8] if shorts[full_id[:8]] == 1 else full_id
            group = self.group_of(item)
            key = f"restic:{self.name}/{group}"
            targets.setdefault(key, Target(key, self.name, group, "restic"))
            summary: dict[str, Any] = item["summary"] if isinstance(item.get("summary"), dict) else {}
            total = summary.get("total_bytes_processed")
            added = summary.get("data_added")
            snapshots.append(
                Snapshot(
                    key,
                    self.name,
                    snapshot_id,
                    taken_at,
                    size_bytes=total if isinstance(total, int) else None,
                    location=location,
                    encrypted=True,  # restic repositories are always encrypted
                )
            )
            started, ended = _maybe_time(summary.get("backup_start")), _maybe_time(summary.get("backup_end"))
            runs.append(
                JobRun(
                    job_key=f"{self.name}/backup/{group}",
                    source=self.name,
                    run_id=snapshot_id,
                    started_at=started or taken_at,
                    ended_at=ended,
                    outcome=RunOutcome.OK,
                    target_key=key,
                    size_bytes=added if isinstance(added, int) else None,
                )
            )
        jobs: list[Job] = []
        ref = None
        if self._config.schedule:
            ref = ScheduleRef(self._config.schedule, self._config.dialect, self._config.timezone)
        elif self._config.max_age is not None:
            # No schedule: "a snapshot at least every max_age" is an interval counted from the last one.
            ref = ScheduleRef("", "interval", self._config.timezone, interval=self._config.max_age)
        if ref is not None:
            # A run dated after tomorrow is a broken record (the bounds drop it), not the job's last run.
            possible = now + FUTURE_SLACK
            newest: dict[str, JobRun] = {}
            for run in runs:
                if run.started_at <= possible and (
                    run.job_key not in newest or run.started_at > newest[run.job_key].started_at
                ):
                    newest[run.job_key] = run
            for key, target in sorted(targets.items()):
                job_key = f"{self.name}/backup/{target.name}"
                jobs.append(
                    Job(
                        key=job_key,
                        source=self.name,
                        kind=JobKind.BACKUP,
                        job_id=target.name,
                        name=target.name,
                        schedule=ref,
                        last_run=newest.get(job_key),
                        target_keys=(key,),
                        store=location,
                    )
                )
        snapshots.sort(key=lambda s: s.taken_at)
        named = offsite_named(self._config.offsite, location, self.name)
        offsite = named if named is not None else is_remote_uri(self._config.repository)
        return Observation(
            source=self.name,
            kind=KIND,
            observed_at=now,
            timezone=self._config.timezone,
            targets=tuple(targets.values()),
            snapshots=tuple(snapshots),
            jobs=tuple(jobs),
            runs=tuple(sorted(runs, key=lambda r: r.started_at)),
            offsite_locations=(location,) if offsite else (),
            problems=(*left_out(unloaded or ()), *left_out(noise), *left_out(unreadable), *left_out(twice)),
        )


def _joined(names: object) -> str:
    """Paths or tags as one label part, sorted; anything but a JSON list (5, true) names nothing."""
    return ",".join(sorted(str(n) for n in names)) if isinstance(names, list) else ""


def _reason(lines: list[str]) -> str:
    """The line of restic's stderr that says why it failed: the message of restic 0.18+'s JSON exit error (it
    comes last), else the first line that is no backend's retry notice, without "Fatal: "."""
    for line in reversed(lines):
        if line.startswith("{"):
            with contextlib.suppress(ValueError, TypeError, RecursionError):
                said = json.loads(line)
                if isinstance(said, dict) and said.get("message_type") == "exit_error":
                    message = str(said.get("message") or "").strip()
                    return message.splitlines()[0].removeprefix("Fatal: ") if message else "no message"
    plain = [line for line in lines if not _RETRYING.search(line)] or lines
    return plain[0].removeprefix("Fatal: ") if plain else "no message"


def _last_retry(lines: list[str]) -> str | None:
    """What the last of a backend's retry notices says failed (the notice without its own words), if any."""
    for line in reversed(lines):
        if (found := _RETRY_REASON.search(line)) is not None:
            return found.group(1).strip()
    return None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _maybe_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None


def create(config: ResticSourceConfig) -> ResticSource:
    return ResticSource(config)


__all__ = ["ResticSource", "create", "parse_time", "redact"]
