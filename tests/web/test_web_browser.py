"""Real headless Chromium: fragments in a Glance-like frame (300 px small column, full column, light and dark),
and the standalone page at phone and desktop widths. Nothing may overflow sideways; key texts must be visible.

The frame uses our own stand-in stylesheet (`templates/_glance-like.css`, Glance's variable and class names, no
Glance code). The real-Glance check is the glance-preview tool; this one runs in CI without Glance's sources.
Screenshots go to test-artifacts/ (gitignored).
"""

from __future__ import annotations

from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from conftest import ClientFactory
from web_builders import a_board, a_datastore, a_full_board, a_slot, a_source, a_verdict, demo_board

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
COLUMNS = {"small": 300, "full": 1200}
FRAGMENTS = {
    "status": ("/glance/status?column={column}&limit=8", "need attention"),
    "status-problems": ("/glance/status?column={column}&status=problems", "verify failed"),
    "datastores": ("/glance/datastores?column={column}", "offsite"),
    "upcoming": ("/glance/calendar?view=upcoming&column={column}", "nightly 0"),
    "week": ("/glance/calendar?view=week&column={column}", "today"),
    "month": ("/glance/calendar?view=month&column={column}", "November"),
    "grid": ("/glance/calendar?view=grid&column={column}", "planned"),
}

pytestmark = pytest.mark.browser


def _frame(fragment: str, width: int, scheme: str) -> str:
    css = resources.files("backup_glance.web").joinpath("templates/_glance-like.css").read_text(encoding="utf-8")
    return (
        f'<!DOCTYPE html><html data-scheme="{scheme}"><head><meta charset="utf-8"><style>{css}'
        f"body{{padding:20px}}.frame{{width:{width}px}}</style></head><body>"
        f'<div class="frame"><div class="widget-header">Widget</div><div class="widget-content">'
        f"{fragment}</div></div></body></html>"
    )


@pytest.fixture(scope="module")
def fragments(client_for: Any) -> dict[tuple[str, str], str]:
    board = a_full_board(50)
    from dataclasses import replace

    board = replace(board, sources=(*board.sources, a_source("pbs-off", error="token rejected (HTTP 401)")))
    client = client_for(board)
    return {
        (name, column): client.get(url.format(column=column)).text
        for name, (url, _) in FRAGMENTS.items()
        for column in COLUMNS
    }


@pytest.fixture(scope="module")
def client_for() -> ClientFactory:  # module-scoped twin of conftest's, for the module-scoped fragments
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient
    from web_builders import ZONE

    from backup_glance.board import BoardStore
    from backup_glance.config import Config
    from backup_glance.web import create_app

    def make(board: Any, **_: Any) -> TestClient:
        return TestClient(create_app(Config(timezone=ZONE), BoardStore(board), demo_note="Demo data"))

    return make


@pytest.mark.parametrize("scheme", ["dark", "light"])
@pytest.mark.parametrize("column", list(COLUMNS))
@pytest.mark.parametrize("name", list(FRAGMENTS))
def test_fragment_fits_its_column(
    browser: Any, fragments: dict[tuple[str, str], str], name: str, column: str, scheme: str
) -> None:
    page = browser.new_page(viewport={"width": COLUMNS[column] + 80, "height": 900})
    try:
        page.set_content(_frame(fragments[(name, column)], COLUMNS[column], scheme))
        widths = page.eval_on_selector(".widget-content", "e => [e.scrollWidth, e.clientWidth]")
        assert widths[0] <= widths[1], f"{name}/{column}: content {widths[0]} px in a {widths[1]} px widget"
        key = FRAGMENTS[name][1]
        assert page.get_by_text(key).filter(visible=True).first.is_visible(), f"{key!r} not visible"
        assert page.get_by_text("token rejected (HTTP 401)").first.is_visible()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{name}-{column}-{scheme}.png"), full_page=True)
    finally:
        page.close()


