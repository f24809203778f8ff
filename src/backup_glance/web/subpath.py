"""Serving under a reverse proxy's sub-path (`server.root_path`, or the path of `server.base_url`).

uvicorn puts the sub-path in front of every request path, which is right when the proxy strips it (Caddy
`handle_path /backups/*`, Traefik StripPrefix, nginx `proxy_pass http://backup-glance:8765/;`). When the proxy
passes the prefix through instead, the path would carry it twice; this middleware makes both arrive as
`<root_path><route>`, so routing, auth and links see one shape.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

# Routes answered without the token and to any host name (liveness probes): auth and the host check share it.
OPEN_PATHS = frozenset({"/healthz"})


def route_path(scope: Scope) -> str:
    """The request path without the sub-path, "/" at least.

    >>> route_path({"path": "/backups/glance/status", "root_path": "/backups"})
    '/glance/status'
    >>> route_path({"path": "/backups/backups/healthz", "root_path": "/backups"}), route_path({"path": "/x"})
    ('/healthz', '/x')
    """
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    for _ in range(2):
        if root and (path == root or path.startswith(root + "/")):
            path = path[len(root) :]
    return path or "/"


class SubPath:
    """ASGI middleware: normalises the path as described above (a no-op without a root path)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        root = scope.get("root_path", "")
        if root and scope["type"] == "http":
            scope = {**scope, "path": root + route_path(scope), "raw_path": None}
        await self.app(scope, receive, send)
