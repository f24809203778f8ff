"""Monitor URLs for Glance's `monitor` widget (and any uptime checker): 200 when fine, 503 when not.

Pure: `service_health` / `overall_health` return a status code and one line of text. The severity comes from
health; here it only picks 200 (severity ok: ok, running, silenced) or 503 (everything else).

Sample bodies:
    vault: late — last backup 2026-11-26 04:03, due 04:00 + 1h grace
    2 of 12 services need attention: vault (late), pg-main (failed)
"""

from __future__ import annotations

from ..model import Board, Severity, Verdict
from .views import status_word
from .widgets.status import sort_key

OK = 200
UNAVAILABLE = 503
NOT_FOUND = 404
MAX_NAMED = 5  # services named in the overall body before "and N more"


def _one_line(text: str) -> str:
    # A monitor body is one line: a reason from a source could carry a newline.
    return " ".join(text.split())


def service_health(board: Board, service_id: str) -> tuple[int, str]:
    verdict = next((v for v in board.verdicts if v.service_id == service_id), None)
    if verdict is None:
        return NOT_FOUND, f"unknown service {service_id[:80]!r}"
    line = f"{verdict.name}: {status_word(verdict.status)}"
    if verdict.reasons:
        line += " — " + "; ".join(verdict.reasons)
    code = OK if verdict.severity is Severity.OK else UNAVAILABLE
    return code, _one_line(line)


def _named(verdict: Verdict) -> str:
    return f"{verdict.name} ({status_word(verdict.status)})"


def overall_health(board: Board) -> tuple[int, str]:
    problems = sorted((v for v in board.verdicts if v.severity is not Severity.OK), key=sort_key)
    total = len(board.verdicts)
    if board.overall is Severity.OK:
        return OK, f"all {total} services ok" if total else "no services configured"
    stores = [
        *board.notices,
        *(reason for d in board.datastores if d.severity is not Severity.OK for reason in d.reasons[:1]),
    ]
    if problems:
        names = ", ".join(_named(v) for v in problems[:MAX_NAMED])
        if len(problems) > MAX_NAMED:
            names += f" and {len(problems) - MAX_NAMED} more"
        line = f"{len(problems)} of {total} services need attention: {names}"
        return UNAVAILABLE, _one_line("; ".join([line, *stores]))
    if stores:
        return UNAVAILABLE, _one_line("; ".join(stores))
    failing = [f"{s.name}: {s.error}" for s in board.sources if s.error is not None]
    if failing:
        return UNAVAILABLE, _one_line("source(s) not answering: " + "; ".join(failing))
    return UNAVAILABLE, "no data yet: waiting for the first poll"


__all__ = ["overall_health", "service_health"]