@pytest.mark.parametrize("scheme", ["dark", "light"])
@pytest.mark.parametrize("width", [390, 1280])
def test_standalone_page_is_responsive(browser: Any, client_for: Any, width: int, scheme: str) -> None:
    html = client_for(a_full_board(20)).get("/").text
    context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme)
    page = context.new_page()
    try:
        page.set_content(html)
        scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert scroll <= inner, f"page is {scroll} px wide in a {inner} px viewport"
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        dark = sum(int(c) for c in background[background.index("(") + 1 : -1].split(",")[:3]) < 200
        assert dark == (scheme == "dark"), background
        for text in ("service 000 web", "offsite", "Sources", "This week", "This month", "By service"):
            assert page.get_by_text(text).filter(visible=True).first.is_visible(), text
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"page-{width}-{scheme}.png"), full_page=True)
    finally:
        context.close()


@pytest.fixture(scope="module")
def demo_client(client_for: ClientFactory) -> Any:
    return client_for(demo_board())


def _widget_height(browser: Any, fragment: str, column: str = "small", scheme: str = "dark") -> int:
    page = browser.new_page(viewport={"width": COLUMNS[column] + 80, "height": 900})
    try:
        page.set_content(_frame(fragment, COLUMNS[column], scheme))
        height: int = page.eval_on_selector(".frame", "e => e.getBoundingClientRect().height")
        return height
    finally:
        page.close()


def test_the_status_widget_fits_a_sidebar(browser: Any, demo_client: Any) -> None:
    """The demo's services: a summary, a three-line row per problem (name, cause, protection), one folded
    "N ok" row; with `limit`, Glance shows the first rows and a "show more"."""
    services = demo_client.get("/api/v1/status").json()["services"]
    bad = sum(1 for s in services if s["severity"] != "ok")
    assert 5 <= bad < len(services)
    html = demo_client.get("/glance/status?column=small").text
    assert f">{bad} need attention</span>" in html and f"✓ {len(services) - bad} ok" in html
    height = _widget_height(browser, html)
    assert height <= 140 + 80 * bad, f"{height} px in the small column for {bad} problems"
    assert html.count("copies · ") + html.count("copy · ") >= bad // 2, "protection lines missing"
    problems = demo_client.get("/glance/status?column=small&status=problems").text
    assert _widget_height(browser, problems) <= height and "+ <span" in problems


@pytest.mark.parametrize("column", list(COLUMNS))
def test_every_calendar_view_of_the_demo_fits_and_marks_its_problems(
    browser: Any, demo_client: Any, column: str
) -> None:
    for view in ("week", "month", "grid"):
        html = demo_client.get(f"/glance/calendar?view={view}&column={column}").text
        page = browser.new_page(viewport={"width": COLUMNS[column] + 80, "height": 900})
        try:
            page.set_content(_frame(html, COLUMNS[column], "dark"))
            widths = page.eval_on_selector(".widget-content", "e => [e.scrollWidth, e.clientWidth]")
            assert widths[0] <= widths[1], f"{view}/{column}: {widths[0]} px in {widths[1]} px"
            for service in ("postgres", "scratch", "vaultwarden"):
                assert page.locator(f'[data-mark="{service}"]').first.is_visible(), f"{view}/{column}: {service}"
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"demo-{view}-{column}.png"), full_page=True)
        finally:
            page.close()


def test_a_run_explains_itself_in_a_popover_on_hover(browser: Any, demo_client: Any) -> None:
    html = demo_client.get("/glance/calendar?view=week&column=full").text
    page = browser.new_page(viewport={"width": COLUMNS["full"] + 80, "height": 900})
    try:
        page.set_content(_frame(html, COLUMNS["full"], "light"))
        block = page.locator("i.bkg-fail[data-popover-type=html]").first
        details = block.locator("[data-popover-html]")
        assert not details.is_visible()
        block.hover()
        assert details.is_visible() and "Connection refused" in details.inner_text()
    finally:
        page.close()


