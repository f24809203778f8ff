"""Behind a reverse proxy under a sub-path, and for calendar apps: a real serve process, a real proxy in front."""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Iterator

import httpx
import pytest
from serve_process import ServeProcess

from backup_glance.demo import DemoLab

TOKEN = "a-token-of-sixteen-plus"
CALENDAR_KEY = "calendar-only-key-123"


class StripPrefixProxy(http.server.ThreadingHTTPServer):
    """What Caddy's `handle_path /backups/*` does: drop the prefix, pass the rest to the upstream."""

    def __init__(self, upstream: str, prefix: str) -> None:
        self.upstream = upstream
        self.prefix = prefix
        super().__init__(("127.0.0.1", 0), _ProxyHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    server: StripPrefixProxy

    def do_GET(self) -> None:
        if not self.path.startswith(self.server.prefix + "/"):
            self.send_error(404)
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() == "authorization"}
        response = httpx.get(self.server.upstream + self.path[len(self.server.prefix) :], headers=headers)
        self.send_response(response.status_code)
        for key, value in response.headers.items():
            if key.lower() not in ("transfer-encoding", "connection", "content-length", "content-encoding"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(response.content)))
        self.end_headers()
        self.wfile.write(response.content)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """The demo homelab behind `https://home.lan/backups`, with a token and a calendar key."""
    folder = tmp_path_factory.mktemp("public")
    with DemoLab() as lab:
        server = f"  base_url: https://home.lan/backups/\n  auth_token: {TOKEN}\n  calendar_key: {CALENDAR_KEY}\n"
        text = lab.config_text().replace("\nserver:\n", "\nserver:\n" + server)
        config = folder / "bg.yaml"
        config.write_text(text)
        config.chmod(0o600)
        env = {"HOME": str(folder), "BACKUP_GLANCE_SECRETS_DIR": lab.environment()["BACKUP_GLANCE_SECRETS_DIR"]}
        with ServeProcess(["--config", str(config)], env=env) as serve:
            yield serve
            serve.stop()


@pytest.fixture(scope="module")
def proxy(served: ServeProcess) -> Iterator[StripPrefixProxy]:
    server = StripPrefixProxy(served.url, "/backups")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_the_page_and_every_link_on_it_work_through_a_stripping_proxy(proxy: StripPrefixProxy) -> None:
    page = httpx.get(proxy.url + "/backups/", headers=AUTH)
    assert page.status_code == 200, page.text[:300]
    links = re.findall(r'href="([^"]+)"', page.text)
    assert links and all(link.startswith("https://home.lan/backups/") for link in links), links
    for link in links:
        response = httpx.get(proxy.url + link.removeprefix("https://home.lan"), headers=AUTH)
        assert response.status_code in (200, 503), (link, response.status_code)


def test_widgets_link_their_title_to_the_public_url(proxy: StripPrefixProxy) -> None:
    for widget in ("status", "datastores", "calendar"):
        response = httpx.get(proxy.url + f"/backups/glance/{widget}", headers={**AUTH, "Host": "evil.example"})
        assert response.status_code == 200
        assert response.headers["Widget-Title-URL"] == "https://home.lan/backups/"


def test_a_proxy_that_keeps_the_prefix_works_too(served: ServeProcess) -> None:
    assert httpx.get(served.url + "/backups/glance/status", headers=AUTH).status_code == 200
    assert httpx.get(served.url + "/backups/healthz").status_code == 200
    assert httpx.get(served.url + "/glance/status", headers=AUTH).status_code == 200


def test_the_calendar_key_opens_the_feed_and_nothing_else(proxy: StripPrefixProxy) -> None:
    feed = httpx.get(proxy.url + f"/backups/calendar.ics?key={CALENDAR_KEY}")
    assert feed.status_code == 200 and feed.text.startswith("BEGIN:VCALENDAR")
    assert httpx.get(proxy.url + "/backups/calendar.ics?key=wrong-key").status_code == 401
    assert httpx.get(proxy.url + "/backups/calendar.ics").status_code == 401
    for path in ("/", "/api/v1/status", "/glance/status", "/health"):
        response = httpx.get(proxy.url + f"/backups{path}?key={CALENDAR_KEY}")
        assert response.status_code == 401, path
    assert httpx.get(proxy.url + "/backups/healthz").status_code == 200


def test_the_page_never_carries_a_secret(proxy: StripPrefixProxy, served: ServeProcess) -> None:
    page = httpx.get(proxy.url + "/backups/", headers=AUTH).text
    assert TOKEN not in page and CALENDAR_KEY not in page
    assert TOKEN not in served.output and CALENDAR_KEY not in served.output
