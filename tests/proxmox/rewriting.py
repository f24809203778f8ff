"""A simulator with some API paths answered by a rule instead: what a broken or hostile Proxmox server sends."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Status:
    """What a rule returns to answer with this HTTP status (and `{"data": null}`) instead of data."""

    code: int


# An API path's rule: the honest answer's `data` -> the `data` to send (or a Status); or an HTTP status outright.
Rule = Callable[[Any], Any] | int


class Rewriting:
    """`app`, with the paths in `rules` (without /api2/json) answered by their rule."""

    def __init__(self, app: Any, rules: dict[str, Rule]) -> None:
        self.app, self.rules = app, rules

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        rule = self.rules.get(str(scope.get("path", "")).removeprefix("/api2/json"))
        if scope["type"] != "http" or rule is None:
            await self.app(scope, receive, send)
            return
        answer = Status(rule) if isinstance(rule, int) else rule(await self._honest(scope, receive))
        if isinstance(answer, Status):
            body, status = b'{"data":null}', answer.code
        else:
            body, status = json.dumps({"data": answer}).encode(), 200
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _honest(self, scope: Any, receive: Any) -> Any:
        sent: list[dict[str, Any]] = []

        async def keep(message: dict[str, Any]) -> None:
            sent.append(message)

        await self.app(scope, receive, keep)
        return json.loads(b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))["data"]
