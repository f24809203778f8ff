"""What the hostile-client tests share: a server with a chosen open-file limit, a well-behaved client that keeps
measuring, raw HTTP, and what /proc says about the server."""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from serve_process import ServeProcess

# `python -c` with the open-file limit set first: what `prlimit --nofile=N:N backup-glance serve` does.
_LIMITED = (
    "import resource, runpy; resource.setrlimit(resource.RLIMIT_NOFILE, ({n}, {n})); "
    "runpy.run_module('backup_glance', run_name='__main__', alter_sys=True)"
)
TOKEN = "hostile-test-token-0123456789abcdef"


def serve(home: Path, *, nofile: int | None = None, args: tuple[str, ...] = ()) -> ServeProcess:
    """A `serve` process (the demo homelab unless args name a config), optionally with RLIMIT_NOFILE=nofile."""
    command = None if nofile is None else [sys.executable, "-c", _LIMITED.format(n=nofile)]
    return ServeProcess(args, env={"HOME": str(home)}, command=command)


def address(server: ServeProcess) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    return host.strip("[]"), int(port)


def token_config(folder: Path) -> Path:
    """A config with auth_token and calendar_key; its one source points at a closed port and is polled rarely."""
    config = folder / "bg.yaml"
    config.write_text(
        "timezone: UTC\n"
        "sources:\n"
        "  - {name: pbs, type: pbs, url: 'https://127.0.0.1:9', token_id: 'a@pbs!b', token_secret: s3cret-value,"
        " timeout: 1s, poll_interval: 1h}\n"
        f"history: {{path: {folder / 'history.sqlite3'}}}\n"
        f"server: {{auth_token: {TOKEN}, calendar_key: calendar-key-0123456789abcdef}}\n"
    )
    config.chmod(0o600)
    return config


def request(
    where: tuple[str, int], path: str = "/healthz", *, host: str = "localhost", extra: str = "", timeout: float = 5.0
) -> tuple[int, dict[str, str], bytes]:
    """One GET on a new connection: status, headers (lower-case names), body."""
    with socket.create_connection(where, timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n".encode("latin-1"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines[0].startswith("HTTP/"):
        raise ConnectionResetError(f"no HTTP answer: {data[:40]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def log_bytes(server: ServeProcess) -> int:
    return sum(len(line) + 1 for line in server.lines)


def own_fd_room() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0] - open_fds(os.getpid())


class Client(threading.Thread):
    """A well-behaved client: a GET on a fresh connection every `every` seconds, /healthz and /glance/status in
    turn; keeps each latency and each failure."""

    def __init__(self, where: tuple[str, int], *, every: float = 0.02, timeout: float = 3.0, extra: str = "") -> None:
        super().__init__(daemon=True)
        self.where, self.every, self.timeout, self.extra = where, every, timeout, extra
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        paths = ("/healthz", "/glance/status")
        n = 0
        while not self.halt.is_set():
            path = paths[n % 2]
            n += 1
            began = time.perf_counter()
            try:
                status, _, _ = request(self.where, path, extra=self.extra, timeout=self.timeout)
            except OSError as exc:
                self.failures.append(f"{path}: {exc!r}")
            else:
                if status == 200:
                    self.latencies.append((time.perf_counter() - began) * 1000)
                else:
                    self.failures.append(f"{path}: HTTP {status}")
            self.halt.wait(self.every)

    def stop(self) -> Client:
        self.halt.set()
        self.join(10)
        return self

    def figures(self) -> dict[str, float]:
        ordered = sorted(self.latencies) or [float("nan")]
        return {
            "requests": len(self.latencies),
            "failures": len(self.failures),
            "p50_ms": round(statistics.median(ordered), 2),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2),
            "max_ms": round(ordered[-1], 2),
        }


@contextlib.contextmanager
def well_behaved(where: tuple[str, int], **kwargs: float) -> Iterator[Client]:
    client = Client(where, **kwargs)  # type: ignore[arg-type]
    client.start()
    try:
        yield client
    finally:
        client.stop()


def report(name: str, **figures: object) -> None:
    print(f"\n[{name}] " + " ".join(f"{k}={v}" for k, v in figures.items()), flush=True)
