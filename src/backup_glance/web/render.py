"""Jinja2 rendering of view records, and a per-board-version cache of finished responses.

Autoescape is on for everything; templates receive prepared view records only and never use `|safe`. The only
pre-rendered HTML put into a template's output is our own template output: widgets in a page (`Renderer.page`)
and rows rendered by a macro once and remembered while their record stays the same (`remembered_rows`). Both
are spliced in as bytes after the template ran (`_Splice`).
"""

from __future__ import annotations

import gzip
import re
import secrets
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from jinja2 import Environment, PackageLoader, StrictUndefined
from jinja2.runtime import Macro
from markupsafe import Markup

from ..board import BoardStore
from ..model import Board
from .conditional import entity_tag
from .page import PageView, Panels
from .views import WidgetState
from .widgets._spec import View

T = TypeVar("T")
RenderedPanels = tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]  # (title, widget HTML, UTF-8): main, side
MAX_ENTRIES = 512  # distinct query strings per board version; arbitrary `source=` / `limit=` values are bounded
# ... and their bytes: at 2,000 services one full-column status answer is 1.6 MB (plus its gzip), and 512 of them
# (`limit=1..512`, all alike) held 900 MB. Past this, an answer is made for each request and not kept.
MAX_BYTES = 64 << 20
# Answers rendered ahead of each publish: those asked for within a day, at most this many (the latest asked). A
# Glance page asks for the same few widgets again and again; odd query strings must not make every publish slow,
# and a board nobody opens costs no rendering.
WARM_KEYS = 8
WARM_FOR_S = 86400.0
MAX_REMEMBERED_ROWS = 4_000  # rendered rows kept across boards before the ones not used lately are dropped
KEEP_ROWS_FOR_RENDERS = 2 * WARM_KEYS  # ... lately: by this many renders (two publishes' worth of answers)
# Renders between two sweeps of the rows not used lately: a sweep walks every row kept, and with more rows in use
# than MAX_REMEMBERED_ROWS (a page of 2,000 services uses 4,000) one ran at every render, a tenth of the page.
SWEEP_EVERY = KEEP_ROWS_FOR_RENDERS // 2
FAST_GZIP_FROM = 1 << 20  # bodies over this many bytes are compressed for speed rather than size


@dataclass(frozen=True, slots=True)
class ErrorView:
    """A widget that can only say what is wrong (bad parameter, unknown widget, internal error)."""

    state: WidgetState
    template: str = "_widget-base.html"