# A real PBS error: a chunk's path holds its 64-character digest, a word no line can break at a space.
CHUNK = "/mnt/datastore/main/.chunks/4f2a/4f2a" + "9c1e" * 15 + " - No such file or directory (os error 2)"


def test_a_long_unbroken_word_wraps_in_every_widget_and_the_page(browser: Any, client_for: Any) -> None:
    from dataclasses import replace

    board = a_full_board(20)
    board = replace(
        board,
        sources=(*board.sources, a_source("pbs-chunks", error=f"datastore main: {CHUNK}")),
        verdicts=tuple(replace(v, reasons=(*v.reasons, f"verify failed: {CHUNK}")) for v in board.verdicts),
        datastores=(
            *board.datastores,
            replace(board.datastores[0], datastore=a_datastore("broken", error=CHUNK, maintenance=CHUNK)),
        ),
    )
    client = client_for(board)
    for name, (url, _) in FRAGMENTS.items():
        for column, width in COLUMNS.items():
            page = browser.new_page(viewport={"width": width + 80, "height": 900})
            try:
                page.set_content(_frame(client.get(url.format(column=column)).text, width, "dark"))
                widths = page.eval_on_selector(".widget-content", "e => [e.scrollWidth, e.clientWidth]")
                assert widths[0] <= widths[1], f"{name}/{column}: content {widths[0]} px in a {widths[1]} px widget"
                if name == "status":  # the reasons' popover: as wide as Glance lets it be, the digest wrapped
                    row = page.locator("[data-popover-type=html]").first
                    row.hover()
                    popover = row.locator("[data-popover-html]")
                    assert "4f2a9c1e" in popover.inner_text()
                    inner = popover.evaluate("e => [e.scrollWidth, e.clientWidth]")
                    assert inner[0] <= inner[1], f"the popover's text is {inner[0]} px in {inner[1]} px"
            finally:
                page.close()
    context = browser.new_context(viewport={"width": 390, "height": 900})
    try:
        page = context.new_page()
        page.set_content(client.get("/").text)
        scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert scroll <= inner, f"the page is {scroll} px wide on a {inner} px phone"
    finally:
        context.close()


def test_one_run_failing_for_150_services_stays_a_few_lines(browser: Any, client_for: Any) -> None:
    """The PBS storage went away overnight: one job, 150 guests, all failed. Every calendar view names a few and
    counts the rest, which open behind the count (every problem stays marked on every view)."""
    from dataclasses import replace

    from backup_glance.model import SlotOutcome, Status

    def board(guests: int) -> Any:
        ids = tuple(f"guest{i:03d}" for i in range(guests))
        verdicts = tuple(
            a_verdict(sid, name=f"guest {i:03d}", status=Status.FAILED, reasons=("last attempt failed: offline",))
            for i, sid in enumerate(ids)
        )
        run = a_slot("nightly", job_key="pve/backup/nightly", start=-timedelta(hours=20), outcome=SlotOutcome.FAILED)
        outcomes = tuple((sid, SlotOutcome.FAILED, "storage 'pbs' is offline") for sid in ids)
        return a_board(verdicts, slots=(replace(run, service_ids=ids, service_outcomes=outcomes),))

    many, one = client_for(board(150)), client_for(board(1))
    for view in ("week", "month"):
        for column in COLUMNS:
            url = f"/glance/calendar?view={view}&column={column}"
            html = many.get(url).text
            assert html.count("storage &#39;pbs&#39; is offline") <= 6, f"{view}/{column}: every failure listed"
            assert "+144 more" in html or "+142 more" in html, f"{view}/{column}: the rest not counted"
            assert 'data-mark="guest149"' in html, f"{view}/{column}: the rest not marked (behind the count)"
            height, alone = _widget_height(browser, html, column), _widget_height(browser, one.get(url).text, column)
            assert height <= alone + 250, f"{view}/{column}: {height} px for 150 failed guests, {alone} px for one"
