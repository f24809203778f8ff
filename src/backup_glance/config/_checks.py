"""What a configuration means, checked short of the network: references, files, schedules, safe values.

These run on the parsed YAML (not on the validated records), so they report alongside shape problems and still
run when a shape problem elsewhere stops the records from being built. Each finding names its key path;
values with a bad shape are skipped here, since `_messages` already reports them.
"""

from __future__ import annotations

import difflib
import shutil
import ssl
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from ._notify import notify_findings, schedule_problem
from ._schema import as_text, parse_duration, path_problem
from ._variables import DEFAULT_SECRETS_DIR, SecretFileError, read_secret_file
from ._yaml import KeyPath, dotted

MIN_POLL_INTERVAL = timedelta(seconds=10)
MIN_TOKEN_LENGTH = 16
CALENDAR_PAST = timedelta(days=14)  # mirrors health.calendar.CALENDAR_PAST; the config may not import health
SERVICE_TARGET_KEYS = ("guest", "database", "plan", "restic", "targets")


@dataclass(frozen=True, slots=True)
class Finding:
    path: KeyPath
    message: str
    warning: bool = False


def check(data: Any, env: Mapping[str, str], secrets_dir: str) -> list[Finding]:
    """Every finding about what the values mean together; `data` is the parsed document after substitution."""
    if not isinstance(data, dict):
        return []
    findings: list[Finding] = []
    sources = list(_items(data, "sources"))
    services = list(_items(data, "services"))
    if not sources:
        findings.append(Finding(("sources",), "no sources: add at least one under sources: (pbs, pve, ...)"))
    findings += _unique(sources, "name", "two sources are named")
    findings += _unique(services, "id", "two services have the id")
    for path, source in sources:
        findings += _source(path, source, env, secrets_dir)
    kinds = _SourceKinds.of(sources)
    findings += _services(services, sources, kinds)
    findings += _durations(data, sources, services)
    findings += _protection(data, services) + _namespaces(sources, kinds.names.get("pbs", set()))
    findings += _server(data)
    findings += [Finding(path, message, warning) for path, message, warning in notify_findings(data)]
    return findings


def _items(data: dict[str, Any], key: str) -> Iterator[tuple[KeyPath, dict[str, Any]]]:
    value = data.get(key)
    if isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, dict):
                yield (key, index), item


def _text(mapping: dict[str, Any], key: str) -> str | None:
    return as_text(mapping.get(key))


def _unique(items: list[tuple[KeyPath, dict[str, Any]]], key: str, what: str) -> list[Finding]:
    seen: dict[str, KeyPath] = {}
    findings = []
    for path, item in items:
        name = _text(item, key)
        if name is None:
            continue
        if name in seen:
            findings.append(Finding((*path, key), f"{what} '{name}' (also {dotted(seen[name])})"))
        else:
            seen[name] = path
    return findings


