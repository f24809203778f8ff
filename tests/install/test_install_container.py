"""What the Dockerfile, deploy/compose.yaml and deploy/glance.yml promise, checked without a Docker engine.

Statically: the files agree with each other and with the app (script name, port, data volume, config path,
secret names, routes). Dynamically: the installed wheel runs the way the image runs it, as an unprivileged user
in a mount namespace where everything but the data folder is read-only.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import SplitResult, urlsplit

import httpx
import pytest
import yaml
from install_helpers import (
    DEPLOY,
    REPO,
    SECRET_REFERENCE,
    Installed,
    is_route,
    run_checked,
    secret_names,
    wait_until_polled,
    write_secrets,
)
from serve_process import ServeProcess

from backup_glance.commands._common import CONFIG_VARIABLE, DEFAULT_PATHS
from backup_glance.config import ServerConfig
from backup_glance.config._variables import DEFAULT_SECRETS_DIR, SECRETS_DIR_VARIABLE

NOBODY = 65534
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
COMPOSE = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
DEPLOY_CONFIG = DEPLOY / "backup-glance.yaml"
SERVICE = "backup-glance"  # the compose service Glance reaches by name


# --- Dockerfile -------------------------------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    flags: dict[str, str]
    args: list[str]  # the exec form's list, or the shell form split into words


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert found, f"the stage FROM {self.base} has no {keyword}"
        return found[-1]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            if all("=" in word for word in instruction.args):
                for word in instruction.args:
                    name, _, value = word.partition("=")
                    values[name] = value
            else:  # the legacy `ENV NAME value with spaces`
                values[instruction.args[0]] = " ".join(instruction.args[1:])
        return values


def logical_lines(text: str) -> Iterator[str]:
    """Instructions with their `\\` continuations joined; comment lines dropped, also inside a continuation."""
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        yield pending + stripped
        pending = ""
    assert not pending, "the Dockerfile ends inside a line continuation"


def words(text: str) -> list[str]:
    text = text.strip()
    if text.startswith("["):
        parsed = json.loads(text)
        assert isinstance(parsed, list) and all(isinstance(word, str) for word in parsed), text
        return parsed
    return shlex.split(text)


def parse_dockerfile(text: str) -> list[Stage]:
    stages: list[Stage] = []
    for line in logical_lines(text):
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        flags = {}
        rest = rest.strip()
        while rest.startswith("--"):
            flag, _, rest = rest.partition(" ")
            name, _, value = flag[2:].partition("=")
            flags[name] = value
            rest = rest.strip()
        if keyword == "FROM":
            image, *alias = rest.split()
            stages.append(Stage(image, alias[1] if len(alias) == 2 and alias[0].upper() == "AS" else None))
            continue
        assert stages, f"{keyword} before the first FROM"
        if keyword == "HEALTHCHECK":
            kind, _, command = rest.partition(" ")
            args = [kind.upper(), *words(command)]
        elif keyword == "RUN":
            args = [rest]  # shell code: kept whole
        else:
            args = words(rest)
        stages[-1].instructions.append(Instruction(keyword, flags, args))
    return stages


STAGES = parse_dockerfile((REPO / "Dockerfile").read_text())
FINAL = STAGES[-1]


def image_env(data: Path) -> dict[str, str]:
    """The final stage's ENV with the /data volume moved to `data`."""
    return {name: re.sub(r"^/data(?=/|$)", str(data), value) for name, value in FINAL.env().items()}


def exposed_port() -> int:
    (port,) = FINAL.last("EXPOSE").args
    return int(port.removesuffix("/tcp"))


# --- .dockerignore: Docker's rules (last matching pattern wins; a pattern matching a folder covers its content) ---


def glob_regex(pattern: str) -> str:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 1)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return out


def dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for line in (REPO / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = os.path.normpath(line.removeprefix("!").strip()).lstrip("/")
        rules.append((negated, re.compile(glob_regex(pattern))))
    return rules


def in_build_context(path: str) -> bool:
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for negated, rule in dockerignore_rules():
        if any(rule.fullmatch(candidate) for candidate in candidates):
            excluded = not negated
    return not excluded


def context_copies(stage: Stage) -> list[str]:
    """The build-context sources of a stage's COPY instructions (not those from another stage)."""
    return [
        source.rstrip("/") or "."
        for copy in stage.all("COPY") + stage.all("ADD")
        if "from" not in copy.flags
        for source in copy.args[:-1]
    ]


def test_dockerfile_parser_reads_continuations_flags_and_both_forms() -> None:
    (stage,) = parse_dockerfile(
        "FROM python:3.11-slim AS b\n# note\nENV A=1 \\\n    # dropped\n    B=2\n"
        'HEALTHCHECK --timeout=5s \\\n  CMD ["python", "-c", "x"]\nCOPY --from=b /w /w\nEXPOSE 8765/tcp\n'
    )
    assert (stage.base, stage.name, stage.env()) == ("python:3.11-slim", "b", {"A": "1", "B": "2"})
    assert stage.last("HEALTHCHECK") == Instruction("HEALTHCHECK", {"timeout": "5s"}, ["CMD", "python", "-c", "x"])
    assert context_copies(stage) == []


def test_dockerignore_rules_follow_docker() -> None:
    # The allow-list this repository uses: everything out, the build inputs back in, caches out again.
    assert in_build_context("pyproject.toml") and in_build_context("src/backup_glance/cli.py")
    for kept_out in (".venv/bin/python", ".git/HEAD", "deploy/secrets/pbs_token", "tests/install/conftest.py"):
        assert not in_build_context(kept_out), kept_out
    assert not in_build_context("src/backup_glance/__pycache__/cli.cpython-311.pyc")
    assert not in_build_context("src/backup_glance.egg-info/PKG-INFO")


def test_builder_stage_gets_every_build_input_from_the_context() -> None:
    builder = STAGES[0]
    copied = context_copies(builder)
    for source in copied:
        assert (REPO / source).exists(), f"COPY {source}: not in the repository"
        assert in_build_context(source), f"COPY {source}: .dockerignore keeps it out of the build context"
    package = REPO / "src" / "backup_glance"
    needed = ["pyproject.toml", PYPROJECT["project"]["readme"], "LICENSE"] + [
        str(path.relative_to(REPO)) for path in package.rglob("*") if path.is_file() and "__pycache__" not in path.parts
    ]
    for path in needed:
        assert any(path == source or path.startswith(source + "/") for source in copied), f"{path} is not copied"
        assert in_build_context(path), f"{path} is kept out of the build context"
    assert any("pip wheel" in run.args[0] for run in builder.all("RUN"))


def test_final_stage_installs_only_the_wheel_and_runs_the_script_unprivileged() -> None:
    assert len(STAGES) >= 2, "a builder stage and a slim final stage"
    assert FINAL.base.startswith("python:3.11-slim")
    assert context_copies(FINAL) == [], "the final stage takes nothing from the source but the wheel"
    (install,) = [run for run in FINAL.all("RUN") if "pip install" in run.args[0]]
    assert install.flags["mount"].startswith("type=bind,from=" + str(STAGES[0].name))
    assert re.search(r"pip install .*/wheels/\*\.whl", install.args[0])

    assert FINAL.last("ENTRYPOINT").args == [next(iter(PYPROJECT["project"]["scripts"]))]
    command = FINAL.last("CMD").args
    assert command[0] == "serve" and command[command.index("--host") + 1] == "0.0.0.0"
    user, _, group = FINAL.last("USER").args[0].partition(":")
    assert user not in ("", "0", "root") and group not in ("0", "root")

    env = FINAL.env()
    assert env["BACKUP_GLANCE_DATA"] == "/data" and FINAL.last("VOLUME").args == ["/data"]
    assert PurePosixPath(env["TMPDIR"]).is_relative_to("/data"), "the demo's temporary files need a writable place"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    # Compose mounts secrets in the default folder; the image must not move it.
    assert env.get(SECRETS_DIR_VARIABLE, DEFAULT_SECRETS_DIR) == DEFAULT_SECRETS_DIR


def test_one_port_everywhere() -> None:
    port = ServerConfig().port
    assert exposed_port() == port
    assert "--port" not in FINAL.last("CMD").args
    assert yaml.safe_load(DEPLOY_CONFIG.read_text())["server"]["port"] == port
    assert healthcheck_url().port == port
    assert [container_port(mapping) for mapping in COMPOSE["services"][SERVICE]["ports"]] == [port]


def healthcheck_url() -> SplitResult:
    check = FINAL.last("HEALTHCHECK")
    assert check.args[:3] == ["CMD", "python", "-c"], "exec form, python only: the slim image has no curl or wget"
    urls: list[str] = re.findall(r"http://[^'\"\s]+", check.args[3])
    (url,) = urls
    assert "timeout=" in check.args[3] and "timeout" in check.flags
    parts = urlsplit(url)
    assert (parts.hostname, parts.path) == ("127.0.0.1", "/healthz")
    return parts


def container_port(mapping: str | int) -> int:
    return int(str(mapping).rsplit(":", 1)[-1].removesuffix("/tcp"))


# --- compose.yaml -------------------------------------------------------------------------------------------------


def mounts(service: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Short-syntax volumes as target -> (source, mode)."""
    found = {}
    for volume in service["volumes"]:
        source, target, *mode = volume.split(":")
        found[target] = (source, mode[0] if mode else "rw")
    return found


def test_compose_runs_the_image_the_way_it_was_built_for() -> None:
    service = COMPOSE["services"][SERVICE]
    assert (DEPLOY / service["build"] / "Dockerfile").resolve() == REPO / "Dockerfile"
    assert service["read_only"] is True
    volumes = mounts(service)
    data_source, data_mode = volumes[FINAL.last("VOLUME").args[0]]
    assert data_source in COMPOSE["volumes"] and data_mode == "rw", "a named volume on /data"
    config_source, config_mode = volumes["/config/backup-glance.yaml"]
    assert "/config/backup-glance.yaml" in DEFAULT_PATHS
    assert (DEPLOY / config_source).resolve() == DEPLOY_CONFIG and config_mode == "ro"
    assert set(volumes) == {"/data", "/config/backup-glance.yaml"}, "nothing else is writable or needed"

    glance = COMPOSE["services"]["glance"]
    assert glance["image"].startswith("glanceapp/glance")
    source, mode = mounts(glance)["/app/config/glance.yml"]  # where the Glance image reads its config
    assert (DEPLOY / source).resolve() == DEPLOY / "glance.yml" and mode == "ro"


def test_secret_names_agree_between_configs_compose_and_files() -> None:
    declared = COMPOSE["secrets"]
    for name, spec in declared.items():
        assert spec == {"file": f"./secrets/{name}"}, name
    backup_glance, glance = COMPOSE["services"][SERVICE], COMPOSE["services"]["glance"]
    assert set(backup_glance["secrets"]) == secret_names(DEPLOY_CONFIG)
    assert set(glance["secrets"]) == set(SECRET_REFERENCE.findall((DEPLOY / "glance.yml").read_text()))
    assert set(backup_glance["secrets"]) | set(glance["secrets"]) <= set(declared)
    # Glance sends the very token backup-glance checks.
    token = SECRET_REFERENCE.fullmatch(yaml.safe_load(DEPLOY_CONFIG.read_text())["server"]["auth_token"])
    assert token is not None and set(glance["secrets"]) == {token.group(1)}


def test_deploy_config_validates_with_its_secrets(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    write_secrets(secrets, secret_names(DEPLOY_CONFIG))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), SECRETS_DIR_VARIABLE: str(secrets)}
    validate = [sys.executable, "-m", "backup_glance", "validate", str(DEPLOY_CONFIG)]
    result = run_checked(validate, env=env, cwd=tmp_path)
    assert f"{DEPLOY_CONFIG}: ok" in result.stdout

    # The secrets are really read: a token too short for auth_token is an error.
    (secrets / "backup_glance_token").chmod(0o600)
    (secrets / "backup_glance_token").write_text("short\n")
    rejected = subprocess.run(validate, env=env, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert rejected.returncode == 2 and "auth_token" in rejected.stdout + rejected.stderr


# --- glance.yml ---------------------------------------------------------------------------------------------------

# Glance's own pattern (internal/glance/config.go): substituted in the raw text, comments included, before YAML.
GLANCE_VARIABLE = re.compile(r"(^|.)\$\{(?:([a-zA-Z]+):)?([a-zA-Z0-9_-]+)\}")


def glance_text(secrets: dict[str, str], env: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        before, kind, name = match.groups()
        if before == "\\":
            return match.group(0)[1:]
        if kind is None:
            if not re.fullmatch(r"[A-Z0-9_]+", name):
                return match.group(0)  # Glance leaves it as written
            assert name in env, f"Glance would refuse to start: environment variable {name} is not set"
            return before + env[name]
        assert kind == "secret" and name in secrets, f"Glance would refuse to start: no {match.group(0)}"
        return before + secrets[name]

    text = GLANCE_VARIABLE.sub(value, (DEPLOY / "glance.yml").read_text())
    assert "${" not in text, "a reference Glance leaves unsubstituted"
    return text


@dataclass
class GlanceRequest:
    widget: dict[str, Any]
    url: str
    params: dict[str, str] | None
    headers: dict[str, str]
    auth: tuple[str, str] | None


def glance_requests(config: dict[str, Any]) -> list[GlanceRequest]:
    """The requests Glance makes for the widgets of every page (groups and split columns included)."""

    def widgets(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for widget in items:
            yield widget
            yield from widgets(widget.get("widgets", []))

    requests = []
    for page in config["pages"]:
        columns = page["columns"]
        assert 1 <= len(columns) <= 3 and 1 <= sum(c["size"] == "full" for c in columns) <= 2, page["name"]
        for widget in widgets(page.get("head-widgets", []) + [w for c in columns for w in c["widgets"]]):
            assert re.fullmatch(r"\d+[smhd]", str(widget.get("cache", "1m"))), widget
            if widget["type"] in ("extension", "custom-api"):
                params = widget.get("parameters")
                query = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in (params or {}).items()}
                requests.append(GlanceRequest(widget, widget["url"], query or None, widget.get("headers", {}), None))
            elif widget["type"] == "monitor":
                for site in widget["sites"]:
                    auth = site.get("basic-auth")
                    credentials = (auth["username"], auth["password"]) if auth else None
                    requests.append(GlanceRequest(widget, site.get("check-url", site["url"]), None, {}, credentials))
    return requests


def test_glance_widgets_reach_backup_glance_routes_with_the_token() -> None:
    token = "t0ken-from-the-secret-file"
    requests = glance_requests(yaml.safe_load(glance_text({"backup_glance_token": token}, {})))
    port = container_port(COMPOSE["services"][SERVICE]["ports"][0])
    assert {r.widget["type"] for r in requests} >= {"extension", "monitor"}
    assert {urlsplit(r.url).path for r in requests} >= {"/glance/status", "/glance/datastores", "/glance/calendar"}
    for request in requests:
        url = urlsplit(request.url)
        assert (url.scheme, url.hostname, url.port) == ("http", SERVICE, port), request.url
        assert is_route(url.path), request.url
        assert request.headers.get("Authorization") == f"Bearer {token}" or (request.auth or ("", ""))[1] == token
        if request.widget["type"] == "extension":
            assert request.widget["allow-potentially-dangerous-html"] is True, "or Glance shows the HTML as text"

    base_url = urlsplit(yaml.safe_load(DEPLOY_CONFIG.read_text())["server"]["base_url"])
    published = [int(str(m).split(":")[0]) for m in COMPOSE["services"][SERVICE]["ports"]]
    monitors = {id(r.widget): r.widget for r in requests if r.widget["type"] == "monitor"}
    for widget in monitors.values():
        for site in widget["sites"]:  # the link a click opens: the browser's address, not the compose network's
            link = urlsplit(site["url"])
            assert (link.hostname, link.port) == (base_url.hostname, base_url.port) and link.port in published


# --- running as the image runs ------------------------------------------------------------------------------------

# As `docker run --read-only -v data:/data --user 65534`: a private mount namespace where every mount but the data
# folder is read-only (/proc, /sys and /dev stay as Docker leaves them), then privileges dropped for good.
READ_ONLY_ROOT = r"""
set -eu
data=$BACKUP_GLANCE_DATA
mount --bind "$data" "$data"
table=$(cat /proc/self/mounts)
printf '%s\n' "$table" | while read -r _ where _ options _; do
  where=$(printf '%b' "$where")
  case "$where" in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*|"$data") continue ;; esac
  case ",$options," in *,ro,*) continue ;; esac
  mount -o remount,bind,ro "$where" || { echo "cannot make $where read-only"; exit 96; }
