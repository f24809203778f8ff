"""The restic source against a broken or hostile repository, environment or binary.

Real restic on real repositories made in a temporary folder where restic can be made to misbehave on demand
(a damaged snapshot file, a hung file, a password with an '@'); small fake binaries for what a given restic
release prints that the installed one does not (restic 0.17+ `RESTIC_HOST`, 0.18+ JSON exit errors, the
"could not load snapshots" warning after ~45 s of retries) and for what no restic does (a process SIGKILL cannot
end, garbage). The rule: one bad record costs that record, named in `problems`; a repository that cannot be read
is an error naming it; nothing waits forever, nothing piles up.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from backup_glance.config import ResticSourceConfig
from backup_glance.errors import SourceAuthError, SourceProtocolError, SourceTimeout, SourceUnreachable
from backup_glance.health import evaluate
from backup_glance.model import HistoryView, SourceState, Status
from backup_glance.sources import restic
from backup_glance.sources._bounds import EdgeBounds
from backup_glance.sources.restic import ResticSource, redact

from .conftest import NOW

# Not imported from test_restic: that module imports the health package, which these tests do not need.
PASSWORD = "restic-Test-Passw0rd-xyz"
RESTIC = shutil.which("restic")
needs_restic = pytest.mark.skipif(RESTIC is None, reason="restic binary not installed (apt-get install restic)")

ID_A, ID_B, ID_C = "ab" * 32, "cd" * 32, "ef" * 32


def a_source(repository: str, tmp_path: Path, **overrides: object) -> ResticSource:
    """A source with a clean environment; UPPER-case overrides are variables of the service's environment."""
    fields: dict[str, object] = {"name": "rs", "type": "restic", "repository": repository, "timezone": "UTC"}
    fields.update({k: v for k, v in overrides.items() if not k.isupper()})
    environ = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "RESTIC_CACHE_DIR": str(tmp_path / "c")}
    environ.update({k: str(v) for k, v in overrides.items() if k.isupper()})
    return ResticSource(ResticSourceConfig.model_validate(fields), environ=environ, clock=lambda: NOW)


def fake_restic(tmp_path: Path, script: str) -> str:
    path = tmp_path / "fake-restic"
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def entry(snapshot_id: str, host: str = "h", time: str = "2026-08-05T02:00:00Z") -> dict[str, Any]:
    return {"time": time, "id": snapshot_id, "short_id": snapshot_id[:8], "hostname": host, "paths": ["/a"]}


def printing(tmp_path: Path, stdout: object, stderr: str = "", code: int = 0) -> str:
    """A fake restic printing `stdout` (JSON unless text) and `stderr`, then exiting with `code`."""
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    out.write_text(stdout if isinstance(stdout, str) else json.dumps(stdout))
    err.write_text(stderr)
    return fake_restic(tmp_path, f"cat '{out}'; cat '{err}' >&2; exit {code}")


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A repository with three snapshots of one folder, by hosts h1, h2, h3 (in that order)."""
    if RESTIC is None:
        pytest.skip("restic binary not installed")
    root = tmp_path_factory.mktemp("hostile")
    data = root / "data"
    data.mkdir()
    env = {"PATH": os.environ.get("PATH", ""), "RESTIC_PASSWORD": PASSWORD, "RESTIC_CACHE_DIR": str(root / "cache")}
    run = [RESTIC, "-r", str(root / "repo")]
    subprocess.run([*run, "init"], env=env, check=True, capture_output=True)
    for host in ("h1", "h2", "h3"):
        (data / "f").write_text(host)
        subprocess.run([*run, "backup", "--quiet", "--host", host, str(data)], env=env, check=True, capture_output=True)
    yield root / "repo"


def a_copy(made: Path, tmp_path: Path) -> Path:
    repository = tmp_path / "repo"
    shutil.copytree(made, repository)
    return repository


def snapshot_files(repository: Path) -> dict[str, Path]:
    """The repository's snapshot files by host (each snapshot file is encrypted JSON: ask restic which is which)."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "RESTIC_PASSWORD": PASSWORD,
        "RESTIC_CACHE_DIR": str(repository.parent / "c"),
    }
    listed = subprocess.run(
        [RESTIC or "restic", "-r", str(repository), "snapshots", "--json", "--no-cache"],
        env=env,
        check=True,
        capture_output=True,
    ).stdout
    return {item["hostname"]: repository / "snapshots" / item["id"] for item in json.loads(listed)}


