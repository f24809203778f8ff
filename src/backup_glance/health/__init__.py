"""Health: observations + schedules + history + now -> one `Board` of verdicts, jobs and calendar slots.

This package is the only place backup-glance decides anything (ok, late, failed, missed, ...). It is pure:
no clock (`now` is passed in), no I/O, no logging; its results carry their reasons as text.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from zoneinfo import ZoneInfo

from ..model import (
    SEVERITY_RANK,
    AnomalyPolicy,
    Board,
    DatastoreView,
    HistoryView,
    ProtectionPolicy,
    ServiceSpec,
    Severity,
    SourceState,
    Target,
    Verdict,
)
from ._evidence import Evidence, gather
from ._facts import Facts, gather_facts, matching_keys
from ._memo import Memo
from ._text import when
from .calendar import CalendarContext, calendar_slots, job_views
from .datastores import judge_datastore
from .deadlines import next_change
from .ordering import ordering_reasons
from .services import judge, slug


@dataclass(frozen=True, slots=True)
class Defaults:
    grace: timedelta = timedelta(hours=1)
    max_age: timedelta = timedelta(hours=26)
    lookback: timedelta = timedelta(days=14)
    protection: ProtectionPolicy | None = None  # `defaults.protection`, for discovered services
    anomalies: AnomalyPolicy = field(default_factory=AnomalyPolicy)  # `anomalies:`, for every service


def evaluate(
    *,
    services: Sequence[ServiceSpec],
    sources: Sequence[SourceState],
    history: HistoryView,
    now: datetime,
    display_tz: str,
    defaults: Defaults = Defaults(),
    discover_rest: bool = False,
    notices: Sequence[str] = (),
    memo: Memo | None = None,
) -> Board:
    """Judge every service. With no services configured (or `discover_rest`), every target a source reports and
    no configured service claims becomes a service of its own. `notices` are problems of backup-glance itself
    (its history cannot be written): the board carries them and is at least a warning while they last.

    With a `memo` (the same one every time), only what changed since the last evaluation is judged again; the
    board is the same as without it (see `_memo`)."""
    evidence = memo.gathering.gather(tuple(sources), history) if memo is not None else gather(tuple(sources), history)
    specs = list(services)
    configured = {spec.id for spec in specs}
    if discover_rest or not specs:
        claimed_keys = {key for spec in specs for key in matching_keys(spec, evidence)}
        specs += discover(
            evidence,
            defaults,
            claimed={spec.id for spec in specs},
            claimed_keys=claimed_keys,
            memo=memo,
            known_names=history.target_names,
        )
    if memo is not None:
        memo.start(
            evidence,
            durations=history.typical_durations,
            display_tz=display_tz,
            year=now.astimezone(ZoneInfo(display_tz)).year,
            anomalies=defaults.anomalies,
        )
        memo.forget_except({spec.id for spec in specs})
        facts = {spec.id: memo.facts(spec, evidence) for spec in specs}
    else:
        facts = {spec.id: gather_facts(spec, evidence) for spec in specs}
    by_id = {spec.id: spec for spec in specs}
    verdicts: list[Verdict] = []
    out_of_order: dict[str, tuple[datetime, str]] = {}  # the run each ordering verdict is about, for the calendar
    for spec in specs:
        predecessors = [_predecessor(other, configured, by_id, facts, evidence) for other in spec.after]
        ordering = ordering_reasons(spec, facts[spec.id], predecessors, display_tz, now)
        if ordering:
            out_of_order[spec.id] = (facts[spec.id].runs[-1].started_at, ordering[0])
        judged = partial(
            judge,
            spec,
            evidence,
            now=now,
            display_tz=display_tz,
            durations=history.typical_durations,
            facts=facts[spec.id],
            ordering=ordering,
            anomalies=defaults.anomalies,
        )
        if memo is None:
            verdicts.append(judged())
        else:
            verdicts.append(
                memo.verdict(
                    spec, facts[spec.id], ordering, evidence, now=now, durations=history.typical_durations, judge=judged
                )
            )
    verdicts.sort(key=lambda v: (SEVERITY_RANK[v.severity], v.name.lower(), v.service_id))
    services_by_target: dict[str, list[str]] = defaultdict(list)
    for spec in specs:
        for key in facts[spec.id].keys:
            services_by_target[key].append(spec.id)
    grace_by_service = {spec.id: spec.grace for spec in specs}
    if memo is not None:
        memo.calendar(services_by_target, grace_by_service, defaults.grace)
    ctx = CalendarContext(
        now=now,
        durations=history.typical_durations,
        services_by_target=services_by_target,
        grace_by_service=grace_by_service,
        default_grace=defaults.grace,
        after_by_service={spec.id: tuple(_after_label(a, by_id) for a in spec.after) for spec in specs if spec.after},
        out_of_order=out_of_order,
        slot_results=memo.slot_results if memo is not None else None,
        slot_summaries=memo.slot_summary if memo is not None else None,
    )
    datastores = tuple(judge_datastore(d, now) for d in sorted(evidence.datastores, key=lambda d: (d.source, d.name)))
    return Board(
        generated_at=now,
        timezone=display_tz,
        verdicts=tuple(verdicts),
        jobs=tuple(job_views(evidence, ctx)),
        datastores=datastores,
        sources=tuple(sources),
        slots=tuple(calendar_slots(evidence, ctx)),
        overall=overall(verdicts, sources, datastores, notices),
        notices=tuple(notices),
        next_change_at=next_change(specs, verdicts, evidence, sources, now, defaults.grace),
    )


def overall(
    verdicts: Sequence[Verdict],
    sources: Sequence[SourceState],
    datastores: Sequence[DatastoreView] = (),
    notices: Sequence[str] = (),
    *,
    judging_failed: bool = False,
) -> Severity:
    """The worst verdict or datastore; a source that has never answered makes it at least unknown, since
    whatever it holds has no verdict yet, and with nothing judged at all there is nothing to call ok. A notice
    about backup-glance itself makes it at least a warning: the board may be missing evidence. A board that could
    not be judged again is at least unknown: what it shows may no longer be so."""
    severities = [v.severity for v in verdicts] + [d.severity for d in datastores]
    if notices:
        severities.append(Severity.WARNING)
    if judging_failed:
        severities.append(Severity.UNKNOWN)
    if any(state.error is not None and state.observation is None for state in sources):
        severities.append(Severity.UNKNOWN)
    if not severities:
        return Severity.OK if sources else Severity.UNKNOWN
    return min(severities, key=SEVERITY_RANK.__getitem__)


def discover(
    evidence: Evidence,
    defaults: Defaults,
    *,
    claimed: AbstractSet[str] = frozenset(),
    claimed_keys: AbstractSet[str] = frozenset(),
    memo: Memo | None = None,
    known_names: Mapping[str, str] | None = None,
) -> list[ServiceSpec]:
    """One service per backed-up thing any source knows of and no configured service claims, named after it
    (after the name history last saw, while no source that answers names it: its id stays what it was while its
    source is down). With a `memo`, the very same specs as last time when the same keys have the same names."""
    keys = sorted(
        set(evidence.targets) | set(evidence.snapshots) | set(evidence.backup_jobs_by_target) | evidence.uncovered
    )
    # Guests first, so that they keep the plain name when a plan or a database is called the same.
    keys.sort(key=lambda key: (not key.startswith("guest:"), key))
    wanted = [key for key in keys if key not in claimed_keys and not _template(evidence.targets.get(key, []))]
    known = known_names or {}
    names = [_display_name(key, evidence.targets.get(key, []), known) for key in wanted]
    if memo is None:
        return _discovered(wanted, names, claimed, defaults)
    return memo.discovered((wanted, names, claimed, defaults), lambda: _discovered(wanted, names, claimed, defaults))


def _template(targets: list[Target]) -> bool:
    """A VM template is a blueprint, not a guest to back up (list it under services: to watch it)."""
    return bool(targets) and all(t.template for t in targets)


def _discovered(keys: list[str], names: list[str], claimed: AbstractSet[str], defaults: Defaults) -> list[ServiceSpec]:
    taken: set[str] = set(claimed)
    specs = []
    for key, name in zip(keys, names, strict=True):
        service_id = slug(name)
        if service_id in taken:
            service_id = slug(f"{name}-{key.split(':', 1)[0]}")
        while service_id in taken:
            service_id = slug(f"{service_id}-{key.rsplit('/', 1)[-1]}-{len(taken)}")
        taken.add(service_id)
        specs.append(
            ServiceSpec(
                id=service_id,
                name=name,
                target_keys=(key,),
                grace=defaults.grace,
                max_age=defaults.max_age,
                lookback=defaults.lookback,
                protection=defaults.protection,
            )
        )
    return specs


def _predecessor(
    name: str, configured: set[str], by_id: dict[str, ServiceSpec], facts: dict[str, Facts], evidence: Evidence
) -> tuple[ServiceSpec, Facts]:
    """`after:` names "service:ID" or "source:NAME" (config resolves bare names to these). A bare name is a
    configured service, else a whole source ("every Databasement dump"), else a discovered service — in that
    order, because discovered ids come from names a source may change."""
    kind, sep, bare = name.partition(":")
    if sep and kind == "service" and bare in by_id:
        return by_id[bare], facts[bare]
    if sep and kind in ("service", "source"):
        name = bare
    elif name in configured or (name in by_id and name not in evidence.states):
        return by_id[name], facts[name]
    keys = sorted({t.key for t in evidence.observation_targets(name)})
    spec = ServiceSpec(
        id=name,
        name=name,
        target_keys=tuple(keys),
        grace=timedelta(0),
        max_age=timedelta(0),
        lookback=timedelta(0),
        source=name,
    )
    return spec, gather_facts(spec, evidence)


def _after_label(name: str, by_id: dict[str, ServiceSpec]) -> str:
    """How an `after:` reference reads on the calendar: a service's display name, or the source's name."""
    kind, sep, bare = name.partition(":")
    if sep and kind == "service" and bare in by_id:
        return by_id[bare].name
    return bare if sep and kind in ("service", "source") else name


def _display_name(key: str, targets: list[Target], known: Mapping[str, str]) -> str:
    named = [t.name for t in targets if t.name]
    if named:
        return named[0]
    return known.get(key) or key.split(":", 1)[-1].replace("/", " ")


__all__ = ["Defaults", "Memo", "discover", "evaluate", "matching_keys", "overall", "when"]