done
for probe in $READ_ONLY_PROBES; do
  if touch "$probe/.write-probe" 2>/dev/null; then rm -f "$probe/.write-probe"; echo "writable: $probe"; exit 97; fi
done
touch "$data/.write-probe" && rm "$data/.write-probe"
unset READ_ONLY_PROBES
exec setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"
"""


def container_like(
    installed: Installed, data: Path, probes: list[Path], env: dict[str, str], *, without: tuple[str, ...] = ()
) -> ServeProcess:
    """`serve` as the image runs it, with the image's environment (`env` added, `without` removed)."""
    tools = {tool: shutil.which(tool) for tool in ("unshare", "setpriv")}
    if os.geteuid() != 0 or None in tools.values():
        pytest.skip(f"needs root and util-linux's unshare and setpriv (found: {tools})")
    data.mkdir(mode=0o700)
    os.chown(data, NOBODY, NOBODY)
    environment = {
        **image_env(data),
        "HOME": "/nonexistent",
        "READ_ONLY_PROBES": " ".join(str(p) for p in ("/", "/tmp", "/var/tmp", *probes)),
        **env,
    }
    return ServeProcess(
        ["--host", "127.0.0.1"],
        env={name: value for name, value in environment.items() if name not in without},
        cwd=Path("/"),
        command=[
            *(str(tools["unshare"]), "--mount", "--propagation", "private"),
            *("sh", "-c", READ_ONLY_ROOT, "sh", str(installed.command)),
        ],
    )


