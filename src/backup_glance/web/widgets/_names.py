"""Names a person cannot confuse: a system tag where two services would read alike, jobs labelled with their system.

    names = names_for(board)
    names.service("vault-backrest")   -> "vault · Backrest"    (next to "Vault · PBS" and "vault on postgres · ...")
    names.job("databasement/backup/01k...")  -> "Databasement · Daily dumps"

Presentation only: nothing here changes what a service or job is. `apply_job_config` applies the `jobs:` section
of the configuration (rename, hide from the calendar) to a board before any view is built from it.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import replace
from typing import Protocol

from ...model import Board, JobKind, Verdict

SYSTEM: dict[str, str] = {
    "pbs": "PBS",
    "pve": "PVE",
    "databasement": "Databasement",
    "backrest": "Backrest",
    "restic": "restic",
}
# Which system a service's backups are in, when several sources see it (PVE knows the guest, PBS holds the backup).
HOLDS_BACKUPS = ("pbs", "databasement", "backrest", "restic", "pve")
# The word a job's label ends with when its name does not already say what it does.
KIND_WORD: dict[JobKind, str] = {
    JobKind.BACKUP: "backup",
    JobKind.PRUNE: "prune",
    JobKind.GC: "GC",
    JobKind.VERIFY: "verify",
    JobKind.SYNC: "sync",
    JobKind.CHECK: "check",
    JobKind.RESTORE_TEST: "restore test",
}
# Other ways a name can already say it (a Databasement backup makes dumps; "garbage collection main" is GC).
KIND_ALIASES: dict[JobKind, tuple[str, ...]] = {
    JobKind.BACKUP: ("backup", "dump", "snapshot"),
    JobKind.GC: ("gc", "garbage"),
    JobKind.VERIFY: ("verif",),
    JobKind.RESTORE_TEST: ("restore",),
}
_WORD = re.compile(r"[^\W_]+(?:[-.][^\W_]+)*")
# Letters of the scripts written right to left (Hebrew, Arabic, Syriac, Thaana, N'Ko, ... and their presentation
# forms): a name holding them is set apart from the text around it.
_RIGHT_TO_LEFT = re.compile("[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefe]")


class JobPresentation(Protocol):
    """The `jobs:` entry of the configuration (config.JobConfig), as this module reads it."""

    @property
    def name(self) -> str | None: ...

    @property
    def hide(self) -> bool: ...


def apply_job_config(board: Board, jobs: Mapping[str, JobPresentation]) -> Board:
    """The board with configured job names, and without the slots of hidden jobs. Unknown keys change nothing."""
    if not jobs:
        return board
    names = {key: entry.name for key, entry in jobs.items() if entry.name}
    hidden = {key for key, entry in jobs.items() if entry.hide}
    if not (names.keys() | hidden) & ({j.job.key for j in board.jobs} | {s.job_key for s in board.slots}):
        return board
    views = tuple(
        replace(view, job=replace(view.job, name=names[view.job.key])) if view.job.key in names else view
        for view in board.jobs
    )
    slots = tuple(
        replace(slot, job_name=names[slot.job_key]) if slot.job_key in names else slot
        for slot in board.slots
        if slot.job_key not in hidden
    )
    return replace(board, jobs=views, slots=slots)


def _kind_word(kind: JobKind, source_kind: str) -> str:
    if kind is JobKind.BACKUP and source_kind == "databasement":
        return "dumps"
    return KIND_WORD[kind]


def isolated(name: str) -> str:
    """A name written right to left, between U+2068 and U+2069: what follows it in a line ("+2", ", nightly")
    keeps its place instead of joining the name's direction. Any other name as it is.

    >>> isolated("vault"), isolated("خادم النسخ") == "\\u2068خادم النسخ\\u2069"
    ('vault', True)
    """
    return f"\u2068{name}\u2069" if _RIGHT_TO_LEFT.search(name) else name


def job_label(system: str, name: str, kind: JobKind, source_kind: str = "") -> str:
    """
    >>> job_label("Databasement", "Daily", JobKind.BACKUP, "databasement")
    'Databasement · Daily dumps'
    >>> job_label("PBS", "garbage collection main", JobKind.GC)
    'PBS · garbage collection main'
    >>> job_label("PBS", "v-main-daily", JobKind.VERIFY)
    'PBS · v-main-daily verify'
    >>> job_label("PBS", "PBS verify of main", JobKind.VERIFY)
    'PBS verify of main'
    """
    folded = name.casefold()
    aliases = (*KIND_ALIASES.get(kind, ()), KIND_WORD[kind].casefold())
    shown = isolated(name)
    text = shown if any(a in folded for a in aliases) else f"{shown} {_kind_word(kind, source_kind)}".strip()
    if system and not folded.startswith(system.casefold()):
        text = f"{system} · {text}"
    return text


def _stem(name: str) -> str:
    """What a name reads as at first sight: its first word, without a trailing "(System)".

    >>> _stem("vault (Backrest)"), _stem("Vault"), _stem("vault on postgres"), _stem("Database dump folder")
    ('vault', 'vault', 'vault', 'database')
    """
    found = _WORD.search(name)
    return found.group(0).casefold() if found else name.casefold()


class Names:
    """Labels for one board: built once per board version, looked up per row."""

    def __init__(self, board: Board) -> None:
        kinds = {s.name: s.kind for s in board.sources}
        per_kind = Counter(kinds.values())
        self._systems = {
            name: (SYSTEM.get(kind, kind) if per_kind[kind] == 1 else f"{SYSTEM.get(kind, kind)} {name}")
            for name, kind in kinds.items()
        }
        self._kinds = kinds
        self._jobs: dict[str, str] = {}
        for view in board.jobs:
            job = view.job
            self._jobs[job.key] = job_label(self.system(job.source), job.name, job.kind, kinds.get(job.source, ""))
        for slot in board.slots:
            if slot.job_key not in self._jobs:
                label = job_label(self.system(slot.source), slot.job_name, slot.kind, kinds.get(slot.source, ""))
                self._jobs[slot.job_key] = label
        self._services = self._service_names(board.verdicts)

    def system(self, source: str) -> str:
        """ "PBS", or "PBS pbs-main" when there are two PBS; a source the board does not list: its name."""
        return self._systems.get(source, source)

    def job(self, key: str, fallback: str = "") -> str:
        return self._jobs.get(key) or isolated(fallback or key)

    def service(self, service_id: str, fallback: str = "") -> str:
        return self._services.get(service_id) or isolated(fallback or service_id)

    def service_system(self, verdict: Verdict) -> str:
        """The system that holds a service's backups: PBS for a guest PBS backs up, Backrest for a plan, ..."""
        sources = sorted(
            verdict.sources,
            key=lambda s: HOLDS_BACKUPS.index(self._kinds[s]) if self._kinds.get(s) in HOLDS_BACKUPS else 99,
        )
        return self.system(sources[0]) if sources else ""

    def _service_names(self, verdicts: tuple[Verdict, ...]) -> dict[str, str]:
        """Each service's label. A name depends on every service's name and sources: the last board's labels
        are reused while those (and the sources' kinds) are the same, as they are from one poll to the next."""
        global _last_services
        key = (sorted(self._kinds.items()), [(v.service_id, v.name, v.sources) for v in verdicts])
        known = _last_services
        if known is not None and known[0] == key:
            return known[1]
        names = self._names_of(verdicts)
        _last_services = (key, names)
        return names

    def _names_of(self, verdicts: tuple[Verdict, ...]) -> dict[str, str]:
        systems = {v.service_id: self.service_system(v) for v in verdicts}
        systems_by_stem: dict[str, set[str]] = defaultdict(set)
        for verdict in verdicts:
            systems_by_stem[_stem(verdict.name)].add(systems[verdict.service_id])
        names: dict[str, str] = {}
        for verdict in verdicts:
            system = systems[verdict.service_id]
            bare = _without_tag(verdict.name, system)
            alike = len(systems_by_stem[_stem(verdict.name)]) > 1  # a tag only helps across systems
            label = isolated(bare)
            names[verdict.service_id] = f"{label} · {system}" if system and (alike or bare != verdict.name) else label
        return names


def _without_tag(name: str, system: str) -> str:
    """ "vault (Backrest)" -> "vault" when the service is in Backrest; any other name stays as it is."""
    suffix = f"({system})"
    if system and name.endswith(suffix):
        return name[: -len(suffix)].rstrip() or name
    return name


_last: tuple[Board, Names] | None = None
_last_services: tuple[object, dict[str, str]] | None = None  # what `Names._service_names` worked out last


def names_for(board: Board) -> Names:
    """The labels of a board, worked out once per board (every widget of one board version shares them)."""
    global _last
    cached = _last
    if cached is not None and cached[0] is board:
        return cached[1]
    names = Names(board)
    _last = (board, names)
    return names


__all__ = ["SYSTEM", "JobPresentation", "Names", "apply_job_config", "job_label", "names_for"]
