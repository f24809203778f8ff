"""deploy/grafana/backup-glance.json and deploy/prometheus/rules.yml query only metrics that /metrics serves, and
are shaped the way Grafana's import and Prometheus' rule loader read them."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml
from notify_helpers import a_metrics_board
from prometheus_client.parser import text_string_to_metric_families

from backup_glance.board import BoardStore
from backup_glance.config import Config
from backup_glance.health.deadlines import LONGEST_SLEEP
from backup_glance.web import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
METRIC = re.compile(r"\bbackup_glance_[a-z0-9_]+")


@pytest.fixture(scope="module")
def served() -> set[str]:
    """Every family and sample name /metrics answers with, for a board with every kind of fact."""
    text = TestClient(create_app(Config(), BoardStore(a_metrics_board()))).get("/metrics").text
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    return names


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DEPLOY / "grafana" / "backup-glance.json").read_text())
    return loaded


def dashboard_queries() -> list[str]:
    return [target["expr"] for panel in dashboard()["panels"] for target in panel["targets"]]


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def balanced(expr: str) -> bool:
    depth = {"(": 0, "{": 0, "[": 0}
    closing = {")": "(", "}": "{", "]": "["}
    for char in re.sub(r'"[^"]*"', '""', expr):
        if char in depth:
            depth[char] += 1
        elif char in closing:
            depth[closing[char]] -= 1
            if depth[closing[char]] < 0:
                return False
    return not any(depth.values())


def test_every_metric_the_dashboard_and_the_rules_query_exists(served: set[str]) -> None:
    queries = dashboard_queries() + [rule["expr"] for rule in rules()]
    used = {name for expr in queries for name in METRIC.findall(expr)}
    assert len(used) >= 12
    assert used <= served, sorted(used - served)


def test_the_dashboard_covers_what_the_issue_asks_and_imports_with_a_datasource_input() -> None:
    board = dashboard()
    assert board["__inputs"][0]["pluginId"] == "prometheus"
    titles = {panel["title"] for panel in board["panels"]}
    assert {"Status", "Last success age per service", "Next runs", "Datastore fill"} <= titles
    for panel in board["panels"]:
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}"
    assert len({panel["id"] for panel in board["panels"]}) == len(board["panels"])
    assert [v["name"] for v in board["templating"]["list"]] == ["instance"]  # one view over every site


def test_every_query_is_well_formed() -> None:
    for expr in dashboard_queries() + [rule["expr"] for rule in rules()]:
        assert balanced(expr), expr


def test_every_rule_has_what_alertmanager_needs() -> None:
    found = rules()
    assert len(found) >= 6
    for rule in found:
        assert set(rule) >= {"alert", "expr", "labels", "annotations"}, rule
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]


def test_the_stuck_board_alert_waits_longer_than_a_quiet_homelab_goes_without_a_new_board() -> None:
    # Without news the board is rebuilt only at its next deadline, at the latest after LONGEST_SLEEP: an alert
    # that fires sooner calls a calm night a stuck service.
    (rule,) = [rule for rule in rules() if rule["alert"] == "BackupGlanceNotJudging"]
    shape = re.fullmatch(r"time\(\) - backup_glance_board_generated_timestamp_seconds > (\d+)", rule["expr"])
    assert shape is not None, rule["expr"]
    threshold = float(shape[1])
    assert threshold >= 2 * LONGEST_SLEEP.total_seconds()
    assert f"{threshold / 60:.0f} minutes" in rule["annotations"]["summary"]
