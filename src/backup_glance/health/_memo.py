"""What one evaluation keeps for the next, so that a quiet poll re-judges only what changed. Pure: no clock, no I/O.

`evaluate(..., memo=Memo())` judges exactly as without a memo; the memo only lets it skip work whose inputs are
the same as last time:

- the evidence is made from the last one and what changed in the lists it merges (`_gathering`);
- discovered services are the very same specs while the same keys have the same names (`discovered`);
- per target key, everything the evidence holds about it (targets, snapshots and which of them are live, runs,
  copies) is compared with what the last evaluation saw: the keys that differ are *changed*;
- everything else a verdict reads (source states, the job list and with it the jobs and restore tests covering
  each target, per-job runs, typical durations, the zone and the year there, the anomaly policy, since when
  history watches) is the *context*: when it differs, nothing is reused;
- a service's facts are reused when its spec and keys are the same and none of its keys changed;
- its verdict is reused when, in addition, its ordering reasons are the same and the clock
  has not reached the moment `_expiry` gave for it;
- a calendar slot's results by target are reused for the targets that did not change: a result depends only on
  its target's evidence and the slot's window, which is part of the cache key. When none changed, the very same
  results are handed back, and what they add up to (the job's outcome, each service's) is reused as long as the
  services, their targets and their grace are the same.

A wrong reuse would show a stale verdict, so `tests/integration/test_incremental.py` compares the incremental board with
a from-scratch one over a long randomized run of polls, clock steps and config changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..model import ServiceSpec, Verdict
from ._evidence import Evidence
from ._expiry import verdict_expires
from ._facts import Facts, gather_facts, matching_keys
from ._gathering import Gathering
from .calendar import SlotKey, _SlotSummary, _TargetResult


@dataclass(frozen=True, slots=True)
class _Judged:
    spec: ServiceSpec
    facts: Facts
    ordering: tuple[str, ...]
    verdict: Verdict
    judged_at: datetime
    expires_at: datetime  # judging again from this moment on could give another verdict


class Memo:
    """Pass the same memo to every `evaluate` of one board (one evaluation at a time); a new one starts afresh."""

    def __init__(self) -> None:
        self._context: tuple[object, ...] | None = None
        self._by_key: dict[str, tuple[object, ...]] = {}
        self._changed: set[str] = set()
        self._facts: dict[str, tuple[ServiceSpec, Facts]] = {}
        self._judged: dict[str, _Judged] = {}
        # Calendar: (job key, slot, window start, window end) -> the job's targets' results in that slot, from the
        # last evaluation and from this one (only what this one used is kept for the next: windows move on).
        self._last_slots: dict[SlotKey, dict[str, _TargetResult]] = {}
        self._slots: dict[SlotKey, dict[str, _TargetResult]] = {}
        # ... and what those results added up to, for the results dict they were made from.
        self._services: tuple[object, ...] | None = None
        self._last_summaries: dict[SlotKey, tuple[dict[str, _TargetResult], _SlotSummary]] = {}
        self._summaries: dict[SlotKey, tuple[dict[str, _TargetResult], _SlotSummary]] = {}
        self.gathering = Gathering()  # the evidence, made from the last one and what changed
        self._discovery: tuple[tuple[object, ...], list[ServiceSpec]] | None = None  # see `discovered`
        self.reused = 0  # verdicts reused by the last evaluation (for tests and benches)
        self.sums_reused = 0  # slot summaries reused by the last evaluation (likewise)

    def start(
        self, evidence: Evidence, *, durations: dict[str, timedelta], display_tz: str, year: int, anomalies: object
    ) -> None:
        """Compare this evaluation's evidence with the last one's: which keys changed, or the whole context.
        `year` is now's in the display zone: reasons name a moment's year when it is another one."""
        context = (
            display_tz,
            year,
            anomalies,
            durations,
            evidence.recorded_since,
            tuple(_state_facts(evidence)),
            evidence.jobs,
            dict(evidence.runs_by_job),
            evidence.coverage_sources,
        )
        by_key = {key: _key_evidence(key, evidence) for key in evidence.known_keys}
        if context != self._context:
            self._facts.clear()
            self._judged.clear()
            self._slots.clear()
            self._changed = set(by_key)
        else:
            old = self._by_key
            self._changed = {key for key, seen in by_key.items() if old.get(key) != seen}
            self._changed |= old.keys() - by_key.keys()
        self._context, self._by_key = context, by_key
        self._last_slots, self._slots = self._slots, {}
        self.reused = self.sums_reused = 0

    def discovered(self, inputs: tuple[object, ...], discover: Callable[[], list[ServiceSpec]]) -> list[ServiceSpec]:
        """The services discovery makes of `inputs` (the keys, their names, what is claimed, the defaults): the
        very same specs as last time while those are the same, so that comparing a spec is one identity check."""
        if self._discovery is None or self._discovery[0] != inputs:
            self._discovery = (inputs, discover())
        return list(self._discovery[1])

    def facts(self, spec: ServiceSpec, evidence: Evidence) -> Facts:
        known = self._facts.get(spec.id)
        if known is not None and (known[0] is spec or known[0] == spec):
            keys = matching_keys(spec, evidence)
            if keys == known[1].keys and self._changed.isdisjoint(keys):
                return known[1]
        facts = gather_facts(spec, evidence)
        self._facts[spec.id] = (spec, facts)
        return facts

    def verdict(
        self,
        spec: ServiceSpec,
        facts: Facts,
        ordering: list[str],
        evidence: Evidence,
        *,
        now: datetime,
        durations: dict[str, timedelta],
        judge: Callable[[], Verdict],
    ) -> Verdict:
        known = self._judged.get(spec.id)
        if (
            known is not None
            and known.facts is facts  # reused facts: same spec, same keys, none of them changed
            and (known.spec is spec or known.spec == spec)
            and known.ordering == tuple(ordering)
            and known.judged_at <= now < known.expires_at
        ):
            self.reused += 1
            return known.verdict  # the very object: what renders a verdict may remember its output by it
        verdict = judge()
        expires = verdict_expires(spec, facts, verdict, evidence, now=now, durations=durations)
        self._judged[spec.id] = _Judged(spec, facts, tuple(ordering), verdict, now, expires)
        return verdict

    def calendar(
        self, services_by_target: dict[str, list[str]], grace_by_service: dict[str, timedelta], default_grace: timedelta
    ) -> None:
        """What slot summaries read of the services besides the results: reused only while it is the same."""
        services = (services_by_target, grace_by_service, default_grace)
        if services != self._services:
            self._summaries.clear()
        self._services = services
        self._last_summaries, self._summaries = self._summaries, {}

    def slot_results(
        self, slot_key: SlotKey, keys: tuple[str, ...], result: Callable[[str], _TargetResult]
    ) -> dict[str, _TargetResult]:
        """A job's results by target in one slot: last evaluation's, with only the changed targets found again
        (the very same dict when no result differs: a new backup changes its target's newest slot, not the older
        ones). A result depends only on its target's evidence and the slot's window (part of the key); the job's
        targets are part of the context, so the same key means the same targets in the same order."""
        last = self._last_slots.get(slot_key)
        if last is None:
            results = {key: result(key) for key in keys}
        else:
            found = {key: result(key) for key in self._changed if key in last}
            results = last
            if any(last[key] != value for key, value in found.items()):
                results = {**last, **found}
        self._slots[slot_key] = results
        return results

    def slot_summary(
        self, slot_key: SlotKey, results: dict[str, _TargetResult], add_up: Callable[[], _SlotSummary]
    ) -> _SlotSummary:
        """What a slot's results add up to: last evaluation's when these are the very results it added up.
        The calendar asks only once the slot's grace is over, when the clock no longer changes the sum."""
        known = self._last_summaries.get(slot_key)
        if known is not None and known[0] is results:
            self.sums_reused += 1
            summary = known[1]
        else:
            summary = add_up()
        self._summaries[slot_key] = (results, summary)
        return summary

    def forget_except(self, service_ids: set[str]) -> None:
        """Drop what belongs to services no longer on the board (a config change, a target gone)."""
        for memo in (self._facts, self._judged):
            for gone in memo.keys() - service_ids:
                del memo[gone]