@dataclass(frozen=True, slots=True)
class Payload:
    """A finished body, compressed once: Go's HTTP client (Glance, custom-api) asks for gzip by default. Each of
    the two carries its own strong entity tag (`conditional`), hashed once too."""

    body: bytes
    status_code: int = 200
    gzipped: bytes = field(init=False)
    etag: str = field(init=False)
    gzipped_etag: str = field(init=False)

    def __post_init__(self) -> None:
        # Level 6 costs about a millisecond for a 40 KB fragment, once per board version; the hashes far less. A
        # big body (the page at 2,000 services: 2.5 MB) takes level 3: 9 -> 4 ms, for a fifth more bytes.
        level = 6 if len(self.body) <= FAST_GZIP_FROM else 3
        gzipped = gzip.compress(self.body, compresslevel=level, mtime=0)
        object.__setattr__(self, "gzipped", gzipped)
        object.__setattr__(self, "etag", entity_tag(self.body))
        object.__setattr__(self, "gzipped_etag", entity_tag(gzipped))

    def weight(self) -> int:
        """The bytes it holds."""
        return len(self.body) + len(self.gzipped)

    def pick(self, accept_encoding: str) -> tuple[bytes, bool]:
        """The body to send and whether it is gzip, for a request's Accept-Encoding header."""
        if len(self.gzipped) < len(self.body) and accepts_gzip(accept_encoding):
            return self.gzipped, True
        return self.body, False


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header lets the answer be gzip (RFC 9110 12.5.3: tokens are case-insensitive,
    `q=0` says "not this one", and `*` stands for anything not named).

    >>> [accepts_gzip(h) for h in ("gzip, deflate, br", "GZIP", "gzip;q=0, identity", "nogzip", "*", "*;q=0", "")]
    [True, True, False, False, True, False, False]
    """
    wildcard = False
    for item in accept_encoding.split(","):
        coding, _, params = item.partition(";")
        coding = coding.strip().lower()
        if coding not in ("gzip", "x-gzip", "*"):
            continue
        weight = 1.0
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if coding == "*":
            wildcard = weight > 0
        else:
            return weight > 0
    return wildcard


class Renderer:
    def __init__(self, *, max_rows: int = MAX_REMEMBERED_ROWS) -> None:
        self.env = Environment(
            loader=PackageLoader("backup_glance.web", "templates"),
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
            undefined=StrictUndefined,
        )
        # A row that reads nothing but its own record is rendered once while it stays the same, not once per
        # board (2,000 healthy guests, 5 % new per poll). Widgets hand back the very same row object while
        # nothing about it changed, so rows are found by identity first (hashing 10,000 rows per render cost
        # more than the rest of it): (macro, id(row)) -> (the row, kept alive so its id stays its own, the
        # macro's output, the render that last used it). A new row equal to a remembered one is found by value.
        self._rows: dict[tuple[str, int], tuple[Hashable, bytes, int]] = {}
        self._by_value: dict[tuple[str, Hashable], bytes] = {}
        self._renders = 0
        self._swept_at = -SWEEP_EVERY  # the render count at the last sweep
        self._max_rows = max_rows
        # What marks a spliced row list's place in a widget's text (`_Splice`): a source's text cannot forge it,
        # as it would have to guess this renderer's random part.
        self._mark = f"\x00rows-{secrets.token_hex(8)}-"
        self._marks = re.compile(re.escape(self._mark) + "([0-9]+)\x00")

    def _remembered(self, macro: Macro, row: Hashable) -> bytes:
        """The macro's output for `row`, encoded."""
        key = (macro.name, id(row))
        found = self._rows.get(key)
        if found is not None:  # the entry keeps its row alive: no other object can have that id meanwhile
            encoded = found[1]
        else:
            by_value = (macro.name, row)
            remembered = self._by_value.get(by_value)
            encoded = remembered if remembered is not None else str(macro(row)).encode("utf-8")
            self._by_value[by_value] = encoded
        self._rows[key] = (row, encoded, self._renders)
        return encoded

    def widget_body(self, view: View) -> bytes:
        """The widget's HTML, UTF-8.

        Its remembered rows (10,000 at 10,000 healthy services, 3.5 MB) are put in as the bytes they were
        encoded to once: joined into the template's text, they were copied four times over on the way to a
        body (the join, the captured block, the template's own join, the encoding), and as a str at that, two or
        four bytes a character as soon as one character of the widget is not Latin-1. That made a render at
        10,000 services peak at 30 MB above what it leaves behind."""
        self._renders += 1
        splice = _Splice(self)
        body = self._render(view.template, splice, view=view, remembered_rows=splice.rows)
        if len(self._rows) > self._max_rows and self._renders - self._swept_at >= SWEEP_EVERY:
            self._swept_at = self._renders
            self._forget_rows()
        return body

    def _render(self, template: str, splice: _Splice, **context: object) -> bytes:
        """The template's output encoded, with the bytes its marks stand for in their places."""
        html = self.env.get_template(template).render(**context)
        if not splice.groups:
            return html.encode("utf-8")
        parts = self._marks.split(html)
        del html
        pieces: list[bytes] = []
        for index, part in enumerate(parts):
            if index % 2:
                pieces += splice.groups[int(part)]
            else:
                pieces.append(part.encode("utf-8"))
        return b"".join(pieces)

    def _forget_rows(self) -> None:
        """Keep the rows used by the last few renders (a publish renders up to WARM_KEYS answers): the rows
        of boards long gone, whose times or names have moved on, go."""
        recent = self._renders - KEEP_ROWS_FOR_RENDERS
        entries = list(self._rows.items())  # one step: another thread may be rendering and adding rows
        self._rows = {key: entry for key, entry in entries if entry[2] > recent}
        # Only the rows let go are hashed to find their values: at 10,000 services, hashing every kept row again
        # cost more than a render. A row let go whose output a kept row shares (an equal row, found by value)
        # keeps its value entry: widgets that make their rows anew for each board (the grid) find them by value
        # only, and lost all 2,000 of them every few publishes.
        shared = {id(entry[1]) for entry in self._rows.values()}
        for (macro, _), (row, encoded, used) in entries:
            if used <= recent and id(encoded) not in shared:
                self._by_value.pop((macro, row), None)
        if len(self._by_value) > 2 * len(self._rows) + self._max_rows:  # rows added by another thread mid-sweep
            self._by_value = {(key[0], entry[0]): entry[1] for key, entry in self._rows.items()}

    def error(self, message: str) -> bytes:
        return self.widget_body(ErrorView(WidgetState(error=message)))

    def panels(self, panels: Panels) -> RenderedPanels:
        main, side = panels
        return self._bodies(main), self._bodies(side)

    def _bodies(self, views: Iterable[tuple[str, View]]) -> list[tuple[str, bytes]]:
        return [(title, self.widget_body(view)) for title, view in views]

    def page(self, page: PageView, rendered: RenderedPanels | None = None) -> bytes:
        """The page, UTF-8. `rendered`: its widgets as `panels` rendered them, else those of `page`.

        The widgets go in as the bytes they were rendered to, as remembered rows do in a widget: at 2,000
        services they are 1.5 MB, and decoding them into the page's text, copying that text and encoding it
        again took a third of the page's time."""
        main, side = rendered if rendered is not None else self.panels((page.panels, page.side))
        splice = _Splice(self)

        def marked(bodies: list[tuple[str, bytes]]) -> list[tuple[str, Markup]]:
            return [(title, splice.put([body])) for title, body in bodies]

        return self._render("page.html", splice, page=page, panels=marked(main), side=marked(side))


