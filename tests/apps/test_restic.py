"""restic source against the real restic binary on repositories made in temporary folders.

Fake binaries (small shell scripts) cover what a real restic cannot be made to do on demand: print garbage,
hang, or show us its argv and environment.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backup_glance.config import ResticSourceConfig
from backup_glance.errors import SourceAuthError, SourceError, SourceProtocolError, SourceTimeout, SourceUnreachable
from backup_glance.health import evaluate
from backup_glance.history import History
from backup_glance.model import HistoryView, JobKind, ServiceSpec, SourceState, Status, Verdict
from backup_glance.sources import restic
from backup_glance.sources.restic import ResticSource, parse_time, redact

from .conftest import NOW

PASSWORD = "restic-Test-Passw0rd-xyz"
RESTIC = shutil.which("restic")
needs_restic = pytest.mark.skipif(RESTIC is None, reason="restic binary not installed (apt-get install restic)")


@dataclass
class Repo:
    path: Path
    password_file: Path
    data: Path


def _restic(repo: Path, *args: str, env: dict[str, str]) -> None:
    subprocess.run([RESTIC or "restic", "-r", str(repo), *args], env=env, check=True, capture_output=True)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Repo]:
    """Three backdated snapshots: nas01 /data twice (tag daily), pve /etc once (tag weekly)."""
    if RESTIC is None:
        pytest.skip("restic binary not installed")
    root = tmp_path_factory.mktemp("restic")
    password_file = root / "password"
    password_file.write_text(PASSWORD + "\n")
    data, etc = root / "data", root / "etc"
    data.mkdir()
    etc.mkdir()
    (data / "a.txt").write_text("hello\n")
    (etc / "hosts").write_text("127.0.0.1 localhost\n")
    env = {"PATH": os.environ.get("PATH", ""), "RESTIC_PASSWORD": PASSWORD, "RESTIC_CACHE_DIR": str(root / "cache")}
    env["TZ"] = "UTC"
    _restic(root / "repo", "init", env=env)
    # A copy taken before any backup is an empty repository with the same key: saves a second (slow) init.
    shutil.copytree(root / "repo", root / "empty")
    backup = ("backup", "--quiet", "--no-scan") if _supports_no_scan() else ("backup", "--quiet")
    _restic(
        root / "repo", *backup, "--host", "nas01", "--tag", "daily", "--time", "2026-08-04 02:00:00", str(data), env=env
    )
    (data / "b.txt").write_text("more\n")
    _restic(
        root / "repo", *backup, "--host", "nas01", "--tag", "daily", "--time", "2026-08-05 02:00:00", str(data), env=env
    )
    _restic(
        root / "repo", *backup, "--host", "pve", "--tag", "weekly", "--time", "2026-08-02 03:30:00", str(etc), env=env
    )
    yield Repo(root / "repo", password_file, data)


def _supports_no_scan() -> bool:
    out = subprocess.run([RESTIC or "restic", "backup", "--help"], capture_output=True, text=True).stdout
    return "--no-scan" in out


def a_source(repository: str, tmp_path: Path, **overrides: object) -> ResticSource:
    fields: dict[str, object] = {"name": "rs", "type": "restic", "repository": repository, "timezone": "UTC"}
    fields.update(overrides)
    environ = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "RESTIC_CACHE_DIR": str(tmp_path / "c")}
    environ.update({k: v for k, v in overrides.items() if k.isupper()})  # type: ignore[misc]
    config = ResticSourceConfig.model_validate({k: v for k, v in fields.items() if not k.isupper()})
    return ResticSource(config, environ=environ, clock=lambda: NOW)


def _running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie nobody reaped has ended too)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def fake_restic(tmp_path: Path, script: str) -> str:
    path = tmp_path / "fake-restic"
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.mark.restic
@needs_restic
class TestRealRestic:
    async def test_it_groups_snapshots_by_host_and_paths(self, repo: Repo, tmp_path: Path) -> None:
        obs = await a_source(str(repo.path), tmp_path, password_file=str(repo.password_file)).poll()
        data = f"restic:rs/nas01:{repo.data}"
        assert sorted(t.key for t in obs.targets) == sorted([data, f"restic:rs/pve:{repo.data.parent / 'etc'}"])
        mine = [s for s in obs.snapshots if s.target_key == data]
        assert [s.taken_at.isoformat() for s in mine] == ["2026-08-04T02:00:00+00:00", "2026-08-05T02:00:00+00:00"]
        assert all(len(s.snapshot_id) == 8 for s in mine)
        assert {r.target_key for r in obs.runs} == {t.key for t in obs.targets}

    async def test_it_groups_by_tags_and_reads_the_password_from_an_env_variable(
        self, repo: Repo, tmp_path: Path
    ) -> None:
        source = a_source(
            str(repo.path), tmp_path, password_env="MY_RESTIC_PW", MY_RESTIC_PW=PASSWORD, group_by=["tags"]
        )
        obs = await source.poll()
        assert sorted(t.key for t in obs.targets) == ["restic:rs/daily", "restic:rs/weekly"]
        assert PASSWORD not in repr(obs)

    async def test_a_schedule_gives_one_backup_job_per_group(self, repo: Repo, tmp_path: Path) -> None:
        source = a_source(
            str(repo.path),
            tmp_path,
            password_file=str(repo.password_file),
            group_by=["host"],
            schedule="0 2 * * *",
            timezone="Europe/Madrid",
        )
        obs = await source.poll()
        nas = next(j for j in obs.jobs if j.key == "rs/backup/nas01")
        assert (nas.kind, nas.target_keys) == (JobKind.BACKUP, ("restic:rs/nas01",))
        assert nas.schedule is not None and (nas.schedule.expression, nas.schedule.timezone) == (
            "0 2 * * *",
            "Europe/Madrid",
        )
        assert nas.last_run is not None and nas.last_run.started_at.isoformat() == "2026-08-05T02:00:00+00:00"

    async def test_max_age_without_a_schedule_is_an_interval_health_judges_from_the_last_snapshot(
        self, repo: Repo, tmp_path: Path
    ) -> None:
        source = a_source(
            str(repo.path), tmp_path, password_file=str(repo.password_file), group_by=["host"], max_age="8d"
        )
        obs = await source.poll()
        nas = next(j for j in obs.jobs if j.key == "rs/backup/nas01")
        assert nas.schedule is not None
        assert (nas.schedule.dialect, nas.schedule.interval) == ("interval", timedelta(days=8))
        state = SourceState("rs", "restic", timedelta(minutes=5), obs, NOW, NOW)

        def status_at(moment: datetime) -> Status:
            board = evaluate(services=[], sources=[state], history=HistoryView(), now=moment, display_tz="UTC")
            return next(v.status for v in board.verdicts if v.name == "nas01")

        last = datetime(2026, 8, 5, 2, 0, tzinfo=UTC)
        assert status_at(last + timedelta(days=7)) is Status.OK  # a weekly repo is fine at 7 days...
        assert status_at(last + timedelta(days=9, hours=2)) is Status.LATE  # ...and late after 8 days + 1h grace

    async def test_a_service_whose_group_no_longer_exists_is_not_ok_on_its_past_runs(
        self, repo: Repo, tmp_path: Path
    ) -> None:
        """group_by changed from host+paths to host: the service still naming the old group has no snapshot and no
        target any more, only the runs history recorded under it. It read `ok` with 0 snapshots."""
        history = History.open(tmp_path / "h.sqlite3", retention=timedelta(days=400))
        old_key = f"restic:rs/nas01:{repo.data}"
        spec = ServiceSpec(
            id="data",
            name="data",
            target_keys=(old_key,),
            grace=timedelta(hours=1),
            max_age=timedelta(days=400),
            lookback=timedelta(days=14),
        )

        async def judged(**overrides: object) -> Verdict:
            obs = await a_source(str(repo.path), tmp_path, password_file=str(repo.password_file), **overrides).poll()
            history.record(obs)
            view = history.view(since=NOW - timedelta(days=400), until=NOW + timedelta(days=1))
            state = SourceState("rs", "restic", timedelta(minutes=5), obs, NOW, NOW)
            board = evaluate(services=[spec], sources=[state], history=view, now=NOW, display_tz="UTC")
            return next(v for v in board.verdicts if v.service_id == "data")

        before = await judged()
        assert (before.status, before.snapshot_count) == (Status.OK, 2)
        after = await judged(group_by=["host"])
        history.close()
        assert after.status is Status.UNKNOWN, after.reasons
        assert after.reasons == (f"no source reports {old_key} now (last run known: Wed 05 Aug 02:00)",)

    async def test_a_wrong_password_is_an_auth_error_that_does_not_echo_it(self, repo: Repo, tmp_path: Path) -> None:
        source = a_source(str(repo.path), tmp_path, password_env="PW", PW="Wrong-Secret-123")
        with pytest.raises(SourceAuthError, match="wrong password or no key found for repository") as exc:
            await source.poll()
        assert "Wrong-Secret-123" not in str(exc.value)
        assert exc.value.permanent

    async def test_a_missing_repository_is_reported_as_such(self, repo: Repo, tmp_path: Path) -> None:
        source = a_source(str(tmp_path / "nope"), tmp_path, password_file=str(repo.password_file))
        with pytest.raises(SourceUnreachable, match=r"no repository at .*nope"):
            await source.poll()

    async def test_an_empty_repository_has_no_targets(self, repo: Repo, tmp_path: Path) -> None:
        obs = await a_source(str(repo.path.parent / "empty"), tmp_path, password_env="PW", PW=PASSWORD).poll()
        assert (obs.targets, obs.snapshots, obs.runs) == ((), (), ())


class TestProcess:
    async def test_the_password_travels_in_the_environment_never_in_argv(self, tmp_path: Path) -> None:
        out = tmp_path / "seen"
        binary = fake_restic(
            tmp_path, f'echo "$@" > {out}; echo "$RESTIC_PASSWORD|$RESTIC_REPOSITORY" >> {out}; echo "[]"'
        )
        source = a_source("/srv/repo", tmp_path, password_env="PW", PW=PASSWORD, restic_binary=binary)
        await source.poll()
        argv, env = out.read_text().splitlines()
        assert argv == "snapshots --json --no-lock"
        assert env == f"{PASSWORD}|/srv/repo"

    async def test_a_missing_binary_is_a_permanent_error(self, tmp_path: Path) -> None:
        source = a_source("/srv/repo", tmp_path, password_env="PW", PW="x", restic_binary="/nonexistent/restic")
        with pytest.raises(SourceError, match="restic binary '/nonexistent/restic' not found") as exc:
            await source.poll()
        assert exc.value.permanent

    async def test_an_unset_password_variable_is_named(self, tmp_path: Path) -> None:
        with pytest.raises(SourceError, match="environment variable MISSING_PW is not set"):
            await a_source("/srv/repo", tmp_path, password_env="MISSING_PW").poll()

    @pytest.mark.parametrize("output", ['[{"time": "2026-08-0', "not json", '{"a": 1}'])
    async def test_broken_output_is_a_protocol_error(self, tmp_path: Path, output: str) -> None:
        binary = fake_restic(tmp_path, f"printf '%s' '{output}'")
        with pytest.raises(SourceProtocolError, match="restic"):
            await a_source("/r", tmp_path, password_env="PW", PW="x", restic_binary=binary).poll()

    async def test_a_hanging_restic_times_out(self, tmp_path: Path) -> None:
        binary = fake_restic(tmp_path, "exec sleep 5")
        source = a_source("/r", tmp_path, password_env="PW", PW="x", restic_binary=binary, timeout="0.3s")
        with pytest.raises(SourceTimeout, match=r"did not finish within 0\.3s"):
            await source.poll()

    async def test_a_timed_out_restic_leaves_nothing_it_started_running(self, tmp_path: Path) -> None:
        # A wrapper's child (or restic's ssh for sftp) holds the pipes open after restic itself is killed.
        child_file = tmp_path / "child"
        binary = fake_restic(tmp_path, f"sleep 30 & echo $! > {child_file}; wait")
        source = a_source("/r", tmp_path, password_env="PW", PW="x", restic_binary=binary, timeout="0.5s")
        began = time.monotonic()
        with pytest.raises(SourceTimeout, match=r"did not finish within 0\.5s"):
            await source.poll()
        assert time.monotonic() - began < 5
        assert not _running(int(child_file.read_text()))

    async def test_a_daemon_a_wrapper_leaves_holding_the_output_open_costs_a_second_not_the_poll(
        self, tmp_path: Path
    ) -> None:
        # A wrapper that starts something in a session of its own (out of reach of restic's group), which keeps
        # the pipes open after restic said everything and ended.
        listing = tmp_path / "snapshots.json"
        listing.write_text(
            '[{"time": "2026-08-05T02:00:00Z", "id": "' + "ab" * 32 + '", "hostname": "h", "paths": ["/a"]}]'
        )
        daemon = tmp_path / "daemon"
        binary = fake_restic(tmp_path, f"setsid sh -c 'echo $$ > {daemon}; exec sleep 30' & cat {listing}")
        source = a_source("/r", tmp_path, password_env="PW", PW="x", restic_binary=binary, timeout="20s")
        began = time.monotonic()
        observation = await source.poll()
        assert time.monotonic() - began < 5
        assert [s.snapshot_id for s in observation.snapshots] == ["abababab"]
        for _ in range(50):
            if daemon.exists() and daemon.read_text().strip():
                break
            await asyncio.sleep(0.05)
        os.kill(int(daemon.read_text()), signal.SIGKILL)  # not ours to stop: it left restic's group

    async def test_endless_output_is_refused_at_the_bound_without_being_held(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(restic, "_MAX_OUTPUT", 2 * 1024 * 1024)
        binary = fake_restic(tmp_path, "exec cat /dev/zero")
        source = a_source("/r", tmp_path, password_env="PW", PW="x", restic_binary=binary, timeout="30s")
        began = time.monotonic()
        with pytest.raises(SourceProtocolError, match="restic printed more than 2 MB; refused"):
            await source.poll()
        assert time.monotonic() - began < 5  # refused as the bound was passed, not at the timeout

    async def test_a_binary_that_cannot_be_executed_is_a_source_error(self, tmp_path: Path) -> None:
        binary = tmp_path / "not-a-program"
        binary.write_bytes(b"\x00\x01garbage, no shebang")
        binary.chmod(0o755)
        source = a_source("/r", tmp_path, password_env="PW", PW="x", restic_binary=str(binary))
        with pytest.raises(SourceError, match=r"cannot start restic binary .*: Exec format error") as exc:
            await source.poll()
        assert exc.value.permanent

    async def test_a_cancelled_poll_kills_restic(self, tmp_path: Path) -> None:
        pid_file = tmp_path / "pid"
        binary = fake_restic(tmp_path, f"echo $$ > {pid_file}; exec sleep 30")
        source = a_source("/r", tmp_path, password_env="PW", PW="x", restic_binary=binary, timeout="60s")
        poll = asyncio.create_task(source.poll())
        for _ in range(200):
            if pid_file.exists() and pid_file.read_text().strip():
                break
            await asyncio.sleep(0.02)
        pid = int(pid_file.read_text())
        poll.cancel()
        with pytest.raises(asyncio.CancelledError):
            await poll
        with pytest.raises(ProcessLookupError):  # killed and reaped, not left sleeping
            os.kill(pid, 0)

    @pytest.mark.parametrize(
        ("code", "cls", "message"),
        [
            (12, SourceAuthError, "wrong password"),
            (10, SourceUnreachable, "no repository"),
            (11, SourceUnreachable, "locked"),
        ],
    )
    async def test_exit_codes_of_restic_0_17_and_later(
        self, tmp_path: Path, code: int, cls: type[SourceError], message: str
    ) -> None:
        binary = fake_restic(tmp_path, f"echo 'Fatal: something' >&2; exit {code}")
        with pytest.raises(cls, match=message):
            await a_source("/r", tmp_path, password_env="PW", PW="x", restic_binary=binary).poll()

    async def test_summary_sizes_and_nanosecond_times_are_read(self, tmp_path: Path) -> None:
        item = (
            '[{"time":"2026-08-06T02:00:05.123456789+02:00","paths":["/d"],"hostname":"h","id":"' + "9a" * 32 + '",'
            '"summary":{"backup_start":"2026-08-06T02:00:05.1+02:00","backup_end":"2026-08-06T02:03:10.4+02:00",'
            '"data_added":52428800,"total_bytes_processed":53687091200}}]'
        )
        binary = fake_restic(tmp_path, f"printf '%s' '{item}'")
        obs = await a_source("/r", tmp_path, password_env="PW", PW="x", restic_binary=binary).poll()
        (snap,) = obs.snapshots
        assert (snap.snapshot_id, snap.size_bytes, snap.taken_at.isoformat()) == (
            "9a9a9a9a",
            53687091200,
            "2026-08-06T00:00:05.123456+00:00",
        )
        (run,) = obs.runs
        assert (run.size_bytes, run.ended_at and run.ended_at.isoformat()) == (
            52428800,
            "2026-08-06T00:03:10.400000+00:00",
        )


class TestHelpers:
    def test_it_parses_nanoseconds_and_offsets(self) -> None:
        assert parse_time("2026-08-06T02:00:05.123456789+02:00").isoformat() == "2026-08-06T00:00:05.123456+00:00"
        assert parse_time("2026-08-01T02:00:00Z").isoformat() == "2026-08-01T02:00:00+00:00"

    def test_it_rejects_a_time_without_offset(self) -> None:
        with pytest.raises(ValueError, match="without an offset"):
            parse_time("2026-08-01T02:00:00")

    def test_it_redacts_credentials_in_repository_urls(self) -> None:
        assert redact("s3:https://AKIA:secret@s3.example.com/b") == "s3:https://***@s3.example.com/b"
