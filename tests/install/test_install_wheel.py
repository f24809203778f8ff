"""The wheel as a user installs it: every file the package reads is inside, and the installed command serves the
demo homelab from any folder, with the repository nowhere on the path."""

from __future__ import annotations

import signal
import tomllib
import zipfile
from pathlib import Path

import httpx
from install_helpers import ENDPOINTS, REPO, Installed, run_checked, tree, wait_until_polled
from serve_process import ServeProcess

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def test_wheel_carries_every_file_of_the_package(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    package = installed.source / "src" / "backup_glance"
    expected = {
        str(Path("backup_glance") / path.relative_to(package))
        for path in package.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert expected - names == set()
    # Named as well: Jinja includes it into every page, and without it `/` answers 500.
    assert "backup_glance/web/templates/_glance-like.css" in names
    assert "backup_glance/py.typed" in names
    version = PYPROJECT["project"]["version"]
    assert f"backup_glance-{version}.dist-info/licenses/LICENSE" in names


def test_installed_command_serves_every_endpoint_from_an_empty_folder(installed: Installed, open_tmp: Path) -> None:
    home, cwd, temp = open_tmp / "home", open_tmp / "cwd", open_tmp / "tmp"
    for folder in (home, cwd, temp):
        folder.mkdir()
    # No PYTHONPATH, no BACKUP_GLANCE_*; a TMPDIR of its own, to see what the demo leaves behind.
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "TZ": "UTC", "TMPDIR": str(temp)}

    version = run_checked([installed.command, "--version"], env=env, cwd=cwd)
    assert version.stdout.strip() == f"backup-glance {PYPROJECT['project']['version']}"
    where = run_checked(
        [installed.python, "-c", "import backup_glance; print(backup_glance.__file__)"], env=env, cwd=cwd
    )
    assert Path(where.stdout.strip()).is_relative_to(installed.venv), "the installed copy must be the one that runs"
    assert installed.command.name in PYPROJECT["project"]["scripts"]

    before = tree(REPO)
    with ServeProcess(command=[str(installed.command)], env=env, cwd=cwd) as serve:
        assert serve.url, serve.output
        wait_until_polled(serve.url)
        answers = {e.path: httpx.get(serve.url + e.path, timeout=10) for e in ENDPOINTS}
        code, seconds = serve.stop(signal.SIGTERM)

    wrong = {
        e.path: (answers[e.path].status_code, answers[e.path].headers.get("content-type"))
        for e in ENDPOINTS
        if answers[e.path].status_code != e.status
        or not answers[e.path].headers["content-type"].startswith(e.content_type)
    }
    assert wrong == {}, serve.output
    assert "no configuration found: serving the built-in demo homelab" in serve.output
    assert answers["/calendar.ics"].text.startswith("BEGIN:VCALENDAR")
    assert code == 0, serve.output
    assert seconds < 10
    assert "Traceback" not in serve.output
    assert tree(REPO) - before == set(), "the installed command wrote into the repository"
    assert list(cwd.iterdir()) == []
    assert list(temp.iterdir()) == [], "a clean stop removes the demo's temporary files"
