"""`backup-glance serve`: the background collector plus the web endpoints, in one process.

Without a configuration it starts the simulators of the built-in demo homelab and serves them. The socket is
bound before anything is announced; a config with errors, a port in use or an unusable data folder ends with
one line and exit 2, 4 or 5. SIGTERM, SIGINT and SIGHUP stop it cleanly with exit 0.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator

from ..config import Config, secrets_of
from ..errors import HistoryError
from ..logs import update_secrets
from ..paths import DataFolderError
from ._common import (
    EXIT_CONFIG,
    EXIT_DATA,
    EXIT_LISTEN,
    EXIT_OK,
    add_config_argument,
    checked_config,
    find_config,
    port_number,
    start_logging,
)

log = logging.getLogger("backup_glance")

DEMO_NOTE = (
    "Demo homelab: simulated PVE, PBS, Databasement and Backrest. "
    "Run `backup-glance serve --config FILE` to watch your real backups."
)


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], parents: list[argparse.ArgumentParser]
) -> None:
    parser = subparsers.add_parser(
        "serve", parents=parents, help="poll in the background and serve the board, widgets and API"
    )
    add_config_argument(parser, demo_without=True)
    add_listen_arguments(parser)
    parser.set_defaults(func=run)


def add_listen_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="listen address (default: server.host, 127.0.0.1; 0.0.0.0 for all)")
    parser.add_argument("--port", type=port_number, help="listen port (default: server.port, 8765; 0: any free)")


def run(args: argparse.Namespace) -> int:
    handler = start_logging(args)
    path = find_config(args.config)
    if path is None:
        return serve_demo(args, handler, for_lack_of_config=True)
    config = checked_config(path, handler)
    if config is None:
        return EXIT_CONFIG
    return serve(config, args.host, args.port)


def serve_demo(args: argparse.Namespace, handler: logging.Handler, *, for_lack_of_config: bool = False) -> int:
    from ..demo import DemoLab

    try:
        demo = DemoLab(port=args.port or 8765)
    except OSError as exc:
        # Its certificates, secrets and history go to a temporary folder; on a read-only root there may be none.
        reason = exc.strerror or exc.__class__.__name__
        print(
            f"backup-glance: cannot create the demo's temporary folder: {reason[:1].lower()}{reason[1:]}; "
            "set TMPDIR to a writable folder",
            file=sys.stderr,
        )
        return EXIT_DATA
    with demo as lab:
        config = lab.config()
        update_secrets(handler, secrets_of(config))
        prefix = "no configuration found: " if for_lack_of_config else ""
        log.info(f"{prefix}serving the built-in demo homelab")
        return serve(config, args.host, args.port, demo_note=DEMO_NOTE)


def serve(config: Config, host: str | None, port: int | None, *, demo_note: str | None = None) -> int:
    from ..runtime import build_runtime
    from ..serving import ListenError, bind_socket, run_event_loop, serve_board
    from ..web.app import create_app, root_path_of

    try:
        sock = bind_socket(host or config.server.host, config.server.port if port is None else port)
    except ListenError as exc:
        print(f"backup-glance: {exc}", file=sys.stderr)
        return EXIT_LISTEN
    with contextlib.closing(sock):
        try:
            runtime = build_runtime(config, notify=True)
        except (HistoryError, DataFolderError) as exc:
            print(f"backup-glance: {exc}", file=sys.stderr)
            return EXIT_DATA
        app = create_app(config, runtime.store, demo_note=demo_note)
        with _quiet_interrupt():
            run_event_loop(serve_board(runtime, app, sock, root_path=root_path_of(config)))
    return EXIT_OK


@contextlib.contextmanager
def _quiet_interrupt() -> Iterator[None]:
    # A Ctrl-C that lands before the loop's own handler is installed ends the same way as one after it.
    with contextlib.suppress(KeyboardInterrupt):
        yield
