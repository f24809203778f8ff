"""Hostile names from sources are text everywhere: HTML fragments, the page, JSON, monitor bodies and ICS."""

from __future__ import annotations

from datetime import timedelta
from html.parser import HTMLParser

import pytest
from conftest import ClientFactory
from icalendar import Calendar
from web_builders import HOSTILE, a_board, a_datastore, a_slot, a_source, a_verdict

from backup_glance.model import Status

NAMES = [HOSTILE, "</style><b>bold</b>", 'quote " and \' in "attr"', "new\nline; semi;colon, comma"]
HTML_URLS = [
    "/",
    "/glance/status",
    "/glance/status?column=full",
    "/glance/datastores",
    "/glance/calendar",
    "/glance/calendar?view=week",
    "/glance/calendar?view=grid",
]


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []
        self.style_text: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        (self.style_text if self._in_style else self.text).append(data)


def _hostile_board(name: str) -> object:
    slot_kw = {"service_ids": ("evil",), "detail": name}
    return a_board(
        (a_verdict("evil", name=name, status=Status.LATE, reasons=(name,)),),
        slots=(a_slot(name, **slot_kw), a_slot(name, job_key="j2", start=timedelta(hours=2), **slot_kw)),
        datastores=(a_datastore(name, source=name, error=name),),
        sources=(a_source(name, error=name),),
    )


@pytest.mark.parametrize("name", NAMES, ids=["img", "style", "quotes", "newline"])
@pytest.mark.parametrize("url", HTML_URLS)
def test_names_are_text_and_never_markup(client_for: ClientFactory, name: str, url: str) -> None:
    text = client_for(_hostile_board(name)).get(url).text
    parsed = _Collect()
    parsed.feed(text)
    assert "img" not in parsed.tags and "b" not in parsed.tags
    assert "</style><b>" not in "".join(parsed.style_text)
    visible = "".join(parsed.text)
    assert name.split("\n")[0] in visible


@pytest.mark.parametrize("name", NAMES, ids=["img", "style", "quotes", "newline"])
def test_json_monitor_and_ics_keep_names_as_data(client_for: ClientFactory, name: str) -> None:
    client = client_for(_hostile_board(name))
    assert client.get("/api/v1/status").json()["services"][0]["name"] == name
    body = client.get("/health/evil").text
    assert body.count("\n") == 1 and body.startswith(" ".join(name.split()))
    events = list(Calendar.from_ical(client.get("/calendar.ics").content).walk("VEVENT"))
    assert events and all(str(e["summary"]).startswith(("✓ " + name, name)) for e in events)
    assert name in str(events[0]["description"])