def uids_of(pid: int) -> set[int]:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return {int(uid) for uid in line.split()[1:]}
    raise AssertionError("no Uid line")


def owners(folder: Path) -> dict[str, int]:
    """Path below `folder` -> owner uid, for what a running server has written (skipping files it just removed)."""
    found = {}
    for path in folder.rglob("*"):
        try:
            found[str(path.relative_to(folder))] = path.lstat().st_uid
        except FileNotFoundError:
            continue
    return found


def healthcheck(installed: Installed, port: int) -> int:
    """The image's HEALTHCHECK command, run as the image's user with the image's Python, against `port`."""
    _, _, flag, code = FINAL.last("HEALTHCHECK").args
    assert ":8765/" in code
    command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(installed.python), flag]
    result = subprocess.run(
        [*command, code.replace(":8765/", f":{port}/")], capture_output=True, timeout=10, check=False, cwd="/"
    )
    return result.returncode


def test_demo_runs_unprivileged_with_only_the_data_volume_writable(installed: Installed, open_tmp: Path) -> None:
    data = open_tmp / "data"
    with container_like(installed, data, [installed.venv, REPO, open_tmp], {}) as serve:
        assert serve.url, serve.output
        wait_until_polled(serve.url)
        answers = {path: httpx.get(serve.url + path, timeout=10).status_code for path in ("/healthz", "/api/v1/status")}
        assert serve.process is not None
        uids = uids_of(serve.process.pid)
        written = owners(data)
        port = urlsplit(serve.url).port
        assert port is not None
        healthy = healthcheck(installed, port)
        code, seconds = serve.stop(signal.SIGTERM)

    assert answers == {"/healthz": 200, "/api/v1/status": 200}
    assert uids == {NOBODY}
    # The demo keeps its history and certificates in a temporary folder: TMPDIR, inside the volume.
    assert any(re.fullmatch(r"backup-glance-demo-[^/]+/history\.sqlite3", path) for path in written), written
    assert set(written.values()) == {NOBODY}
    assert healthy == 0 and healthcheck(installed, port) != 0
    assert (code, "Traceback" in serve.output, "Read-only file system" in serve.output) == (0, False, False), (
        serve.output
    )
    assert seconds < 10
    assert list(data.iterdir()) == [], "a clean stop removes the demo's temporary files"


