"""PBS datastore usage that lies, over real HTTPS, through the edge bounds to health and the datastores widget.

One absurd usage record costs its absurd part: that part is left out and named in the source's problems, the
source is not failed, other stores keep their usage, and the board never shows nonsense ("1000% full", "full in
0 days" for a store whose usage is falling)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from conftest import NOW, PBS_SECRET, PBS_TOKEN_ID, Clock, pbs_config
from rewriting import Rewriting, Rule

from backup_glance.health import Defaults, evaluate
from backup_glance.model import Board, DatastoreView, HistoryView, Observation, Severity, SourceState
from backup_glance.simulators._server import SimulatorServer
from backup_glance.simulators.pbs import create_pbs_app
from backup_glance.simulators.proxmox_lab import PbsDatastore, ProxmoxLab
from backup_glance.sources._bounds import EdgeBounds
from backup_glance.sources.pbs import PbsSource
from backup_glance.web.widgets.datastores import DatastoreCard, build_card

USAGE = "/status/datastore-usage"
TIB = 1024**4
DAY = 86400
ZONE = "Europe/Madrid"
USED_SHARE = 77413776226 / (2 * TIB)  # `main` in the demo lab


@pytest.fixture
def rules() -> dict[str, Rule]:
    return {}


@pytest.fixture
def server(lab: ProxmoxLab, rules: dict[str, Rule]) -> Iterator[SimulatorServer]:
    # A second, honest store: what `main` says must not cost it anything.
    lab.datastores["offsite"] = PbsDatastore("offsite", total=4 * TIB, used=TIB, avail=3 * TIB)
    app = create_pbs_app(lab, token_id=PBS_TOKEN_ID, token_secret=PBS_SECRET)
    with SimulatorServer(Rewriting(app, rules)) as running:
        yield running


async def board_of(server: SimulatorServer) -> tuple[Observation, Board]:
    """A poll as the collector makes it (edge bounds included), judged by health."""
    source = PbsSource(pbs_config(server), clock=Clock())
    try:
        observation = EdgeBounds(ZONE).bound(await source.poll(), NOW)
    finally:
        await source.aclose()
    state = SourceState("pbs1", "pbs", timedelta(minutes=5), observation, NOW, NOW)
    board = evaluate(
        services=(), sources=(state,), history=HistoryView(), now=NOW, display_tz=ZONE, defaults=Defaults()
    )
    return observation, board


def view(board: Board, name: str) -> DatastoreView:
    return next(v for v in board.datastores if v.datastore.name == name)


def card(board: Board, name: str) -> DatastoreCard:
    return build_card(view(board, name), board, ZoneInfo(ZONE))


def main_with(**fields: Any) -> Rule:
    """The honest usage list, with `main`'s record changed (kebab-case keys as `estimated_full_date`)."""
    changes = {key.replace("_", "-"): value for key, value in fields.items()}
    return lambda data: [{**item, **changes} if item["store"] == "main" else item for item in data]


def assert_offsite_intact(board: Board) -> None:
    offsite = view(board, "offsite")
    assert (offsite.severity, offsite.used_fraction, offsite.datastore.total_bytes) == (Severity.OK, 0.25, 4 * TIB)


class TestMoreUsedThanTheStoreHolds:
    @pytest.mark.parametrize(
        ("fields", "said"),
        [
            ({"used": 10 * 2 * TIB}, "main reports 21,990,232,555,520 bytes used of 2,199,023,255,552 total"),
            ({"avail": 2 * TIB + 1}, "main reports 2,199,023,255,553 bytes available of 2,199,023,255,552 total"),
        ],
        ids=["used", "avail"],
    )
    async def test_its_usage_is_unknown_and_named_never_judged(
        self, server: SimulatorServer, rules: dict[str, Rule], fields: dict[str, int], said: str
    ) -> None:
        rules[USAGE] = main_with(**fields)
        observation, board = await board_of(server)
        (problem,) = observation.problems
        assert said in problem and "shown as unknown" in problem
        main = view(board, "main")
        assert (main.datastore.total_bytes, main.datastore.used_bytes, main.datastore.avail_bytes) == (None,) * 3
        assert (main.severity, main.reasons, main.used_fraction) == (Severity.OK, (), None)  # not "1000% full"
        assert main.full_in_days == 431  # its own estimate is another fact, kept
        shown = card(board, "main")
        assert (shown.usage, shown.percent) == ("usage unknown", None)
        assert_offsite_intact(board)


def listed_twice(copy: dict[str, Any], copy_first: bool) -> Rule:
    def rule(data: list[dict[str, Any]]) -> list[dict[str, Any]]:
        main = next(item for item in data if item["store"] == "main")
        other = {**main, **copy}
        return [other, *data] if copy_first else [*data, other]

    return rule