class _Splice:
    """What one render puts in after its template ran (a widget's remembered row lists, a page's widgets): each
    stands in the template's output as a mark, and is put back in as its bytes (`Renderer._render`)."""

    def __init__(self, renderer: Renderer) -> None:
        self._renderer = renderer
        self.groups: list[list[bytes]] = []

    def rows(self, macro: Macro, rows: Iterable[Hashable]) -> Markup:
        return self.put([self._renderer._remembered(macro, row) for row in rows])

    def put(self, pieces: list[bytes]) -> Markup:
        """A mark for `pieces`: HTML our own templates made (rows, a page's widgets), never a source's text."""
        self.groups.append(pieces)
        # Markup: the mark is ours, and is taken out again before anyone reads the output.
        return Markup(f"{self._renderer._mark}{len(self.groups) - 1}\x00")


class _Answers(dict[Hashable, T]):
    """One board's answers, with what they weigh: in all (`weight`), and each (`weights`)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = 0
        self.weights: dict[Hashable, int] = {}

    def copy(self) -> _Answers[T]:
        answers: _Answers[T] = _Answers()
        answers.update(self)
        answers.weight, answers.weights = self.weight, dict(self.weights)
        return answers


class VersionCache(Generic[T]):
    """Finished responses for the current board; emptied when the collector publishes a new board.

    `warm` renders answers for a board before it is published (in the collector's worker thread), so that the
    first request after a publish finds them ready instead of paying for the render itself (the first board
    after a start is published first, and warmed right after). Which answers: those asked for lately (`get`);
    until the first request, those announced with `expect`."""

    def __init__(
        self,
        store: BoardStore,
        *,
        max_entries: int = MAX_ENTRIES,
        weigh: Callable[[T], int] | None = None,
        max_bytes: int = MAX_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._max = max_entries
        self._weigh = weigh  # an answer's bytes; None: answers count by number only
        self._max_bytes = max_bytes
        self._clock = clock
        # A board and its answers, swapped as one: the publisher's thread and the event loop both switch it, and
        # an answer must only ever land beside the board it was built from.
        self._current: tuple[Board | None, _Answers[T]] = (None, _Answers())
        self._next: tuple[Board, _Answers[T]] | None = None
        # key -> (how to build it, when it was last asked for, how often), the least recently asked first.
        # Written on the event loop, read on the publisher's thread: under the lock.
        self._asked: dict[Hashable, tuple[Callable[[Board], T], float, int]] = {}
        self._expected: set[Hashable] = set()  # announced by `expect`, not asked for yet
        self._asked_lock = threading.Lock()
        # Switch at the publish, on the publisher's thread: dropping the old board's answers (and with them
        # the last references to a big old board) then costs the publisher, not the next request.
        store.subscribe(self._adopt)

    def _adopt(self, board: Board) -> _Answers[T]:
        current = self._current
        if current[0] is not board:
            ready = self._next
            current = (board, ready[1].copy() if ready is not None and ready[0] is board else _Answers())
            self._current = current
        return current[1]

    def _keep(self, entries: _Answers[T], key: Hashable, answer: T) -> None:
        """`answer` among `entries`, when they have room for it (an answer for a key they hold always)."""
        weight = self._weigh(answer) if self._weigh is not None else 0
        held = entries.weights.get(key)
        if held is None and (len(entries) >= self._max or entries.weight + weight > self._max_bytes):
            return
        entries[key] = answer
        entries.weight += weight - (held or 0)
        entries.weights[key] = weight

    def get(self, key: Hashable, build: Callable[[Board], T], fresh: Callable[[T], bool] | None = None) -> T:
        """The answer `key` for the current board; `fresh(answer)` False: built again for this board too."""
        board = self._store.current()
        entries = self._adopt(board)  # a publish this cache has not seen yet (e.g. a store published before it)
        self._asked_for(key, build)
        entry = entries.get(key)
        if entry is None or (fresh is not None and not fresh(entry)):
            entry = build(board)
            self._keep(entries, key, entry)
        return entry

    def ready(self, key: Hashable, build: Callable[[Board], T]) -> T | None:
        """The answer `key` for the current board when it is made already (`key` counts as asked for, as with
        `get`); None: `get` makes it."""
        entries = self._adopt(self._store.current())
        self._asked_for(key, build)
        return entries.get(key)

    def expect(self, key: Hashable, build: Callable[[Board], T]) -> None:
        """Warm `key` for every board until the first request: then only what is asked for is warmed."""
        with self._asked_lock:
            self._expected.add(key)
            self._remember(key, build)

    def _asked_for(self, key: Hashable, build: Callable[[Board], T]) -> None:
        with self._asked_lock:
            if self._expected:
                for guess in self._expected - {key}:
                    self._asked.pop(guess, None)
                self._expected.clear()
            self._remember(key, build)

    def _remember(self, key: Hashable, build: Callable[[Board], T]) -> None:
        asked = self._asked.pop(key, None)
        self._asked[key] = (build, self._clock(), asked[2] + 1 if asked is not None else 1)
        if len(self._asked) > WARM_KEYS:
            # The one asked for least often goes, the least recently of those: Glance asks for its few widgets
            # again and again, so a stream of odd query strings pushes out only its own (never the one just asked).
            others = list(self._asked.items())[:-1]
            del self._asked[min(others, key=lambda item: item[1][2])[0]]

    def warm(self, board: Board, key: Hashable, build: Callable[[Board], T]) -> None:
        """Render `key` for `board`, the board about to be published, or the one just published."""
        answer = build(board)
        board_shown, entries = self._current
        if board_shown is board:  # already on show: among its answers at once (a request may have made it too)
            self._keep(entries, key, answer)
            return
        ready = self._next
        if ready is None or ready[0] is not board:
            ready = (board, _Answers())
        self._keep(ready[1], key, answer)
        self._next = ready

    def warm_asked(self, board: Board) -> None:
        """Render for `board` every answer asked for within the last day; forget the ones asked for before."""
        since = self._clock() - WARM_FOR_S
        with self._asked_lock:
            for key in [key for key, (_, asked_at, _) in self._asked.items() if asked_at < since]:
                del self._asked[key]
            wanted = [(key, build) for key, (build, _, _) in self._asked.items()]
        for key, build in wanted:
            self.warm(board, key, build)


__all__ = ["ErrorView", "Payload", "Renderer", "VersionCache"]