def _source(path: KeyPath, source: dict[str, Any], env: Mapping[str, str], secrets_dir: str) -> list[Finding]:
    findings: list[Finding] = []
    ca_file = _text(source, "ca_file")
    if ca_file is not None:
        findings += _ca_file((*path, "ca_file"), ca_file, pinned=bool(source.get("fingerprint")))
    for key in ("token_secret", "token", "password"):
        value = source.get(key)
        if value == "":
            findings.append(Finding((*path, key), f"is empty; it must hold the {key}"))
        elif isinstance(value, str) and value != value.strip(" \t"):
            # Never shown: a token's secret never starts or ends so, a pasted one often does (then every poll: 401).
            findings.append(Finding((*path, key), "starts or ends with a space or tab: is that part of it?", True))
    url = _text(source, "url")
    if source.get("type") in ("pve", "pbs") and url is not None and url.lower().startswith("http://"):
        # Their API speaks HTTPS only: plain HTTP met only "Server disconnected without sending a response".
        port = "8006" if source.get("type") == "pve" else "8007"
        findings.append(
            Finding(
                (*path, "url"),
                f"Proxmox answers HTTPS only (https://...:{port}); http:// works only through a proxy that adds TLS",
                warning=True,
            )
        )
    if source.get("type") != "restic":
        return findings
    password_file = _text(source, "password_file")
    if password_file is not None and Path(password_file).exists() and not Path(password_file).is_file():
        # restic reads it at every poll: a pipe would give it once (<(pass show ...)), and then nothing
        findings.append(
            Finding(
                (*path, "password_file"),
                f"{password_file} is not a regular file; restic reads it at every poll (for a pipe or a password "
                "manager, set password_env)",
            )
        )
    elif password_file is not None:
        try:
            password = read_secret_file(password_file)
        except SecretFileError as exc:
            findings.append(Finding((*path, "password_file"), str(exc)))
        else:
            if not password:
                findings.append(
                    Finding((*path, "password_file"), f"{password_file} is empty; it must hold the password")
                )
            findings += file_mode_findings((*path, "password_file"), Path(password_file), secrets_dir)
    password_env = _text(source, "password_env")
    if password_env is not None and password_env not in env:
        findings.append(Finding((*path, "password_env"), f"environment variable {password_env} is not set"))
    elif password_env is not None and not env[password_env]:
        findings.append(Finding((*path, "password_env"), f"environment variable {password_env} is set but empty"))
    schedule = _text(source, "schedule")
    if schedule is not None:
        dialect = source.get("dialect", "cron")
        zone = source.get("timezone", "UTC")
        if dialect in ("cron", "proxmox") and isinstance(zone, str):
            problem = schedule_problem(schedule, dialect, zone)
            if problem is not None:
                findings.append(Finding((*path, "schedule"), problem))
    binary = _text(source, "restic_binary") or "restic"
    if shutil.which(binary) is None:
        findings.append(
            Finding(
                (*path, "restic_binary"),
                f"the restic program '{binary}' is not on PATH here; install restic or set restic_binary",
                warning=True,
            )
        )
    return findings


def _ca_file(path: KeyPath, ca_file: str, *, pinned: bool) -> list[Finding]:
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except FileNotFoundError:
        return [Finding(path, f"cannot read {ca_file}: no such file")]
    except PermissionError:
        return [Finding(path, f"cannot read {ca_file}: permission denied")]
    except IsADirectoryError:
        return [Finding(path, f"{ca_file} is a folder; name the PEM file that holds the CA certificate")]
    except (ssl.SSLError, OSError, ValueError):
        return [Finding(path, f"{ca_file} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)")]
    if not context.get_ca_certs() and not _has_pem_certificate(ca_file):
        return [Finding(path, f"{ca_file} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)")]
    if pinned:
        return [Finding(path, "ca_file is not used when a fingerprint is pinned", warning=True)]
    return []


