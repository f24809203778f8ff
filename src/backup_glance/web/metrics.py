"""`GET /metrics`: the board in Prometheus' text format, for Grafana and for Prometheus' own alerting.

    render_metrics(board) -> bytes             # the exposition
    render_later(board) -> Future[Payload]     # in a thread of its own: the app caches one per board version

A prometheus_client custom collector over the Board in a private CollectorRegistry: nothing global, nothing
counted per request, every value read from the board as health decided it. Label values are escaped by
prometheus_client per the exposition format (quotes, backslashes, newlines), so a hostile name stays inside its
label. `status` uses the words of `/api/v1/status`; a missing fact (no successful backup yet, no estimate from
PBS) is an absent series, never a made-up 0. 500 services take about 60 ms to render, so the app renders once
per board version and poll in a worker thread (`render_later`) and never on the event loop; every scrape of that
version shares the result.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import CollectorRegistry

from ..model import Board, RunOutcome, Severity, Status
from .render import Payload

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # the classic text format every Prometheus version scrapes
SEVERITY_VALUE = {Severity.OK: 0, Severity.WARNING: 1, Severity.CRITICAL: 2, Severity.UNKNOWN: 3}
STATUSES = tuple(s.value for s in Status)
SUCCESS = {RunOutcome.OK: 1.0, RunOutcome.WARNING: 1.0, RunOutcome.FAILED: 0.0}


def _label(text: str) -> str:
    """Label values must be valid UTF-8 on the wire: a lone surrogate from a source becomes "?"."""
    if text.isascii():
        return text
    return text.encode("utf-8", "replace").decode("utf-8")


def _gauge(name: str, documentation: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"backup_glance_{name}", documentation, labels=labels)


class BoardCollector:
    """Yields the metric families of one board (prometheus_client's custom-collector protocol)."""

    def __init__(self, board: Board) -> None:
        self.board = board

    def collect(self) -> Iterator[Metric]:
        yield from self._services()
        yield from self._jobs()
        yield from self._datastores()
        yield from self._sources()
        overall = _gauge(
            "overall_severity", "The board's overall severity: 0 ok, 1 warning, 2 critical, 3 unknown.", []
        )
        overall.add_metric([], SEVERITY_VALUE[self.board.overall])
        yield overall
        notices = _gauge(
            "board_notices",
            "Problems of backup-glance itself on the board (history file, judging, a refusing notification target).",
            [],
        )
        notices.add_metric([], len(self.board.notices))
        yield notices
        generated = _gauge("board_generated_timestamp_seconds", "When the board these values come from was built.", [])
        generated.add_metric([], self.board.generated_at.timestamp())
        yield generated

    def _services(self) -> Iterator[Metric]:
        status = _gauge(
            "service_status",
            "1 for the service's current status, 0 for every other (one series per status, as /api/v1/status).",
            ["service", "name", "status"],
        )
        severity = _gauge("service_severity", "0 ok, 1 warning, 2 critical, 3 unknown.", ["service"])
        success = _gauge(
            "service_last_success_timestamp_seconds", "When the newest good backup was taken.", ["service"]
        )
        next_run = _gauge("service_next_run_timestamp_seconds", "When the next scheduled backup is due.", ["service"])
        snapshots = _gauge("service_snapshots", "Backups (snapshots) that exist for the service.", ["service"])
        size = _gauge("service_newest_size_bytes", "Size of the newest backup.", ["service"])
        copies = _gauge(
            "service_copies", "Locations holding a backup of the service from inside its lookback.", ["service"]
        )
        lag = _gauge(
            "service_offsite_lag_seconds",
            "How far the newest offsite copy is behind the newest copy (absent without an offsite copy).",
            ["service"],
        )
        restored = _gauge(
            "service_last_restore_test_timestamp_seconds", "When the last successful restore test ended.", ["service"]
        )
        at_risk = _gauge(
            "service_at_risk",
            "1 when the service's protection falls short (its risks in /api/v1/status), whatever its status.",
            ["service"],
        )
        for verdict in self.board.verdicts:
            service = _label(verdict.service_id)
            name = _label(verdict.name)
            current = verdict.status.value
            for word in STATUSES:
                status.add_metric([service, name, word], 1.0 if word == current else 0.0)
            severity.add_metric([service], SEVERITY_VALUE[verdict.severity])
            if verdict.last_success_at is not None:
                success.add_metric([service], verdict.last_success_at.timestamp())
            if verdict.next_run_at is not None:
                next_run.add_metric([service], verdict.next_run_at.timestamp())
            snapshots.add_metric([service], verdict.snapshot_count)
            if verdict.newest_size_bytes is not None:
                size.add_metric([service], verdict.newest_size_bytes)
            protection = verdict.protection
            if protection is not None:
                copies.add_metric([service], protection.copy_count)
                if protection.offsite_lag is not None:
                    lag.add_metric([service], protection.offsite_lag.total_seconds())
                if protection.last_restore_test_at is not None:
                    restored.add_metric([service], protection.last_restore_test_at.timestamp())
                at_risk.add_metric([service], 1.0 if protection.risks else 0.0)
        yield from (status, severity, success, next_run, snapshots, size, copies, lag, restored, at_risk)

    def _jobs(self) -> Iterator[Metric]:
        labels = ["job", "kind", "source"]
        last = _gauge("job_last_run_timestamp_seconds", "When the job's latest run started.", labels)
        success = _gauge(
            "job_last_run_success", "1 when the latest finished run succeeded (warnings included), else 0.", labels
        )
        next_run = _gauge("job_next_run_timestamp_seconds", "When the job runs next, from its schedule.", labels)
        for view in self.board.jobs:
            key = [_label(view.job.key), view.job.kind.value, _label(view.job.source)]
            run = view.last_run
            if run is not None:
                last.add_metric(key, run.started_at.timestamp())
                if run.outcome in SUCCESS:
                    success.add_metric(key, SUCCESS[run.outcome])
            if view.next_run_at is not None:
                next_run.add_metric(key, view.next_run_at.timestamp())
        yield from (last, success, next_run)

    def _datastores(self) -> Iterator[Metric]:
        labels = ["datastore", "source"]
        used = _gauge("datastore_used_bytes", "Bytes used on the datastore.", labels)
        total = _gauge("datastore_total_bytes", "The datastore's size in bytes.", labels)
        full = _gauge(
            "datastore_full_in_seconds",
            "Seconds until full at the current growth (absent without an estimate).",
            labels,
        )
        for view in self.board.datastores:
            store = view.datastore
            key = [_label(store.name), _label(store.source)]
            if store.used_bytes is not None:
                used.add_metric(key, store.used_bytes)
            if store.total_bytes is not None:
                total.add_metric(key, store.total_bytes)
            if view.full_in_days is not None:
                full.add_metric(key, view.full_in_days * 86400)  # Prometheus' base unit (promtool checks it)
        yield from (used, total, full)

    def _sources(self) -> Iterator[Metric]:
        labels = ["source", "type"]
        up = _gauge("source_up", "1 when the source's latest poll succeeded, else 0.", labels)
        success = _gauge("source_last_success_timestamp_seconds", "When the source last answered.", labels)
        duration = _gauge("source_poll_duration_seconds", "How long the source's latest poll took.", labels)
        for state in self.board.sources:
            key = [_label(state.name), _label(state.kind)]
            up.add_metric(key, 1.0 if state.error is None and state.last_success_at is not None else 0.0)
            if state.last_success_at is not None:
                success.add_metric(key, state.last_success_at.timestamp())
            if state.last_poll_seconds is not None:
                duration.add_metric(key, state.last_poll_seconds)
        yield from (up, success, duration)


def render_metrics(board: Board) -> bytes:
    """The exposition of `board`, from a registry of its own."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BoardCollector(board))
    return generate_latest(registry)


_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _payload(board: Board) -> Payload:
    try:
        return Payload(render_metrics(board))
    except Exception:  # logged once per board version; Prometheus records the failed scrape
        log.exception("metrics rendering failed")
        return Payload(b"# internal error while rendering; see the backup-glance log\n", 500)


def render_later(board: Board) -> Future[Payload]:
    """The payload for `board`, rendered in the metrics thread; await it with `asyncio.wrap_future`."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics")
        return _executor.submit(_payload, board)


__all__ = ["CONTENT_TYPE", "BoardCollector", "render_later", "render_metrics"]