def _state_facts(evidence: Evidence) -> list[tuple[object, ...]]:
    """What a verdict reads of each source's state: not `last_success_at` while it answers (that moves with every
    poll and is read only once the source fails), and of its observation only what protection reads."""
    found: list[tuple[object, ...]] = []
    for state in evidence.states.values():
        observation = state.observation
        seen = (
            None
            if observation is None
            else (
                observation.kind,
                observation.timezone,
                observation.offsite_locations,
                observation.endpoint,
                observation.remotes_visible,
            )
        )
        failing = (state.error, state.last_success_at) if state.error is not None else None
        found.append((state.name, state.kind, state.poll_interval, failing, seen))
    return found


def _key_evidence(key: str, evidence: Evidence) -> tuple[object, ...]:
    """Everything the evidence holds about one target key (lists compare element by element, identity first).
    Not the jobs that cover it: they follow from `evidence.jobs`, which is part of the context (compared once,
    not once per target: a job covering 2,000 guests would otherwise be compared 2,000 times)."""
    return (
        evidence.targets.get(key),
        evidence.snapshots.get(key),
        evidence.live_by_key.get(key),
        evidence.runs_by_target.get(key),
        evidence.remote_copies.get(key),
        key in evidence.uncovered,
        evidence.unread.get(key),
    )
