"""The long-running process behind `serve`: bind first, then announce; one graceful path for SIGTERM, SIGINT, SIGHUP.

    sock = bind_socket("0.0.0.0", 8765)          # ListenError naming host:port and what to do
    run_event_loop(serve_board(runtime, app, sock))

SIGTERM (what `docker stop` and `systemctl stop` send), SIGINT (Ctrl-C) and SIGHUP (its terminal closed) all stop
the web server, the collector (and a restic it runs, in a process group of its own) and the history (its WAL
checkpointed) and return normally, so the caller's cleanup runs and the process exits 0. A second signal skips
waiting for open connections.

The web server is uvicorn hardened by `httpserver` (request heads bounded in size and time, idle connections
closed, a connection cap below the open-file limit, which is raised to its hard limit first); see there.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
from collections.abc import Coroutine, Iterator
from typing import Any

import uvicorn

from .errors import BackupGlanceError
from .heap import limit_heaps
from .httpserver import GuardedProtocol, GuardedServer, Limits
from .logs import flush_suppressed
from .runtime import Runtime

log = logging.getLogger(__name__)

LOG_FLUSH_S = 30.0  # how often the log's "N similar lines suppressed" summaries are written
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
STOP_DEADLINE_S = 5.0  # the collector's tasks are cancelled; a source stuck in a read must not hold the exit
SHUTDOWN_GRACE_S = 3  # open HTTP requests get this long to finish


class ListenError(BackupGlanceError):
    """The web server cannot listen where it was told to; the message names host:port and what to do."""


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: any free port), or ListenError in plain words."""
    where = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        raise ListenError(
            f"cannot listen on {where}: unknown host name '{host}'; use an address of this machine, "
            "e.g. 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)"
        ) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ListenError(_listen_problem(where, port, exc)) from None
    sock.setblocking(False)
    return sock


def _listen_problem(where: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            f"cannot listen on {where}: the port is already in use (another backup-glance, or another "
            "program); stop it or choose another port with --port or server.port"
        )
    if exc.errno == errno.EACCES:
        return f"cannot listen on {where}: permission denied (ports below 1024 need privileges; use e.g. 8765)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {where}: this machine has no such address; use 127.0.0.1 or 0.0.0.0"
    return f"cannot listen on {where}: {(exc.strerror or str(exc)).lower()}"


def socket_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class _Server(GuardedServer):
    """uvicorn (hardened: httpserver) without its own signal handling: it re-raises SIGTERM after shutting down,
    which kills the process before the collector and the history are closed."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def web_server(app: Any, *, root_path: str = "") -> GuardedServer:
    """The web server `serve` runs (also what bench/bench_attacks.py measures): uvicorn with httptools, hardened
    by httpserver (bounded heads, deadlines, a connection cap sized from the raised open-file limit)."""
    limits = Limits.for_this_process()
    log.debug("web server limits", extra={"max_connections": limits.max_connections})
    return _Server(
        uvicorn.Config(
            app,
            http=GuardedProtocol,  # GuardedServer creates these itself, with its Guard
            ws="none",
            log_config=None,  # our handler on the root logger formats and redacts uvicorn's lines too
            access_log=False,
            lifespan="off",
            server_header=False,
            root_path=root_path,
            timeout_keep_alive=limits.keep_alive_s,
            timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
        ),
        limits,
    )


async def serve_board(runtime: Runtime, app: Any, sock: socket.socket, *, root_path: str = "") -> None:
    """Collector plus web server until SIGTERM, SIGINT or SIGHUP; closes everything before returning."""
    server = web_server(app, root_path=root_path)
    loop = asyncio.get_running_loop()
    flusher = loop.create_task(_flush_logs())

    def on_signal(signum: int) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        if server.should_exit:
            server.force_exit = True
        server.should_exit = True

    # `nohup backup-glance serve &` ignores SIGHUP so that closing the terminal leaves it running: so does it.
    stop_signals = [s for s in STOP_SIGNALS if s != signal.SIGHUP or signal.getsignal(s) != signal.SIG_IGN]
    for signum in stop_signals:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        await runtime.collector.rebuild_or_say_why()  # a bug in judging what history holds must not stop serving
        if runtime.notifier is not None:  # before the collector: no board of it goes unseen
            runtime.notifier.start()
        runtime.collector.start()
        log.info(f"serving on {socket_url(sock)}")
        if not server.should_exit:
            await server.serve(sockets=[sock])
    finally:
        try:
            await asyncio.wait_for(runtime.collector.stop(), STOP_DEADLINE_S)
        except TimeoutError:
            log.warning("the collector did not stop in time; leaving it behind")
        finally:
            if runtime.notifier is not None:  # what it has not sent stays in its outbox for the next start
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(runtime.notifier.stop(), STOP_DEADLINE_S)
            if runtime.history is not None:
                runtime.history.close()
            for signum in stop_signals:
                loop.remove_signal_handler(signum)
            sock.close()
            flusher.cancel()
        log.info("stopped")
        flush_suppressed()


async def _flush_logs() -> None:
    while True:
        await asyncio.sleep(LOG_FLUSH_S)
        flush_suppressed()


def run_event_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run `main` on uvloop when it is installed (the faster loop the project depends on), else asyncio's."""
    limit_heaps()  # before the loop starts its worker threads
    try:
        import uvloop
    except ImportError:  # e.g. on Windows, where uvloop does not exist
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)
