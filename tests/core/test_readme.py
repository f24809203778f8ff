"""Every YAML block in the README is real: configs validate (with their variables and files provided), Glance
snippets parse after Glance's own `${...}` substitution and point at routes that exist."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from backup_glance.board import BoardStore
from backup_glance.config import Config, parse_text
from backup_glance.web import create_app

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.MULTILINE | re.DOTALL)
REFERENCE = re.compile(r"\$\{(?:([a-zA-Z]+):)?([A-Za-z0-9_.-]+)\}")
GLANCE_WIDGETS = {"extension", "monitor", "custom-api"}
MINIMAL_SOURCE = "sources:\n  - {name: pbs, type: pbs, url: 'https://pbs.lan', token_id: 'a@pbs!t', token_secret: s}\n"
PARTIAL_CONFIG_KEYS = {"server", "history", "defaults", "timezone", "notify", "heartbeat"}  # + MINIMAL_SOURCE


def blocks() -> list[tuple[int, str]]:
    text = README.read_text()
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in BLOCK.finditer(text)]


def provide(block: str, folder: Path) -> dict[str, str]:
    """An environment and a secrets folder holding every variable and secret the block refers to."""
    secrets = folder / "secrets"
    secrets.mkdir(exist_ok=True)
    env = {"BACKUP_GLANCE_SECRETS_DIR": str(secrets)}
    for kind, name in REFERENCE.findall(block):
        value = f"value-of-{name}-0123456789"
        if kind == "secret":
            (secrets / name).write_text(value + "\n")
            (secrets / name).chmod(0o600)
        elif kind == "readFileFromEnv":
            (folder / name).write_text(value)
            env[name] = str(folder / name)
        else:
            env[name] = value
    if "password_env:" in block:
        env.update({m: "restic-password" for m in re.findall(r"password_env:\s*(\w+)", block)})
    return env


def glance_substitute(block: str) -> str:
    """Glance replaces references in the raw text before it parses YAML."""
    return REFERENCE.sub(lambda m: f"glance-{m.group(2)}", block)


def routes() -> list[Any]:
    app = create_app(Config(), BoardStore())
    return list(app.routes)


def is_route(path: str) -> bool:
    scope = {"type": "http", "path": path, "method": "GET", "root_path": ""}
    return any(route.matches(scope)[0].name == "FULL" for route in routes())


@pytest.mark.parametrize(("line", "block"), blocks(), ids=[f"README line {line}" for line, _ in blocks()])
def test_every_yaml_block_is_real(line: int, block: str, tmp_path: Path) -> None:
    parsed = yaml.safe_load(glance_substitute(block))
    if isinstance(parsed, dict) and "sources" in parsed:
        report = parse_text(block, filename=f"README.md block at line {line}", env=provide(block, tmp_path))
        assert report.errors == [], [str(p) for p in report.errors]
    elif isinstance(parsed, dict) and set(parsed) <= PARTIAL_CONFIG_KEYS:
        text = MINIMAL_SOURCE + block
        report = parse_text(text, filename=f"README.md block at line {line}", env=provide(block, tmp_path))
        assert report.errors == [], [str(p) for p in report.errors]
    elif isinstance(parsed, list) and all(isinstance(w, dict) and "type" in w for w in parsed):
        for widget in parsed:
            check_glance_widget(widget)
    else:
        pytest.fail(f"README line {line}: a YAML block this test does not know how to check")


def check_glance_widget(widget: dict[str, Any]) -> None:
    assert widget["type"] in GLANCE_WIDGETS, widget["type"]
    # A monitor site's check-url is what Glance asks (its url is what a click opens in the browser).
    urls = [widget["url"]] if "url" in widget else [s.get("check-url", s["url"]) for s in widget.get("sites", [])]
    assert urls, widget
    for url in urls:
        parts = urlsplit(url)
        assert parts.scheme == "http" and parts.port == 8765, url
        assert is_route(parts.path), f"{url}: no such route"
    if widget["type"] == "extension":
        assert widget["allow-potentially-dangerous-html"] is True
    if "cache" in widget:
        assert re.fullmatch(r"\d+(s|m|h|d)", widget["cache"]), widget["cache"]  # Glance's own rule


def test_the_readme_has_config_and_glance_blocks() -> None:
    kinds = [("sources" in (yaml.safe_load(glance_substitute(b)) or {})) for _, b in blocks() if b.lstrip()[:1] != "-"]
    assert any(kinds) and len(blocks()) >= 5