def test_demo_without_a_writable_temporary_folder_says_what_to_do(installed: Installed, open_tmp: Path) -> None:
    with container_like(installed, open_tmp / "data", [], {}, without=("TMPDIR",)) as serve:
        assert serve.process is not None
        code = serve.process.wait(10)
    assert (serve.url, code) == ("", 5), serve.output
    assert "set TMPDIR to a writable folder" in serve.output and "internal error" not in serve.output, serve.output


def test_deploy_config_serves_glance_unprivileged(installed: Installed, open_tmp: Path) -> None:
    secrets_dir = open_tmp / "secrets"  # as compose mounts them: files of the container's user
    secrets = write_secrets(secrets_dir, secret_names(DEPLOY_CONFIG), owner=NOBODY)
    config = open_tmp / "config" / "backup-glance.yaml"
    config.parent.mkdir()
    shutil.copy(DEPLOY_CONFIG, config)
    env = {CONFIG_VARIABLE: str(config), SECRETS_DIR_VARIABLE: str(secrets_dir)}
    requests = glance_requests(yaml.safe_load(glance_text(secrets, {})))
    data = open_tmp / "data"
    with container_like(installed, data, [installed.venv, REPO, open_tmp], env) as serve:
        assert serve.url, serve.output
        history = sorted(p.name for p in data.iterdir())
        answers = []
        for request in requests:
            # Glance's request, sent to where this test's server listens instead of the compose network.
            url = serve.url + urlsplit(request.url).path
            response = httpx.get(url, params=request.params, headers=request.headers, auth=request.auth, timeout=10)
            answers.append(
                (request.widget["type"], url, response.status_code, response.headers.get("widget-content-type"))
            )
        anonymous = {p: httpx.get(serve.url + p, timeout=10).status_code for p in ("/healthz", "/api/v1/status", "/")}
        code, _ = serve.stop(signal.SIGTERM)

    assert "history.sqlite3" in history and all(name.startswith("history.sqlite3") for name in history), history
    for kind, url, status, content_type in answers:
        if kind == "monitor":
            assert status in (200, 503), url  # 503: the example hosts cannot be reached; both are answers
        else:
            assert (status, content_type) == (200, "html"), url
    assert anonymous == {"/healthz": 200, "/api/v1/status": 401, "/": 401}
    assert (code, "Traceback" in serve.output) == (0, False), serve.output
