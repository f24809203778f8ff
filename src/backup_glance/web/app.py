"""The web app factory: routes over the current Board only (never a source, never health).

    create_app(config, store) -> Starlette

Routes: `/healthz` (open), `/api/v1/status`, `/glance/{status|datastores|calendar}` (Glance extension widgets),
`/health` and `/health/{service_id}` (monitor URLs), `/calendar.ics`, `/metrics` (Prometheus), `/` (standalone
page). Everything but `/healthz` sits behind `TokenAuth` when `server.auth_token` is set; every answer passes
`SecurityHeaders` (CSP, nosniff, no-referrer, and the Host check against DNS rebinding).

Glance waits for every extension with no timeout, so each answer is rendered once per board version and then
served from `VersionCache`; a request costs a dict lookup. The API, the metrics and the page show when each source
last answered, which moves with every poll (`BoardStore.sources_of`): they are rendered once per board version and
poll.

Every 200 carries a strong `ETag` of the bytes it sends (one per content coding), and `If-None-Match` gets a 304
without a body (`conditional`); the calendar feed also has `Last-Modified` (`_Web.feed`). `Cache-Control: no-store`
stays: the apps that revalidate (calendar apps, scripts) keep the tag themselves, and no cache is to keep a board.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ..board import BoardStore
from ..config import Config
from ..model import Board
from . import api, ics, monitor
from .auth import TokenAuth
from .conditional import http_date, not_modified
from .headers import AllowedHosts, SecurityHeaders
from .metrics import CONTENT_TYPE as METRICS_TYPE
from .metrics import render_later
from .page import build_page, panels_of, panels_read
from .params import ParamError, parsed
from .render import Payload, RenderedPanels, Renderer, VersionCache
from .subpath import SubPath
from .widgets import WIDGETS
from .widgets._names import apply_job_config

log = logging.getLogger(__name__)
T = TypeVar("T")
_workers: dict[str, ThreadPoolExecutor] = {}
_workers_lock = threading.Lock()


def _worker(name: str) -> ThreadPoolExecutor:
    """The one thread the answers `name` ("feed", "page", "widget") are made in, made at the first request for
    one. At thousands of services each takes from a tenth of a second to a second: on the event loop, every
    other request would wait for it."""
    with _workers_lock:
        worker = _workers.get(name)
        if worker is None:
            worker = _workers[name] = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        return worker


async def _made(future: Future[T]) -> T:
    """What a worker thread made, waited for without holding up the event loop."""
    return future.result() if future.done() else await asyncio.wrap_future(future)


HTML = "text/html; charset=utf-8"
NO_STORE = {"Cache-Control": "no-store"}


# Widget queries rendered ahead of need until the first request: the defaults and the README's Glance examples of
# the widgets Glance refreshes most. From then on, what is asked for is rendered ahead (VersionCache.warm_asked);
# bigger answers (the page, the feed) are rendered on first request.
WARM_WIDGETS: tuple[tuple[str, dict[str, str]], ...] = (
    ("status", {}),
    ("status", {"column": "small", "limit": "8"}),
    ("datastores", {}),
    ("calendar", {}),
)


MAX_NAMED_SOURCES = 12  # an unknown source= lists the known ones, up to this many


@dataclass(frozen=True, slots=True)
class Feed:
    """The calendar feed as sent: its payload, when what it says last changed (whole seconds; None: no honest
    time, see `_Web.feed`), and `ics.events_digest` of it."""

    payload: Payload
    last_modified: datetime | None = None
    events: bytes = b""


class _Web:
    """Per-app objects, kept on `app.state.web` (no module globals)."""

    def __init__(self, config: Config, store: BoardStore, demo_note: str | None) -> None:
        self.config = config
        self.store = store
        self.zone = ZoneInfo(config.timezone)
        self.demo_note = demo_note
        self.renderer = Renderer()
        # Separate caches so a flood of odd widget query strings cannot evict the JSON or the page.
        self.fragments: VersionCache[Payload] = VersionCache(store, weigh=Payload.weight)
        for name, query in WARM_WIDGETS:  # what a usual Glance page asks for, until it asks
            params = WIDGETS[name].parse(query)
            self.fragments.expect((name, params), self.widget_builder(name, params))
        self.feeds: VersionCache[Future[Feed]] = VersionCache(store, max_entries=1)
        # The feed last written and the newest Last-Modified given out: read and written in the feed thread only.
        self._feed: Feed | None = None
        self._feed_stamped: datetime | None = None
        # Answers that show when each source last answered: built again after a poll, even one with no news.
        self.polled: VersionCache[tuple[int, Payload]] = VersionCache(store, max_entries=1)
        self.pages: VersionCache[tuple[int, Future[Payload]]] = VersionCache(store, max_entries=1)
        # The page's widgets as last rendered: (the board, what they read of its sources, their HTML).
        self._panels: tuple[Board, Hashable, RenderedPanels] | None = None
        store.subscribe(self._forget_panels)
        self.metrics: VersionCache[tuple[int, Future[Payload]]] = VersionCache(store, max_entries=1)

        server = config.server
        # Links point at the public URL when one is configured, else at the sub-path (never at the Host header a
        # client sent: that is the client's word, and Glance would show it to everyone).
        self.public = (server.base_url or "").rstrip("/")
        self.prefix = self.public or root_path_of(config)

    def link(self, path: str) -> str:
        return self.prefix + path

    def shown(self, board: Board) -> Board:
        """The board as the widgets, the page and the ICS feed show it: jobs renamed or hidden by `jobs:`."""
        return apply_job_config(board, self.config.jobs)

    def widget_headers(self, title: str) -> dict[str, str]:
        headers = {"Widget-Title": title, "Widget-Content-Type": "html"}
        if self.public:
            headers["Widget-Title-URL"] = self.public + "/"
        return headers

    # --- the answers, each built once per board (the API and the metrics: once per board and poll) ---

    def build_api(self, board: Board) -> tuple[int, Payload]:
        polls = self.store.polls  # read before the sources: an answer is never older than the polls it says
        return polls, Payload(api.encode_status(self.with_latest_polls(board), self.zone))

    def build_metrics(self, board: Board) -> tuple[int, Future[Payload]]:
        polls = self.store.polls
        return polls, render_later(self.with_latest_polls(board))

    def with_latest_polls(self, board: Board) -> Board:
        return replace(board, sources=self.store.sources_of(board))

    def up_to_date(self, answer: tuple[int, object]) -> bool:
        return answer[0] == self.store.polls

    def build_ics(self, board: Board) -> Future[Feed]:
        # Thousands of events take a second or more to write: in a worker thread, never on the event loop.
        return _worker("feed").submit(self.feed, board)

    def feed(self, board: Board) -> Feed:
        """The feed for `board`; the last one again, bytes, ETag and Last-Modified, while its events are the same.

        A board is published at every poll that brings news, and each one's feed would differ from the last in its
        DTSTAMPs alone: calendar apps would fetch, parse and rewrite every event every 30 minutes for nothing.
        Last-Modified is when the events last changed: the time of the board that changed them, which its feed
        shows as DTSTAMP (the republish of a failed judging keeps that time, and its feed is the same anyway). An
        HTTP date has whole seconds, and two boards can come within one: a client with the first one's date
        would be told the second one is not modified. So a feed that is no later, to the second, than the newest
        Last-Modified given out (also after the clock stepped back) gets none: apps then go by the ETag alone.
        """
        try:
            body = ics.encode_calendar(self.shown(board))
        except Exception:  # logged once per board version; a calendar app tries again later
            log.exception("calendar feed rendering failed")
            return Feed(Payload(b"internal error while writing the calendar; see the backup-glance log\n", 500))
        events = ics.events_digest(body)
        last = self._feed
        if last is not None and last.events == events:
            return last
        stamp = board.generated_at.astimezone(UTC).replace(microsecond=0)
        later = self._feed_stamped is None or stamp > self._feed_stamped
        if later:
            self._feed_stamped = stamp
        self._feed = Feed(Payload(body), stamp if later else None, events)
        return self._feed

    def build_page(self, board: Board) -> tuple[int, Future[Payload]]:
        polls = self.store.polls  # read before the sources: an answer is never older than the polls it says
        return polls, _worker("page").submit(self.page, board)

    def page(self, board: Board) -> Payload:
        """The page is made again after every poll, for its sources' times; its widgets only when they would
        read differently (at 2,000 services they are most of its time)."""
        shown = self.shown(self.with_latest_polls(board))
        read = panels_read(shown)
        last = self._panels
        if last is not None and last[0] is board and last[1] == read:
            rendered = last[2]
        else:
            rendered = self.renderer.panels(panels_of(shown, self.zone))
            self._panels = (board, read, rendered)
        page = build_page(shown, self.zone, self.demo_note, self.link, panels=False)
        return Payload(self.renderer.page(page, rendered))

    def _forget_panels(self, _board: Board) -> None:
        self._panels = None  # a publish: the old board's widgets go with it, not at the next request for the page

    def widget_builder(self, name: str, params: Hashable) -> Callable[[Board], Payload]:
        spec = WIDGETS[name]

        def build(board: Board) -> Payload:
            try:
                return Payload(self.renderer.widget_body(spec.build(self.shown(board), self.zone, params)))
            except Exception:
                # Logged once here, at the boundary; Glance shows the body whatever the status code.
                log.exception("widget rendering failed", extra={"widget": name})
                return _error(self, 500, "internal error while rendering; see the backup-glance log")

        return build

    def warm(self, board: Board) -> None:
        """Render the widget answers asked for lately for a board about to be published: Glance waits on every
        widget of a page, and the first request after a publish should not pay for the render."""
        self.fragments.warm_asked(board)


def _web(request: Request) -> _Web:
    web: _Web = request.app.state.web
    return web


async def healthz(request: Request) -> Response:
    board = _web(request).store.current()
    body = {"status": "ok", "board_generated_at": board.generated_at.isoformat(timespec="seconds")}
    return Response(json.dumps(body), media_type="application/json", headers=NO_STORE)


# What a 304 repeats of the 200 it stands for (RFC 9110 §15.4.5): no representation metadata, no body.
_NOT_MODIFIED_HEADERS = ("Cache-Control", "Vary", "ETag", "Last-Modified")


def _send(
    request: Request,
    payload: Payload,
    media_type: str,
    headers: dict[str, str] | None = None,
    *,
    last_modified: datetime | None = None,
) -> Response:
    """A cached answer, gzip when the client takes it, with its validators: 304 when the client's copy is it."""
    body, is_gzip = payload.pick(request.headers.get("accept-encoding", ""))
    out = {**NO_STORE, "Vary": "Accept-Encoding", **(headers or {})}
    if payload.status_code == 200:  # an error is no representation of anything to revalidate
        out["ETag"] = etag = payload.gzipped_etag if is_gzip else payload.etag
        now = datetime.now(UTC)
        if last_modified is not None and last_modified > now:  # §8.8.2.1: never later than the answer's Date
            last_modified = None
        if last_modified is not None:
            out["Last-Modified"] = http_date(last_modified)
        if not_modified(request.headers, etag, last_modified, now):
            return Response(status_code=304, headers={k: out[k] for k in _NOT_MODIFIED_HEADERS if k in out})
    if is_gzip:
        out["Content-Encoding"] = "gzip"
    return Response(body, status_code=payload.status_code, media_type=media_type, headers=out)


