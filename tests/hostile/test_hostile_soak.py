"""A short soak: every attack at once for ~20 s against a real `serve` with 1,024 open files, while a
well-behaved client keeps asking. Memory and open files must be where they started once the attacks stop."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable

import pytest
from hostile_tools import address, log_bytes, open_fds, own_fd_room, report, request, rss_mb, serve, well_behaved

SOAK_S = 20.0
DEADLINE_S = 5.0


class Attacks:
    """Each attack in a loop on its own thread until `stop`."""

    def __init__(self, where: tuple[str, int]) -> None:
        self.where = where
        self.stop = threading.Event()
        self.counts: dict[str, int] = {}
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        attacks = (self.idle, self.idle, self.slowloris, self.huge_header, self.huge_header, self.garbage, self.foreign)
        for attack in attacks:
            thread = threading.Thread(target=self._loop, args=(attack,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(20)

    def _loop(self, attack: Callable[[], None]) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(OSError):
                attack()
            self.counts[attack.__name__] = self.counts.get(attack.__name__, 0) + 1

    def _connect(self) -> socket.socket:
        return socket.create_connection(self.where, timeout=10)

    def idle(self) -> None:
        """500 connections that say nothing, held for 3 s; two of these run: past the connection cap."""
        held = [self._connect() for _ in range(500)]
        self.stop.wait(3)
        for sock in held:
            sock.close()

    def slowloris(self) -> None:
        held = [self._connect() for _ in range(20)]
        for n in range(8):
            for sock in held:
                with contextlib.suppress(OSError):
                    sock.send(b"GET / HTTP/1.1\r\nHost: x\r\nX: "[n : n + 1])
            if self.stop.wait(1):
                break
        for sock in held:
            sock.close()

    def huge_header(self) -> None:
        with self._connect() as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Padding: ")
            for _ in range(160):  # up to 10 MB
                sock.sendall(b"a" * 65536)

    def garbage(self) -> None:
        with self._connect() as sock:  # a TLS hello on the HTTP port, then junk
            sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)))
            sock.recv(100)
        self.stop.wait(0.05)

    def foreign(self) -> None:
        request(self.where, "/api/v1/status", host="rebind.attacker.example", timeout=10)
        self.stop.wait(0.05)


def test_memory_and_open_files_are_flat_after_a_soak(tmp_path_factory: pytest.TempPathFactory) -> None:
    if own_fd_room() < 1500:
        pytest.skip("this test process may not open enough sockets (raise the hard open-file limit)")
    with serve(tmp_path_factory.mktemp("home"), nofile=1024) as server:
        assert server.process is not None
        pid, where = server.process.pid, address(server)
        for _ in range(50):  # warm: every page rendered once
            for path in ("/", "/glance/status", "/api/v1/status", "/calendar.ics"):
                request(where, path)
        time.sleep(0.5)
        fds_start, rss_start, logged_start = open_fds(pid), rss_mb(pid), log_bytes(server)
        samples: list[tuple[float, float, int]] = []
        attacks = Attacks(where)
        began = time.monotonic()
        with well_behaved(where) as client:
            attacks.start()
            while time.monotonic() - began < SOAK_S:
                samples.append((time.monotonic() - began, rss_mb(pid), open_fds(pid)))
                time.sleep(0.5)
            attacks.finish()
        time.sleep(DEADLINE_S + 1.5)  # whatever the attackers left open reaches its deadline
        fds_end, rss_end, logged = open_fds(pid), rss_mb(pid), log_bytes(server) - logged_start
        figures = client.figures()
        early = max(rss for t, rss, _ in samples if t < SOAK_S / 3)
        late = max(rss for t, rss, _ in samples if t >= 2 * SOAK_S / 3)
        report(
            "soak",
            seconds=SOAK_S,
            attacks=attacks.counts,
            rss_start_mb=round(rss_start, 1),
            rss_first_third_max_mb=round(early, 1),
            rss_last_third_max_mb=round(late, 1),
            rss_end_mb=round(rss_end, 1),
            fds_start=fds_start,
            fds_peak=max(fds for _, _, fds in samples),
            fds_end=fds_end,
            log_bytes=logged,
            **figures,
        )
        assert not client.failures, client.failures[:5]
        assert figures["p99_ms"] < 500, figures
        assert fds_end <= fds_start + 5
        assert late <= early + 15, "memory kept growing during the soak"
        assert rss_end <= rss_start + 30
        assert logged < 100_000
        assert "Traceback" not in server.output
