"""`backup-glance serve`: the background collector plus the web endpoints, in one process.

Without a configuration it starts the simulators of the built-in demo homelab and serves them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from contextlib import suppress

import uvicorn

from ..config import Config, load_config, secrets_of
from ..logs import setup_logging
from ..runtime import build_runtime
from ._common import add_config_argument, find_config, port_number

log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("serve", help="poll in the background and serve the board, widgets and API")
    add_config_argument(parser)
    parser.add_argument("--host", help="listen address (default: server.host, 127.0.0.1)")
    parser.add_argument("--port", type=port_number, help="listen port (default: server.port, 8765)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path = find_config(args.config)
    if path is None:
        return serve_demo(args.host, args.port)
    config = load_config(path)
    setup_logging(secrets_of(config))
    with suppress(KeyboardInterrupt):
        asyncio.run(_serve(config, args.host, args.port, None))
    return 0


def serve_demo(host: str | None, port: int | None, *, print_config: bool = False) -> int:
    from ..demo import DemoLab

    note = (
        "Demo homelab: simulated PVE, PBS, Databasement and Backrest. "
        "Run `backup-glance serve --config FILE` to watch your real backups."
    )
    with DemoLab(port=port or 8765) as lab:
        config = lab.config()
        if print_config:
            print(lab.config_text(), flush=True)
        setup_logging(secrets_of(config))
        log.info("no configuration found: serving the built-in demo homelab")
        with suppress(KeyboardInterrupt):
            asyncio.run(_serve(config, host, port, note))
    return 0


async def _serve(config: Config, host: str | None, port: int | None, demo_note: str | None) -> None:
    from ..web.app import create_app

    runtime = build_runtime(config)
    app = create_app(config, runtime.store, demo_note=demo_note)
    server_config = uvicorn.Config(
        app,
        host=host or config.server.host,
        port=port or config.server.port,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )
    server = uvicorn.Server(server_config)
    await runtime.collector.rebuild()
    runtime.collector.start()
    print(f"backup-glance: serving on http://{server_config.host}:{server_config.port}", file=sys.stderr, flush=True)
    try:
        await server.serve()
    finally:
        await runtime.collector.stop()
        if runtime.history is not None:
            runtime.history.close()
