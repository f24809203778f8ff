"""Health: observations + schedules + history + now -> one `Board` of verdicts, jobs and calendar slots.

This package is the only place backup-glance decides anything (ok, late, failed, missed, ...). It is pure:
no clock (`now` is passed in), no I/O, no logging; its results carry their reasons as text.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..model import SEVERITY_RANK, Board, HistoryView, ServiceSpec, SourceState, Target, Verdict
from ._evidence import Evidence, gather
from .calendar import calendar_slots, job_views
from .services import gather_facts, judge, matching_keys, ordering_reasons, slug


@dataclass(frozen=True, slots=True)
class Defaults:
    grace: timedelta = timedelta(hours=1)
    max_age: timedelta = timedelta(hours=26)
    lookback: timedelta = timedelta(days=14)


def evaluate(
    *,
    services: Sequence[ServiceSpec],
    sources: Sequence[SourceState],
    history: HistoryView,
    now: datetime,
    display_tz: str,
    defaults: Defaults = Defaults(),
) -> Board:
    """Judge every service. With no services configured, every target any source reports is one."""
    evidence = gather(tuple(sources), history)
    specs = list(services) or discover(evidence, defaults)
    facts = {spec.id: gather_facts(spec, evidence) for spec in specs}
    by_id = {spec.id: spec for spec in specs}
    verdicts: list[Verdict] = []
    for spec in specs:
        predecessors = [(by_id[other], facts[other]) for other in spec.after if other in by_id]
        verdicts.append(
            judge(
                spec,
                evidence,
                now=now,
                display_tz=display_tz,
                durations=history.typical_durations,
                facts=facts[spec.id],
                ordering=ordering_reasons(spec, facts[spec.id], predecessors, display_tz),
            )
        )
    verdicts.sort(key=lambda v: (SEVERITY_RANK[v.severity], v.name.lower(), v.service_id))
    services_by_target: dict[str, list[str]] = defaultdict(list)
    for spec in specs:
        for key in facts[spec.id].keys:
            services_by_target[key].append(spec.id)
    grace = min((spec.grace for spec in specs), default=defaults.grace)
    return Board(
        generated_at=now,
        timezone=display_tz,
        verdicts=tuple(verdicts),
        jobs=tuple(
            job_views(evidence, now=now, durations=history.typical_durations, services_by_target=services_by_target)
        ),
        datastores=tuple(sorted(evidence.datastores, key=lambda d: (d.source, d.name))),
        sources=tuple(sources),
        slots=tuple(
            calendar_slots(
                evidence,
                now=now,
                grace=grace,
                durations=history.typical_durations,
                services_by_target=services_by_target,
            )
        ),
    )


def discover(evidence: Evidence, defaults: Defaults) -> list[ServiceSpec]:
    """One service per backed-up thing any source knows of, named after it."""
    keys = sorted(
        set(evidence.targets) | set(evidence.snapshots) | set(evidence.backup_jobs_by_target) | evidence.uncovered
    )
    names = {key: _display_name(key, evidence.targets.get(key, [])) for key in keys}
    counts: dict[str, int] = defaultdict(int)
    for key in keys:
        counts[slug(names[key])] += 1
    specs = []
    for key in keys:
        service_id = slug(names[key])
        if counts[service_id] > 1:
            service_id = slug(f"{names[key]}-{key.rsplit(':', 1)[-1]}")
        specs.append(
            ServiceSpec(
                id=service_id,
                name=names[key],
                target_keys=(key,),
                grace=defaults.grace,
                max_age=defaults.max_age,
                lookback=defaults.lookback,
            )
        )
    return specs


def _display_name(key: str, targets: list[Target]) -> str:
    named = [t.name for t in targets if t.name]
    if named:
        return named[0]
    return key.split(":", 1)[-1].replace("/", " ")


__all__ = ["Defaults", "discover", "evaluate", "matching_keys"]