def _has_pem_certificate(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            return b"-----BEGIN CERTIFICATE-----" in handle.read(1024 * 1024)
    except OSError:
        return False


def _services(
    services: list[tuple[KeyPath, dict[str, Any]]], sources: list[tuple[KeyPath, dict[str, Any]]], kinds: _SourceKinds
) -> list[Finding]:
    findings: list[Finding] = []
    service_ids = {sid for _, s in services if (sid := _text(s, "id")) is not None}
    source_names = {name for _, s in sources if (name := _text(s, "name")) is not None}
    claimed: dict[str, KeyPath] = {}
    waits_for: dict[str, list[tuple[str, KeyPath]]] = {}  # service id -> the services its after: names, and where
    for path, service in services:
        sid = _text(service, "id") or f"#{path[-1]}"
        targets = [key for key in SERVICE_TARGET_KEYS if service.get(key) not in (None, [], "")]
        if not targets:
            findings.append(
                Finding(
                    path,
                    f"service '{sid}' names nothing to watch: add guest:, database:, plan:, restic: or targets:",
                )
            )
        for key in target_keys_of(service):
            if key in claimed:
                findings.append(
                    Finding(
                        path,
                        f"service '{sid}' watches {key}, which {dotted(claimed[key])} watches too",
                        warning=True,
                    )
                )
            else:
                claimed[key] = path
        source = _text(service, "source")
        if source is not None and source not in source_names:
            findings.append(Finding((*path, "source"), f"no source is named '{source}'" + _close(source, source_names)))
        findings += _named_targets(path, service, kinds)
        after = service.get("after")
        for index, name in enumerate(after if isinstance(after, list) else []):
            text = as_text(name)
            if text is None:
                continue
            resolved, problem = resolve_after(text, service_ids, source_names)
            if resolved == f"service:{sid}":
                problem = "a service cannot wait for itself"
            if problem:
                findings.append(Finding((*path, "after", index), problem))
            elif resolved.startswith("service:"):
                waits_for.setdefault(sid, []).append((resolved.removeprefix("service:"), (*path, "after", index)))
    return findings + _circles(waits_for)


# What each kind of target key names before its first "/": a source of this type (a guest: a PVE cluster).
_TARGET_SOURCES = {
    "pbs-host": "pbs",
    "pbs-group": "pbs",
    "databasement": "databasement",
    "backrest": "backrest",
    "restic": "restic",
}
_TARGET_FORMS = (
    "guest:VMID, guest:CLUSTER/VMID, pbs-host:SOURCE/ID, pbs-group:SOURCE/TYPE/ID, "
    "databasement:SOURCE/SERVER/DATABASE, backrest:SOURCE/PLAN, restic:SOURCE/NAME"
)
# The keys that name a target of one kind, and the source type that must exist for it to be seen.
_SHORTHANDS = {"database": "databasement", "plan": "backrest", "restic": "restic"}


@dataclass(frozen=True, slots=True)
class _SourceKinds:
    names: dict[str, set[str]]  # source type -> the names of its sources
    clusters: set[str]  # PVE sources with a pbs_namespace: the CLUSTER of guest:CLUSTER/VMID

    @classmethod
    def of(cls, sources: list[tuple[KeyPath, dict[str, Any]]]) -> _SourceKinds:
        names: dict[str, set[str]] = {}
        clusters = set()
        for _, source in sources:
            kind, name = source.get("type"), _text(source, "name")
            if isinstance(kind, str) and name is not None:
                names.setdefault(kind, set()).add(name)
                if kind == "pve" and source.get("pbs_namespace") is not None:
                    clusters.add(name)
        return cls(names, clusters)


def _named_targets(path: KeyPath, service: dict[str, Any], kinds: _SourceKinds) -> list[Finding]:
    """Warnings for targets no source could ever report: a kind of key that does not exist, or a source (or PVE
    cluster) by a name no source of that type has. Such a service would only ever say "never seen"; a warning, as
    the config may be ahead of its sources."""
    findings = []
    for key, kind in _SHORTHANDS.items():
        if as_text(service.get(key)) is not None and not kinds.names.get(kind) and _text(service, "source") is None:
            findings.append(Finding((*path, key), f"no {kind} source is configured: nothing can report it", True))
    database = as_text(service.get("database"))
    if database is not None and "/" not in database:
        findings.append(Finding((*path, "database"), "write the server and the database, e.g. mariadb/nextcloud", True))
    targets = service.get("targets")
    for index, entry in enumerate(targets if isinstance(targets, list) else []):
        text = as_text(entry)
        if text is None:
            continue
        problem = _target_problem(text, kinds)
        if problem:
            findings.append(Finding((*path, "targets", index), problem, warning=True))
    return findings


def _target_problem(key: str, kinds: _SourceKinds) -> str | None:
    kind, _, rest = key.partition(":")
    owner, sep, inner = rest.partition("/")
    if kind == "guest":
        vmid = inner if sep else owner
        if not (vmid.isdigit() and vmid.isascii()):
            return f"'{vmid}' is no VMID (a whole number)"
        if sep and owner not in kinds.clusters:
            return f"no PVE source named '{owner}' has a pbs_namespace" + _close(owner, kinds.clusters)
        return None
    if kind not in _TARGET_SOURCES:
        return f"'{kind}' is no kind of target; write one of {_TARGET_FORMS}"
    pool = kinds.names.get(_TARGET_SOURCES[kind], set())
    if owner in pool or (owner == "*" and pool):  # "*": any source of the kind, as `database:` keys are made
        return None
    return f"no {_TARGET_SOURCES[kind]} source is named '{owner}'" + _close(owner, pool)


def _circles(waits_for: dict[str, list[tuple[str, KeyPath]]]) -> list[Finding]:
    """Each `after:` that closes a circle (a waits for b, b for a): none of its services could ever go first.
    A walk with a stack of its own, not recursion: a generated config may chain thousands of services."""
    findings = []
    state: dict[str, bool] = {}  # service id -> True while on the walked trail, False once done
    for root in waits_for:
        if root in state:
            continue
        trail, steps = [root], [iter(waits_for[root])]
        state[root] = True
        while steps:
            step = next(steps[-1], None)
            if step is None:
                state[trail.pop()] = False
                steps.pop()
                continue
            ahead, where = step
            if state.get(ahead) is True:
                circle = " → ".join([*trail[trail.index(ahead) :], ahead])
                findings.append(Finding(where, f"after: goes round in a circle ({circle}): none can ever go first"))
            elif ahead not in state:
                state[ahead] = True
                trail.append(ahead)
                steps.append(iter(waits_for.get(ahead, ())))
    return findings


def target_keys_of(service: dict[str, Any]) -> list[str]:
    """The target keys a configured service names (as health matches them); shared with `service_specs`."""
    source = _text(service, "source") or "*"
    keys = [str(t) for t in service.get("targets") or [] if isinstance(t, str | int)]
    if service.get("guest") is not None:
        keys.append(f"guest:{service['guest']}")
    if _text(service, "database"):
        keys.append(f"databasement:{source}/{service['database']}")
    if _text(service, "plan"):
        keys.append(f"backrest:{source}/{service['plan']}")
    if _text(service, "restic"):
        keys.append(f"restic:{source}/{service['restic']}")
    return keys


def resolve_after(name: str, service_ids: set[str], source_names: set[str]) -> tuple[str, str | None]:
    """`after:` entry -> ("service:ID" or "source:NAME", None), or ("", what is wrong).

    >>> resolve_after("db", {"db"}, {"pbs"}), resolve_after("source:pbs", {"db"}, {"pbs"})[0]
    (('service:db', None), 'source:pbs')
    """
    kind, sep, bare = name.partition(":")
    if sep and kind in ("service", "source"):
        pool = service_ids if kind == "service" else source_names
        if bare in pool:
            return f"{kind}:{bare}", None
        return "", f"no {kind} is named '{bare}'" + _close(bare, pool)
    is_service, is_source = name in service_ids, name in source_names
    if is_service and is_source:
        return "", f"'{name}' is both a service and a source: write service:{name} or source:{name}"
    if is_service:
        return f"service:{name}", None
    if is_source:
        return f"source:{name}", None
    return "", f"'{name}' names no service id and no source" + _close(name, service_ids | source_names)


def _close(word: str, pool: set[str]) -> str:
    close = difflib.get_close_matches(word, sorted(pool), n=1, cutoff=0.6)
    return f" — did you mean '{close[0]}'?" if close else ""


def _duration(mapping: dict[str, Any], key: str) -> timedelta | None:
    if key not in mapping:
        return None
    try:
        return parse_duration(mapping[key])
    except ValueError:
        return None  # reported as a shape problem


def _durations(
    data: dict[str, Any], sources: list[tuple[KeyPath, dict[str, Any]]], services: list[tuple[KeyPath, dict[str, Any]]]
) -> list[Finding]:
    findings: list[Finding] = []
    for path, source in sources:
        interval = _duration(source, "poll_interval")
        if interval is not None and interval < MIN_POLL_INTERVAL:
            findings.append(
                Finding((*path, "poll_interval"), f"must be at least {int(MIN_POLL_INTERVAL.total_seconds())}s")
            )
        timeout = _duration(source, "timeout")
        if timeout is not None and timeout <= timedelta(0):
            findings.append(Finding((*path, "timeout"), "must be more than 0s"))
        elif timeout is not None:
            limit = interval if interval is not None else timedelta(minutes=5)
            if timeout >= limit:
                findings.append(Finding((*path, "timeout"), f"must be shorter than poll_interval ({_span(limit)})"))
        deadline = _duration(source, "poll_deadline")
        if deadline is not None and deadline <= timedelta(0):
            findings.append(Finding((*path, "poll_deadline"), "must be more than 0s"))
        elif deadline is not None and deadline <= (timeout or timedelta(seconds=10)):
            findings.append(
                Finding(
                    (*path, "poll_deadline"), f"must be longer than timeout ({_span(timeout or timedelta(seconds=10))})"
                )
            )
        elif deadline is not None and deadline > (interval or timedelta(minutes=5)):
            findings.append(Finding((*path, "poll_deadline"), "must not be longer than poll_interval"))
        max_age = _duration(source, "max_age")
        if max_age is not None and max_age <= timedelta(0):
            findings.append(Finding((*path, "max_age"), "must be more than 0s"))
    defaults = data.get("defaults") if isinstance(data.get("defaults"), dict) else {}
    assert isinstance(defaults, dict)
    lookbacks = [timedelta(days=14)]  # the default lookback
    for path, mapping in [(("defaults",), defaults), *services]:
        grace = _duration(mapping, "grace")
        if grace is not None and grace < timedelta(0):
            findings.append(Finding((*path, "grace"), "must not be negative"))
        for key in ("lookback", "max_age"):
            value = _duration(mapping, key)
            if value is not None and value <= timedelta(0):
                findings.append(Finding((*path, key), "must be more than 0s"))
            elif value is not None and key == "lookback":
                lookbacks.append(value)
    if _duration(defaults, "lookback") is not None:
        lookbacks.pop(0)  # replaced by the configured default
    history = data.get("history")
    retention = _duration(history, "retention") if isinstance(history, dict) else None
    if retention is not None:
        needed = max([*lookbacks, CALENDAR_PAST])
        if retention < needed:
            findings.append(
                Finding(
                    ("history", "retention"),
                    f"must be at least {_span(needed)}: the longest lookback and the calendar's past window "
                    "need that much history",
                )
            )
    return findings


def _protection(data: dict[str, Any], services: list[tuple[KeyPath, dict[str, Any]]]) -> list[Finding]:
    """Durations in protection policies must be more than zero (their shape is `_schema`'s job)."""
    defaults = data.get("defaults")
    places = [(("defaults",), defaults)] if isinstance(defaults, dict) else []
    findings = []
    for path, mapping in [*places, *services]:
        policy = mapping.get("protection")
        if not isinstance(policy, dict):
            continue
        for key in ("offsite_lag", "restore_test"):
            value = _duration(policy, key)
            if value is not None and value <= timedelta(0):
                findings.append(Finding((*path, "protection", key), "must be more than 0s"))
        copies, offsite = policy.get("copies"), policy.get("offsite")
        if isinstance(copies, int) and isinstance(offsite, int) and offsite > copies:
            findings.append(
                Finding((*path, "protection", "offsite"), f"asks for more offsite copies than copies ({copies})")
            )
    return findings


def _namespaces(sources: list[tuple[KeyPath, dict[str, Any]]], pbs: set[str]) -> list[Finding]:
    """`pbs_namespace` names PBS sources that exist (`pbs`: their names), and no two clusters claim one namespace
    of one PBS."""
    claimed: dict[tuple[str, str], str] = {}
    findings = []
    for path, source in sources:
        value = source.get("pbs_namespace")
        if source.get("type") != "pve" or value is None:
            continue
        where = (*path, "pbs_namespace")
        if isinstance(value, dict):
            pairs = [(str(k), v) for k, v in value.items()]
            for name, _ in pairs:
                if name not in pbs:
                    findings.append(Finding((*where, name), f"no PBS source is named '{name}'" + _close(name, pbs)))
        else:
            pairs = [(name, value) for name in sorted(pbs)]
        for name, namespace in pairs:
            if not isinstance(namespace, str):
                continue
            owner = claimed.setdefault((name, namespace), _text(source, "name") or "?")
            if owner != (_text(source, "name") or "?"):
                findings.append(
                    Finding(where, f"namespace '{namespace}' on '{name}' is already the one of PVE source '{owner}'")
                )
    return findings


def _server(data: dict[str, Any]) -> list[Finding]:
    server = data.get("server")
    if not isinstance(server, dict):
        return []
    findings = []
    for key in ("auth_token", "calendar_key"):
        value = _text(server, key)
        if value and len(value) < MIN_TOKEN_LENGTH:
            findings.append(
                Finding(
                    ("server", key),
                    f"must be at least {MIN_TOKEN_LENGTH} characters (e.g. the output of 'openssl rand -hex 24')",
                )
            )
    token, calendar_key = _text(server, "auth_token"), _text(server, "calendar_key")
    if token and token == calendar_key:
        findings.append(Finding(("server", "calendar_key"), "must differ from auth_token: it opens the calendar only"))
    if calendar_key and not token:
        findings.append(
            Finding(("server", "calendar_key"), "has no effect without auth_token (everything is open)", warning=True)
        )
    root_path = _text(server, "root_path")
    if root_path and not root_path.startswith("/"):
        findings.append(Finding(("server", "root_path"), "must start with '/', e.g. /backups"))
    elif root_path is not None and (problem := path_problem(root_path)) is not None:
        findings.append(Finding(("server", "root_path"), problem))
    findings += _exposure(server)
    return findings


def _exposure(server: dict[str, Any]) -> list[Finding]:
    findings = []
    ancestors = server.get("frame_ancestors")
    ancestors = ancestors if isinstance(ancestors, list) else []
    nones = [a for a in ancestors if isinstance(a, str) and a.strip().strip("'").lower() == "none"]
    if len(ancestors) > 1 and nones:
        findings.append(Finding(("server", "frame_ancestors"), "'none' must stand alone (it forbids every frame)"))
    hosts = server.get("allowed_hosts")
    if isinstance(hosts, list) and "*" in hosts and not server.get("auth_token"):
        findings.append(
            Finding(
                ("server", "allowed_hosts"),
                "'*' without auth_token lets any web page opened on your network read the board (DNS rebinding); "
                "set auth_token, or list the host names you use",
                warning=True,
            )
        )
    return findings


def file_mode_findings(path: KeyPath, file: Path, secrets_dir: str) -> list[Finding]:
    """A warning when a file holding secrets can be read by group or others. A file is left alone where nobody
    else reaches it: in a container's /run/secrets (only that container sees it, and its user must be able to read
    them), or below a folder that group and others cannot enter (a 0700 secrets folder, a 0750 folder for group
    members: whoever cannot pass a folder cannot read what is in it)."""
    try:
        resolved = file.resolve()
        if Path(secrets_dir) in resolved.parents and secrets_dir == DEFAULT_SECRETS_DIR:
            return []
        mode = resolved.stat().st_mode
        readable = mode & (stat.S_IRGRP | stat.S_IROTH)
        for folder in resolved.parents:
            if not readable:
                break
            search = folder.stat().st_mode
            if not search & stat.S_IXGRP:
                readable &= ~stat.S_IRGRP
            if not search & stat.S_IXOTH:
                readable &= ~stat.S_IROTH
    except OSError:
        return []
    if readable:
        octal = oct(stat.S_IMODE(mode))[2:]
        return [Finding(path, f"{file} can be read by other users (mode {octal}); chmod 600 it", warning=True)]
    return []


def _span(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


__all__ = ["Finding", "check", "file_mode_findings", "resolve_after", "target_keys_of"]
