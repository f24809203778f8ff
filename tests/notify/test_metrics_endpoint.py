"""`/metrics` parsed back with prometheus_client's own parser: every family, hostile names, auth, absent facts."""

from __future__ import annotations

import dataclasses
import warnings
from datetime import timedelta

import pytest
from notify_helpers import HOSTILE, NOW, ZONE, a_metrics_board
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from backup_glance.board import BoardStore
from backup_glance.config import Config, ServerConfig
from backup_glance.model import Board, Status
from backup_glance.web import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

TOKEN = "metrics-token-0123456789"
REQUIRED = {
    "backup_glance_service_status": ["service", "name", "status"],
    "backup_glance_service_severity": ["service"],
    "backup_glance_service_last_success_timestamp_seconds": ["service"],
    "backup_glance_service_next_run_timestamp_seconds": ["service"],
    "backup_glance_service_snapshots": ["service"],
    "backup_glance_service_newest_size_bytes": ["service"],
    "backup_glance_job_last_run_timestamp_seconds": ["job", "kind", "source"],
    "backup_glance_job_last_run_success": ["job", "kind", "source"],
    "backup_glance_job_next_run_timestamp_seconds": ["job", "kind", "source"],
    "backup_glance_datastore_used_bytes": ["datastore", "source"],
    "backup_glance_datastore_total_bytes": ["datastore", "source"],
    "backup_glance_datastore_full_in_seconds": ["datastore", "source"],
    "backup_glance_source_up": ["source", "type"],
    "backup_glance_source_last_success_timestamp_seconds": ["source", "type"],
    "backup_glance_source_poll_duration_seconds": ["source", "type"],
    "backup_glance_overall_severity": [],
    "backup_glance_board_notices": [],
}


def scrape(board: Board, token: str | None = TOKEN) -> tuple[int, str, str]:
    config = Config(timezone=ZONE, server=ServerConfig(auth_token=TOKEN))
    client = TestClient(create_app(config, BoardStore(board)))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = client.get("/metrics", headers=headers)
    return response.status_code, response.headers.get("content-type", ""), response.text


def samples(text: str) -> dict[str, list[Sample]]:
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


@pytest.fixture(scope="module")
def parsed() -> dict[str, list[Sample]]:
    status, content_type, text = scrape(a_metrics_board())
    assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
    return samples(text)


def test_every_required_family_is_there_with_its_labels(parsed: dict[str, list[Sample]]) -> None:
    for name, labels in REQUIRED.items():
        assert name in parsed, name
        assert all(sorted(s.labels) == sorted(labels) for s in parsed[name]), (name, parsed[name][:1])


def test_every_family_is_in_prometheus_base_units(parsed: dict[str, list[Sample]]) -> None:
    """What `promtool check metrics` asks of a name: seconds and bytes, never days or megabytes."""
    units = ("days", "hours", "minutes", "milliseconds", "kilobytes", "megabytes", "gigabytes", "percent")
    assert [name for name in parsed if name.rsplit("_", 1)[-1] in units] == []


def test_one_status_series_per_possible_status_with_one_set(parsed: dict[str, list[Sample]]) -> None:
    postgres = [s for s in parsed["backup_glance_service_status"] if s.labels["service"] == "postgres"]
    assert sorted(s.labels["status"] for s in postgres) == sorted(status.value for status in Status)
    assert [s.labels["status"] for s in postgres if s.value == 1] == ["failed"]
    severity = {s.labels["service"]: s.value for s in parsed["backup_glance_service_severity"]}
    assert severity["vault"] == 0 and severity["postgres"] == 2
    assert parsed["backup_glance_overall_severity"][0].value == 2


def test_hostile_names_come_back_exactly_as_they_went_in(parsed: dict[str, list[Sample]]) -> None:
    hostile = [s for s in parsed["backup_glance_service_status"] if s.labels["service"] == HOSTILE]
    assert len(hostile) == len(Status)
    assert hostile[0].labels["name"] == HOSTILE + " ?"  # a lone surrogate cannot be UTF-8: replaced
    assert {s.labels["source"] for s in parsed["backup_glance_source_up"]} == {"pbs-main", HOSTILE}
    assert {s.labels["job"] for s in parsed["backup_glance_job_last_run_success"]} == {
        "pve/backup/nightly",
        "pve/backup/" + HOSTILE,
    }


def test_values_and_absent_facts(parsed: dict[str, list[Sample]]) -> None:
    up = {s.labels["source"]: s.value for s in parsed["backup_glance_source_up"]}
    assert up == {"pbs-main": 1, HOSTILE: 0}
    success = {s.labels["job"]: s.value for s in parsed["backup_glance_job_last_run_success"]}
    assert success == {"pve/backup/nightly": 1, "pve/backup/" + HOSTILE: 0}
    full = parsed["backup_glance_datastore_full_in_seconds"]
    assert [(s.labels["datastore"], s.value) for s in full] == [("main", 431.0 * 86400)]  # no estimate: no series
    last = {s.labels["source"] for s in parsed["backup_glance_source_last_success_timestamp_seconds"]}
    assert last == {"pbs-main"}  # never answered: absent, not 0
    success = {s.labels["service"]: s.value for s in parsed["backup_glance_service_last_success_timestamp_seconds"]}
    assert success["vault"] == (NOW - timedelta(hours=9)).timestamp()
    duration = parsed["backup_glance_source_poll_duration_seconds"]
    assert {s.value for s in duration} == {0.25}


def test_it_needs_the_token_like_every_other_endpoint() -> None:
    assert scrape(a_metrics_board(), token=None)[0] == 401
    assert scrape(a_metrics_board(), token="wrong-token-0123456789")[0] == 401


def test_an_empty_board_still_scrapes() -> None:
    status, _, text = scrape(Board(generated_at=NOW, timezone=ZONE))
    assert status == 200
    assert samples(text)["backup_glance_overall_severity"][0].value == 3
    assert samples(text)["backup_glance_board_notices"][0].value == 0


def test_the_board_s_own_problems_are_counted() -> None:
    """A history file that cannot be written, a notification target that refuses everything: on the board as
    notices, and here as their number, for an alert rule."""
    notices = ("history: cannot write the history file: disk full", "notify: target 'ntfy' refuses every message")
    board = dataclasses.replace(a_metrics_board(), notices=notices)
    assert samples(scrape(board)[2])["backup_glance_board_notices"][0].value == 2