@pytest.mark.restic
@needs_restic
class TestRealRepository:
    async def test_a_damaged_snapshot_file_costs_that_snapshot_and_is_named(self, made: Path, tmp_path: Path) -> None:
        # restic up to 0.19 warns on stderr, leaves the snapshot out and exits 0: the group whose only snapshot it
        # was used to vanish from the board without a word.
        repository = a_copy(made, tmp_path)
        damaged = snapshot_files(repository)["h3"]
        damaged.write_bytes(b"not a restic blob")
        obs = await a_source(str(repository), tmp_path, password_env="PW", PW=PASSWORD).poll()
        assert sorted(t.name.split(":")[0] for t in obs.targets) == ["h1", "h2"]
        (problem,) = obs.problems
        assert problem.startswith(f"restic could not load snapshot {damaged.name[:8]} (")
        assert problem.endswith("; left out")

    async def test_while_a_snapshot_cannot_be_loaded_every_group_is_unread_and_not_judged_fine(
        self, made: Path, tmp_path: Path
    ) -> None:
        # Which group the snapshot restic could not load belonged to is not known (here h3's only one): before, h1
        # and h2 stayed ok as if the repository had been read in full, and h3 looked as it last was.
        repository = a_copy(made, tmp_path)
        source = a_source(str(repository), tmp_path, password_env="PW", PW=PASSWORD)
        whole = await source.poll()
        assert whole.unread == ()
        keys = sorted(t.key for t in whole.targets)
        snapshot_files(repository)["h3"].write_bytes(b"not a restic blob")
        shutil.rmtree(tmp_path / "c")  # restic's cache still holds the snapshot as it was
        damaged = await source.poll()
        assert len(damaged.targets) == 2 and sorted(damaged.unread) == [(key, NOW) for key in keys]

        history = HistoryView(snapshots=whole.snapshots, recorded_since=NOW)
        poll_interval = timedelta(minutes=5)

        def statuses(at: datetime) -> dict[str, tuple[Status, tuple[str, ...]]]:
            state = SourceState("rs", "restic", poll_interval, damaged, NOW, NOW)  # the damaged poll, at NOW
            board = evaluate(services=[], sources=[state], history=history, now=at, display_tz="UTC")
            return {v.service_id.removeprefix("rs-")[:2]: (v.status, v.reasons) for v in board.verdicts}  # by host

        assert {name for name, (status, _) in statuses(NOW).items() if status is not Status.OK} == set()
        later = statuses(NOW + 3 * poll_interval)  # unreadable for longer than two poll intervals
        assert {name: status for name, (status, _) in later.items()} == dict.fromkeys(
            ("h1", "h2", "h3"), Status.UNKNOWN
        )
        assert later["h1"][1][0].startswith("its backups on source 'rs' unreadable since ")

        fresh = await a_source(str(repository), tmp_path, password_env="PW", PW=PASSWORD).poll()
        assert sorted(fresh.unread) == [(t.key, None) for t in sorted(fresh.targets, key=lambda t: t.key)]

    async def test_a_group_whose_every_snapshot_was_forgotten_is_unprotected_not_ok(
        self, made: Path, tmp_path: Path
    ) -> None:
        # restic lists the others without a word (as after `restic forget` of them all): history still has h3's
        # backup, which is why it was judged ok, with 0 snapshots left.
        repository = a_copy(made, tmp_path)
        source = a_source(str(repository), tmp_path, password_env="PW", PW=PASSWORD)
        whole = await source.poll()
        snapshot_files(repository)["h3"].unlink()
        shutil.rmtree(tmp_path / "c")
        now = await source.poll()
        assert now.problems == () and now.unread == () and len(now.targets) == 2
        state = SourceState("rs", "restic", timedelta(minutes=5), now, NOW, NOW)
        history = HistoryView(snapshots=whole.snapshots, recorded_since=NOW)
        board = evaluate(services=[], sources=[state], history=history, now=NOW, display_tz="UTC")
        by_host = {v.service_id.removeprefix("rs-")[:2]: v for v in board.verdicts}
        assert {host: v.status for host, v in by_host.items()} == {
            "h1": Status.OK,
            "h2": Status.OK,
            "h3": Status.UNPROTECTED,
        }
        assert by_host["h3"].reasons[0].startswith("no backup left: the one snapshot seen, taken ")
        assert by_host["h3"].snapshot_count == 0

    async def test_a_repository_file_that_never_answers_is_a_timeout_naming_the_repository(
        self, made: Path, tmp_path: Path
    ) -> None:
        # A hung mount, as restic meets it: a read that never returns (here a FIFO nobody writes).
        repository = a_copy(made, tmp_path)
        (key,) = (repository / "keys").iterdir()
        key.unlink()
        os.mkfifo(key)
        source = a_source(str(repository), tmp_path, password_env="PW", PW=PASSWORD, timeout="1s")
        began = time.monotonic()
        with pytest.raises(SourceTimeout, match=f"restic snapshots of {repository} did not finish within 1s"):
            await source.poll()
        assert time.monotonic() - began < 5

    async def test_a_timeout_while_restic_retries_says_what_it_kept_retrying(self, made: Path, tmp_path: Path) -> None:
        # restic retries an unreadable snapshots/ for ~45 s before it says anything else: with the default 10 s
        # timeout, the board said only "did not finish", and the reason sat unread in its retry notices.
        repository = a_copy(made, tmp_path)
        shutil.rmtree(repository / "snapshots")
        (repository / "snapshots").write_text("not a folder")
        source = a_source(str(repository), tmp_path, password_env="PW", PW=PASSWORD, timeout="3s")
        with pytest.raises(SourceTimeout) as raised:
            await source.poll()
        assert str(raised.value).endswith(
            f"did not finish within 3s (it kept retrying: readdirent {repository}/snapshots: not a directory)"
        )

    async def test_a_repository_a_prune_holds_locked_exclusively_is_still_read(
        self, made: Path, tmp_path: Path
    ) -> None:
        # Already fine (`--no-lock`), now tested: a prune that hangs on an index file keeps its exclusive lock.
        repository = a_copy(made, tmp_path)
        index = next((repository / "index").iterdir())
        index.unlink()
        os.mkfifo(index)
        env = {"PATH": os.environ.get("PATH", ""), "RESTIC_PASSWORD": PASSWORD, "RESTIC_CACHE_DIR": str(tmp_path / "p")}
        prune = subprocess.Popen(
            [RESTIC or "restic", "-r", str(repository), "prune"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(200):
                if any((repository / "locks").iterdir()):
                    break
                await asyncio.sleep(0.05)
            assert any((repository / "locks").iterdir())
            obs = await a_source(str(repository), tmp_path, password_env="PW", PW=PASSWORD).poll()
            assert len(obs.snapshots) == 3 and obs.problems == ()
        finally:
            prune.kill()
            prune.wait()

    async def test_a_password_with_an_at_sign_in_a_rest_url_is_not_shown_in_part(self, tmp_path: Path) -> None:
        # restic (Go) splits user info from the host at the last '@'; the redaction must too.
        repository = "rest:http://backup:S3cr@t-pw@127.0.0.1:1/repo"
        with pytest.raises(SourceUnreachable) as exc:
            await a_source(repository, tmp_path, password_env="PW", PW=PASSWORD).poll()
        assert "rest:http://***@127.0.0.1:1/repo" in str(exc.value)
        assert "t-pw" not in str(exc.value)

    async def test_hostile_restic_variables_inherited_from_the_service_are_not_passed_on(
        self, made: Path, tmp_path: Path
    ) -> None:
        # Already fine (a password command, another repository, a key hint all dropped); now tested, with the real
        # restic: any of them reaching it makes it fail or read something else.
        marker = tmp_path / "password-command-ran"
        source = a_source(
            str(made),
            tmp_path,
            password_env="PW",
            PW=PASSWORD,
            RESTIC_PASSWORD_COMMAND=f"touch {marker}",
            RESTIC_PASSWORD_FILE="/nonexistent/password",
            RESTIC_REPOSITORY_FILE="/nonexistent/repository",
            RESTIC_KEY_HINT="0" * 64,
        )
        obs = await source.poll()
        assert len(obs.snapshots) == 3 and not marker.exists()


class TestWhatOtherResticReleasesPrint:
    async def test_a_listing_that_failed_is_an_error_not_an_empty_repository(self, tmp_path: Path) -> None:
        # restic 0.14 to 0.19, when it cannot list snapshots/ (a permission, a dropped mount): retries ~45 s, warns,
        # prints what it has (`[]`) and exits 0. That was "ok, no snapshots" on the board.
        binary = printing(
            tmp_path, [], "could not load snapshots: readdirent /srv/restic/snapshots: permission denied\n"
        )
        source = a_source("/srv/restic", tmp_path, password_env="PW", PW="x", restic_binary=binary)
        with pytest.raises(SourceUnreachable, match=r"could not list the snapshots of /srv/restic \(readdirent"):
            await source.poll()

    async def test_the_listing_error_after_a_flood_of_retry_notices_is_still_seen(self, tmp_path: Path) -> None:
        retries = "".join(
            f"Load(<snapshot/{i:010x}>, 0, 0) returned error, retrying after 1.5s: connection reset\n"
            for i in range(5000)
        )
        binary = printing(tmp_path, [entry(ID_A)], retries + "could not load snapshots: context deadline exceeded\n")
        source = a_source("/srv/restic", tmp_path, password_env="PW", PW="x", restic_binary=binary)
        with pytest.raises(SourceUnreachable, match="could not list the snapshots"):
            await source.poll()

    async def test_a_timeout_names_the_last_retry_reason_without_credentials(self, tmp_path: Path) -> None:
        notices = (
            "Load(<config/0000000000>, 0, 0) returned error, retrying after 552ms: connection refused\n"
            "List(snapshot) returned error, retrying after 1.2s: Get https://u:secret@host/x: TLS handshake timeout\n"
        )
        notices_file = tmp_path / "notices"
        notices_file.write_text(notices)
        binary = fake_restic(tmp_path, f"cat '{notices_file}' >&2; exec sleep 30")
        source = a_source("/srv/restic", tmp_path, password_env="PW", PW="x", restic_binary=binary, timeout="1s")
        with pytest.raises(SourceTimeout) as raised:
            await source.poll()
        said = str(raised.value)
        assert said.endswith("(it kept retrying: Get https://***@host/x: TLS handshake timeout)")
        assert "secret" not in said

    async def test_a_timeout_without_retries_says_only_that(self, tmp_path: Path) -> None:
        binary = fake_restic(tmp_path, "echo 'reading index' >&2; exec sleep 30")
        source = a_source("/srv/restic", tmp_path, password_env="PW", PW="x", restic_binary=binary, timeout="1s")
        with pytest.raises(SourceTimeout) as raised:
            await source.poll()
        assert str(raised.value).endswith("restic snapshots of /srv/restic did not finish within 1s")

    async def test_snapshots_restic_ignored_are_named_in_either_wording(self, tmp_path: Path) -> None:
        stderr = (
            f'Ignoring "{ID_B}": load <snapshot/cdcdcdcdcd>: ciphertext verification failed\n'
            f"could not load snapshot {ID_C[:8]}: load <snapshot/efefefefef>: invalid data returned\n"
        )
        binary = printing(tmp_path, [entry(ID_A)], stderr)
        obs = await a_source("/r", tmp_path, password_env="PW", PW="x", restic_binary=binary).poll()
        assert [s.snapshot_id for s in obs.snapshots] == ["abababab"]
        assert obs.problems == (
            "restic could not load snapshot cdcdcdcd (load <snapshot/cdcdcdcdcd>: ciphertext verification failed)"
            " and 1 more; left out",
        )

    async def test_an_inherited_restic_host_does_not_hide_the_other_hosts(self, tmp_path: Path) -> None:
        # restic 0.17+ lists only $RESTIC_HOST's snapshots: an env file shared with a backup container set it.
        seen = tmp_path / "seen"
        binary = fake_restic(tmp_path, f'echo "host=${{RESTIC_HOST-unset}}" > {seen}; echo "[]"')
        await a_source("/r", tmp_path, password_env="PW", PW="x", restic_binary=binary, RESTIC_HOST="nas01").poll()
        assert seen.read_text().strip() == "host=unset"

    async def test_a_restic_host_the_config_sets_itself_is_kept(self, tmp_path: Path) -> None:
        seen = tmp_path / "seen"
        binary = fake_restic(tmp_path, f'echo "host=${{RESTIC_HOST-unset}}" > {seen}; echo "[]"')
        source = a_source("/r", tmp_path, password_env="PW", PW="x", restic_binary=binary, env={"RESTIC_HOST": "a"})
        await source.poll()
        assert seen.read_text().strip() == "host=a"

    async def test_a_json_exit_error_shows_its_message_not_its_json(self, tmp_path: Path) -> None:
        # restic 0.18+ with --json prints its exit error as a JSON line on stderr, after any retry notices.
        message = "Fatal: unable to open config file: Stat: Get https://s3.example/b/config: 503 Slow Down"
        stderr = (
            "List(snapshot) returned error, retrying after 552ms: 503 Slow Down\n"
            + json.dumps({"message_type": "exit_error", "code": 1, "message": message + "\nmore detail"})
            + "\n"
        )
        binary = printing(tmp_path, "", stderr, code=1)
        source = a_source("s3:https://s3.example/b", tmp_path, password_env="PW", PW="x", restic_binary=binary)
        with pytest.raises(SourceUnreachable) as exc:
            await source.poll()
        assert str(exc.value) == (
            "restic 'rs': restic exited with code 1 on s3:https://s3.example/b: unable to open config file: Stat: Get"
            " https://s3.example/b/config: 503 Slow Down"
        )

    async def test_a_json_wrong_password_is_still_an_auth_error(self, tmp_path: Path) -> None:
        stderr = json.dumps({"message_type": "exit_error", "code": 12, "message": "Fatal: wrong password"}) + "\n"
        binary = printing(tmp_path, "", stderr, code=12)
        with pytest.raises(SourceAuthError, match="wrong password or no key found for repository /r"):
            await a_source("/r", tmp_path, password_env="PW", PW="x", restic_binary=binary).poll()


class TestHostileBinary:
    async def test_restic_killed_by_a_signal_says_so(self, tmp_path: Path) -> None:
        # The OOM killer, or someone's `kill -9`: there is no exit code to show.
        binary = fake_restic(tmp_path, "kill -9 $$")
        with pytest.raises(SourceUnreachable, match=r"restic was killed by SIGKILL .*on /r"):
            await a_source("/r", tmp_path, password_env="PW", PW="x", restic_binary=binary).poll()

    @pytest.mark.parametrize(
        ("stdout", "message"),
        [
            ("", r"restic printed nothing \(repository /r\)"),
            (
                "Pulling image restic/restic...\n[]",
                r"restic printed malformed JSON \(JSONDecodeError\) \(repository /r\)",
            ),
            ('{"a": 1}', r"restic snapshots --json did not print a list \(repository /r\)"),
        ],
    )
    async def test_output_that_is_no_listing_is_an_error_naming_the_repository(
        self, tmp_path: Path, stdout: str, message: str
    ) -> None:
        binary = printing(tmp_path, stdout)
        with pytest.raises(SourceProtocolError, match=message):
            await a_source("/r", tmp_path, password_env="PW", PW="x", restic_binary=binary).poll()

    async def test_entries_that_are_no_snapshot_are_named(self, tmp_path: Path) -> None:
        binary = printing(tmp_path, [entry(ID_A), 5, "x", None, [entry(ID_B)]])
        obs = await a_source("/r", tmp_path, password_env="PW", PW="x", restic_binary=binary).poll()
        assert [s.snapshot_id for s in obs.snapshots] == ["abababab"]
        assert obs.problems == ("entry 2 is no snapshot: 5 and 3 more; left out",)

    @pytest.mark.parametrize("snapshot_id", ["", 5, None, {"a": 1}])
    async def test_an_entry_without_a_usable_id_is_named(self, tmp_path: Path, snapshot_id: object) -> None:
        bad = {**entry(ID_B), "id": snapshot_id, "short_id": snapshot_id}
        binary = printing(tmp_path, [entry(ID_A), bad])
        obs = await a_source("/r", tmp_path, password_env="PW", PW="x", restic_binary=binary).poll()
        assert [s.snapshot_id for s in obs.snapshots] == ["abababab"]
        assert obs.problems == ("unreadable snapshot entry (no id); left out",)

    async def test_snapshots_sharing_a_short_id_keep_their_full_ids(self, tmp_path: Path) -> None:
        # 8 hex digits are 32 bits: in a repository of 100,000 snapshots two share one more likely than not, and a
        # snapshot id must be unique within its source (history keys on it).
        twin_a, twin_b = "12345678" + "a" * 56, "12345678" + "b" * 56
        binary = printing(tmp_path, [entry(ID_A), entry(twin_a, "h1"), entry(twin_b, "h2")])
        obs = await a_source("/r", tmp_path, password_env="PW", PW="x", restic_binary=binary).poll()
        assert sorted(s.snapshot_id for s in obs.snapshots) == sorted(["abababab", twin_a, twin_b])
        assert sorted(r.run_id for r in obs.runs) == sorted(s.snapshot_id for s in obs.snapshots)
        assert obs.problems == ()

    async def test_a_snapshot_listed_twice_is_kept_once_and_named(self, tmp_path: Path) -> None:
        binary = printing(tmp_path, [entry(ID_A), entry(ID_B), entry(ID_B, time="2026-08-05T03:00:00Z")])
        obs = await a_source("/r", tmp_path, password_env="PW", PW="x", restic_binary=binary).poll()
        assert [s.snapshot_id for s in obs.snapshots] == ["abababab", "cdcdcdcd"]
        assert obs.snapshots[1].taken_at.hour == 2  # the first listed
        assert obs.problems == ("snapshot cdcdcdcd listed twice; left out",)

    async def test_absurd_values_cost_their_record_or_field_at_the_bounds(self, tmp_path: Path) -> None:
        # Already fine, now tested in one listing: year 0001/9999, no offset, 2^64 bytes, control characters.
        items = [
            entry(ID_A),
            {**entry("01" * 32), "time": "0001-01-01T00:00:00Z"},
            {**entry("02" * 32), "time": "9999-12-31T23:59:59Z"},
            {**entry("03" * 32), "time": "2026-08-05T02:00:00"},
            {**entry("04" * 32), "summary": {"total_bytes_processed": 2**64, "data_added": -1}},
            {**entry("05" * 32, "evil\x1b[2J\u202ehost"), "paths": ["/a\n/b", "\x00"]},
        ]
        binary = printing(tmp_path, items)
        obs = await a_source("/r", tmp_path, password_env="PW", PW="x", restic_binary=binary).poll()
        bounded = EdgeBounds().bound(obs, NOW)
        assert sorted(s.snapshot_id for s in bounded.snapshots) == ["04040404", "05050505", "abababab"]
        assert all(t.key.isprintable() and t.name.isprintable() for t in bounded.targets)
        sizes = {s.snapshot_id: s.size_bytes for s in bounded.snapshots}
        assert sizes["04040404"] is None
        assert bounded.problems[0].startswith("unreadable snapshot entry (ValueError: timestamp without an offset")
        assert sorted(p.split(":")[0] for p in bounded.problems[1:]) == [
            "impossible run sizes",
            "impossible snapshot sizes",
            "runs with impossible dates",
            "snapshots with impossible dates",
        ]


class TestNothingPilesUp:
    async def test_a_password_file_on_a_hung_mount_stops_neither_the_service_nor_piles_up_checks(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # On a hung NFS or SMB mount, asking whether the password file can be read never returns: asked on the
        # event loop (as before), every source and the web server stopped with it. Simulated: the check blocks.
        password = tmp_path / "pw"
        password.write_text("x")
        password.chmod(0o600)
        release, asked, access = threading.Event(), [], os.access

        def hung(path: Any, mode: int, **kwargs: Any) -> bool:
            if str(path) == str(password):
                asked.append(path)
                release.wait(30)
            return access(path, mode, **kwargs)

        monkeypatch.setattr(restic, "_ACCESS_S", 0.3)
        monkeypatch.setattr(restic.os, "access", hung)
        source = a_source("/r", tmp_path, password_file=str(password), restic_binary=printing(tmp_path, [entry(ID_A)]))
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticker = asyncio.create_task(tick())
        try:
            for _ in range(3):
                with pytest.raises(SourceUnreachable, match=r"password_file .* did not answer within 0.3 s"):
                    await source.poll()
            assert ticks > 40  # the event loop went on while the check waited
            assert len(asked) == 1  # one check, waited for again at each poll: not one more stuck thread each time
            release.set()
            assert [s.snapshot_id for s in (await source.poll()).snapshots] == ["abababab"]
        finally:
            release.set()
            ticker.cancel()

    async def test_a_restic_that_does_not_end_when_killed_is_not_joined_by_another(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # In a hung NFS mount restic sleeps uninterruptibly: SIGKILL does not end it until the mount answers.
        # Starting one more at every poll would pile up a process (and a thread waiting for it) every few minutes.
        # Simulated: the kill is made to do nothing.
        monkeypatch.setattr(restic, "_kill_group", lambda process: None)
        monkeypatch.setattr(restic, "_REAP_SECONDS", 0.3)
        monkeypatch.setattr(subprocess.Popen, "kill", lambda self: None)
        pids = tmp_path / "pids"
        binary = fake_restic(tmp_path, f"echo $$ >> {pids}; exec sleep 30")
        source = a_source("/mnt/nfs/restic", tmp_path, password_env="PW", PW="x", restic_binary=binary, timeout="0.3s")
        with pytest.raises(SourceTimeout):
            await source.poll()
        try:
            with pytest.raises(SourceUnreachable, match=r"restic \(pid \d+\) started for /mnt/nfs/restic .*not ended"):
                await source.poll()
            assert len(pids.read_text().split()) == 1
        finally:
            for pid in pids.read_text().split():
                os.kill(int(pid), signal.SIGKILL)
        for _ in range(100):  # once it ended, polls start restic again
            await asyncio.sleep(0.05)
            try:
                await source.poll()
            except SourceUnreachable:
                continue
            except SourceTimeout:
                break
        pid = pids.read_text().split()[-1]
        os.kill(int(pid), signal.SIGKILL)  # the second one, left running by the kill that does nothing
        assert len(pids.read_text().split()) == 2


class TestHelpers:
    @pytest.mark.parametrize(
        ("text", "shown"),
        [
            ("rest:https://u:p@ss@host:8000/repo", "rest:https://***@host:8000/repo"),
            ("rest:https://u:secret@host/a@b", "rest:https://***@host/a@b"),
            ("a https://x@h/ and https://y:z@k/", "a https://***@h/ and https://***@k/"),
        ],
    )
    def test_redaction_takes_user_info_up_to_the_last_at_sign_of_the_host_part(self, text: str, shown: str) -> None:
        assert redact(text) == shown