class TestAStoreListedTwice:
    @pytest.mark.parametrize("copy_first", [True, False], ids=["copy-first", "copy-last"])
    async def test_the_record_saying_least_good_is_kept_in_either_order_and_named_once(
        self, server: SimulatorServer, rules: dict[str, Rule], copy_first: bool
    ) -> None:
        nearly_full = {"used": 2 * TIB * 97 // 100, "avail": 2 * TIB * 3 // 100}
        rules[USAGE] = listed_twice(nearly_full, copy_first)
        observation, board = await board_of(server)
        assert observation.problems == (
            "datastore 'main': listed 2 times in the usage list; the least good one is used",
        )
        main = view(board, "main")
        assert (main.severity, main.reasons) == (Severity.CRITICAL, ("datastore main is 97% full",))
        assert [v.datastore.name for v in board.datastores] == ["main", "offsite"]
        assert_offsite_intact(board)

    @pytest.mark.parametrize("copy_first", [True, False], ids=["copy-first", "copy-last"])
    async def test_of_two_estimates_the_sooner_is_kept(
        self, server: SimulatorServer, rules: dict[str, Rule], copy_first: bool
    ) -> None:
        rules[USAGE] = listed_twice({"estimated-full-date": int(NOW.timestamp()) + 10 * DAY}, copy_first)
        observation, board = await board_of(server)
        assert len(observation.problems) == 1 and "listed 2 times" in observation.problems[0]
        assert view(board, "main").reasons == ("datastore main is expected to be full in 10 days",)


NOT_GROWING = [
    pytest.param(int(NOW.timestamp()) - 30 * DAY, id="a-month-ago"),
    pytest.param(int(NOW.timestamp()) - 1, id="a-second-ago"),
    pytest.param(-1, id="minus-one"),
    pytest.param(-(2**63), id="i64-min"),
    pytest.param(253402300799, id="year-9999"),  # a slope near zero, not a lie: (1 - a) / b with b tiny
    pytest.param(2**63 - 1, id="i64-max"),  # Rust's `as i64` saturates
]


class TestAFullDateAnyPbsCanSend:
    @pytest.mark.parametrize("value", NOT_GROWING)
    async def test_one_past_or_beyond_any_horizon_means_usage_not_growing(
        self, server: SimulatorServer, rules: dict[str, Rule], value: int
    ) -> None:
        rules[USAGE] = main_with(estimated_full_date=value)
        observation, board = await board_of(server)
        assert observation.problems == ()  # PBS said what it means: nothing to name
        main = view(board, "main")
        assert main.datastore.usage_is_flat and main.datastore.estimated_full_at is None
        assert (main.severity, main.reasons, main.full_in_days) == (Severity.OK, (), None)  # never "full in 0 days"
        assert card(board, "main").full_in == "usage flat"

    async def test_one_ahead_is_still_the_day_it_fills_up(
        self, server: SimulatorServer, rules: dict[str, Rule]
    ) -> None:
        rules[USAGE] = main_with(estimated_full_date=int(NOW.timestamp()) + 10 * DAY)
        _observation, board = await board_of(server)
        main = view(board, "main")
        assert (main.severity, main.full_in_days, main.datastore.usage_is_flat) == (Severity.CRITICAL, 10, False)
        # ... and none in the past reads as "full now": compare the same store a month after its date
        rules[USAGE] = main_with(estimated_full_date=int(NOW.timestamp()) - 30 * DAY)
        _observation, board = await board_of(server)
        assert view(board, "main").severity is Severity.OK


class TestAFullDateNoPbsCanSend:
    @pytest.mark.parametrize(
        ("value", "shown"),
        [
            (2**64, "18446744073709551616"),
            (-(2**63) - 1, "-9223372036854775809"),
            (1.7e9, "1700000000.0"),
            ("1737000000", "'1737000000'"),
            (True, "True"),
            ([1737000000], "[1737000000]"),
        ],
        ids=["2^64", "below-i64", "float", "text", "bool", "list"],
    )
    async def test_it_is_left_out_and_named(
        self, server: SimulatorServer, rules: dict[str, Rule], value: Any, shown: str
    ) -> None:
        rules[USAGE] = main_with(estimated_full_date=value)
        observation, board = await board_of(server)
        assert observation.problems == (
            f"datastore 'main': 'estimated-full-date' is {shown}, not a time PBS can send; left out",
        )
        main = view(board, "main")
        assert main.datastore.estimated_full_at is None and not main.datastore.usage_is_flat  # unknown, not flat
        assert (main.severity, main.full_in_days, main.used_fraction) == (Severity.OK, None, USED_SHARE)
        assert card(board, "main").full_in is None
        assert_offsite_intact(board)


ABSURD_SIZES = [
    pytest.param(float("nan"), "nan", id="nan"),
    pytest.param(float("inf"), "inf", id="inf"),
    pytest.param(float("-inf"), "-inf", id="-inf"),
    pytest.param(1.5e12, "1500000000000.0", id="float"),
    pytest.param("77413776226", "'77413776226'", id="text"),
    pytest.param(True, "True", id="bool"),
    pytest.param(-5, "-5", id="negative"),
    pytest.param(2**64, "18446744073709551616", id="2^64"),
    pytest.param(10**30, "1000000000000000000000000000000", id="10^30"),
]


class TestASizeNoStoreCanHave:
    @pytest.mark.parametrize(("value", "shown"), ABSURD_SIZES)
    @pytest.mark.parametrize("key", ["total", "used", "avail"])
    async def test_that_size_is_left_out_and_named_the_others_kept(
        self, server: SimulatorServer, rules: dict[str, Rule], key: str, value: Any, shown: str
    ) -> None:
        rules[USAGE] = main_with(**{key: value})
        observation, board = await board_of(server)
        assert observation.problems == (f"datastore 'main': '{key}' is {shown}, not a possible byte count; left out",)
        main = view(board, "main")
        sizes = {"total": main.datastore.total_bytes, "used": main.datastore.used_bytes}
        sizes["avail"] = main.datastore.avail_bytes
        assert sizes == {"total": 2 * TIB, "used": 77413776226, "avail": 2121609479326} | {key: None}
        assert (main.severity, main.reasons, main.full_in_days) == (Severity.OK, (), 431)
        shown = card(board, "main").usage
        if key == "avail":  # not part of the share used
            assert main.used_fraction == USED_SHARE and shown == "72.1 GiB of 2.00 TiB (4%)"
        else:
            assert main.used_fraction is None and shown == ("usage unknown" if key == "used" else "72.1 GiB used")
        assert_offsite_intact(board)