async def api_status(request: Request) -> Response:
    web = _web(request)
    _, payload = web.polled.get("api", web.build_api, web.up_to_date)
    return _send(request, payload, "application/json")


def _widget_response(web: _Web, request: Request, title: str, payload: Payload) -> Response:
    return _send(request, payload, HTML, web.widget_headers(title))


def _error(web: _Web, status_code: int, message: str) -> Payload:
    return Payload(web.renderer.error(message), status_code)


async def glance_widget(request: Request) -> Response:
    web = _web(request)
    name = request.path_params["widget"]
    spec = WIDGETS.get(name)
    if spec is None:
        known = ", ".join(sorted(WIDGETS))
        return _widget_response(web, request, "Backups", _error(web, 404, f"no widget {name[:40]!r}: {known}"))
    try:
        params = parsed(spec.parse, request.query_params.multi_items())
    except ParamError as exc:
        return _widget_response(web, request, spec.title, _error(web, 400, str(exc)))
    unknown = _unknown_source(web, getattr(params, "source", None))
    if unknown is not None:  # a typo in a Glance widget's URL would otherwise show an empty widget as if all was well
        return _widget_response(web, request, spec.title, _error(web, 400, unknown))

    key, build = (name, params), web.widget_builder(name, params)
    payload = web.fragments.ready(key, build)
    if payload is None:
        # Made in a worker thread, as the page: a widget takes up to tens of milliseconds to render, and a client
        # asking for ever other parameters (n=1, n=2, ...) would otherwise hold up every request in turn.
        payload = await _made(_worker("widget").submit(web.fragments.get, key, build))
    return _widget_response(web, request, spec.title, payload)


def _unknown_source(web: _Web, source: str | None) -> str | None:
    """What is wrong with a widget's `source=`, when it names no source of this board (None: nothing)."""
    if source is None:
        return None
    known = sorted({s.name for s in web.config.sources} | {s.name for s in web.store.current().sources})
    if not known or source in known:  # no source configured (an app built for a test): nothing to compare with
        return None
    shown = ", ".join(known[:MAX_NAMED_SOURCES]) + (", ..." if len(known) > MAX_NAMED_SOURCES else "")
    return f"unknown source {source[:40]!r}: use one of {shown}"


def _plain(status_and_text: tuple[int, str]) -> Response:
    status_code, text = status_and_text
    return PlainTextResponse(text + "\n", status_code=status_code, headers=NO_STORE)


async def health_all(request: Request) -> Response:
    return _plain(monitor.overall_health(_web(request).store.current()))


async def health_service(request: Request) -> Response:
    return _plain(monitor.service_health(_web(request).store.current(), request.path_params["service_id"]))


async def metrics(request: Request) -> Response:
    # Rendered once per board version and poll in a worker thread (60 ms for 500 services), never on the event loop.
    web = _web(request)
    _, future = web.metrics.get("metrics", web.build_metrics, web.up_to_date)
    return _send(request, await _made(future), METRICS_TYPE)


async def calendar_ics(request: Request) -> Response:
    web = _web(request)
    feed = await _made(web.feeds.get("ics", web.build_ics))
    return _send(request, feed.payload, "text/calendar; charset=utf-8", last_modified=feed.last_modified)


async def page(request: Request) -> Response:
    web = _web(request)
    # No X-Frame-Options: CSP frame-ancestors (server.frame_ancestors) says who may embed it, e.g. Glance's iframe.
    _, future = web.pages.get("page", web.build_page, web.up_to_date)
    return _send(request, await _made(future), HTML)


def root_path_of(config: Config) -> str:
    """The sub-path a reverse proxy serves backup-glance under: server.root_path, else base_url's path."""
    server = config.server
    path = server.root_path if server.root_path is not None else urlsplit(server.base_url or "").path
    return path.rstrip("/")


def create_app(config: Config, store: BoardStore, *, demo_note: str | None = None) -> Starlette:
    """Build the app. Objects live on `app.state.web`, built here rather than in a lifespan because none of them
    needs async setup or teardown, and tests can then use the app without entering its lifespan."""
    server = config.server
    token = server.auth_token.get_secret_value() if server.auth_token else None
    key = server.calendar_key.get_secret_value() if server.calendar_key else None
    hosts = AllowedHosts.build(server.allowed_hosts, token=token is not None, base_url=server.base_url)
    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/api/v1/status", api_status),
            Route("/glance/{widget}", glance_widget),
            Route("/health", health_all),
            Route("/health/{service_id}", health_service),
            Route("/calendar.ics", calendar_ics),
            Route("/metrics", metrics),
            Route("/", page),
        ],
        middleware=[
            # Outermost, so the 401 of TokenAuth and the 404 of the router carry the security headers too, and a
            # refused Host never reaches the token check (nor its failure log).
            Middleware(SecurityHeaders, hosts=hosts, frame_ancestors=server.frame_ancestors),
            Middleware(SubPath),
            Middleware(TokenAuth, token=token, calendar_key=key),
        ],
    )
    # Starlette's redirect from "/api/v1/status/" builds its Location from the client's Host header: a name the
    # client chose, sent back as a link. A path with a trailing slash is simply not found.
    app.router.redirect_slashes = False
    web = app.state.web = _Web(config, store, demo_note)
    store.add_warmer(web.warm)
    return app


__all__ = ["create_app"]
