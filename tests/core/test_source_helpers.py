"""The helpers every source reads its answers with: the examples in their docstrings hold, and what no source
can mean (a VMID in superscript digits, a number of 5,000 digits) becomes "no value", never an exception."""

from __future__ import annotations

import doctest
import json
from datetime import UTC, datetime

import pytest

import backup_glance.sources._proxmox as proxmox
import backup_glance.sources._util as util
from backup_glance.sources._pbs_wire import parse_datastore
from backup_glance.sources._util import as_int, json_loads, segment, vmid_of


@pytest.mark.parametrize("module", [util, proxmox], ids=lambda m: m.__name__)
def test_docstring_examples_hold(module: object) -> None:
    result = doctest.testmod(module)  # type: ignore[arg-type]
    assert result.attempted > 0
    assert result.failed == 0


def test_a_name_becomes_one_path_segment_whatever_it_holds() -> None:
    assert segment("pve-1") == "pve-1"
    assert segment("x\ud800/y") == "x%ED%A0%80%2Fy"  # a lone surrogate is sent, and refused by the server


def test_byte_counts_no_float_holds_cost_the_dedup_factor_only() -> None:
    gc = {"index-data-bytes": 10**400, "disk-bytes": 3}
    item = {"store": "main", "total": 100, "used": 10, "gc-status": gc}
    store = parse_datastore("pbs", item, None, now=datetime(2026, 12, 1, tzinfo=UTC), said=[])
    assert store.dedup_factor is None and store.total_bytes == 100


@pytest.mark.parametrize("text", ["\u00b2", "\u2460", "\u0661\u0660\u0661", "9" * 5000, "1" * 10, "-1", " 101", ""])
def test_a_vmid_no_pve_can_have_is_none(text: str) -> None:
    assert vmid_of(text) is None


def test_a_vmid_pve_can_have_is_read() -> None:
    assert [vmid_of(t) for t in ("100", "999999999", "007")] == [100, 999_999_999, 7]


def test_an_integer_of_thousands_of_digits_is_no_integer() -> None:
    assert as_int("9" * 5000) is None
    assert as_int(str(2**64)) == 2**64  # absurd, but a number: the edge bounds judge it


def test_a_huge_number_in_json_costs_that_field_only() -> None:
    body = b'{"data": [{"vmid": ' + b"9" * 5000 + b', "name": "a"}, {"vmid": 101, "size": 18446744073709551615}]}'
    assert json_loads(body) == {"data": [{"vmid": None, "name": "a"}, {"vmid": 101, "size": 2**64 - 1}]}


def test_bytes_that_are_not_utf8_cost_only_the_text_they_are_in() -> None:
    """One comment with a byte no UTF-8 has must not lose a namespace of snapshots: it reads as U+FFFD, as text
    cleaned at the edge, and every other value is read."""
    body = b'{"data": [{"comment": "v\xffault", "size": 7}, {"comment": "caddy\xc3", "size": 8}]}'
    assert json_loads(body) == {"data": [{"comment": "v\ufffdault", "size": 7}, {"comment": "caddy\ufffd", "size": 8}]}


@pytest.mark.parametrize("body", [b'{"data": [', b'{"data": \xff}', b"nan"])
def test_json_that_is_broken_still_raises_as_json_does(body: bytes) -> None:
    with pytest.raises(ValueError) as raised:
        json_loads(body)
    assert isinstance(raised.value, (json.JSONDecodeError, UnicodeDecodeError))


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": 18446744073709551616, "b": -0.0, "c": 0.1, "d": 1E2}',
        b'{"a": 1e999, "b": -Infinity}',
        b'{"a": NaN}',
        b'{"a": "\\ud800 \\u0000"}',
        b'{"a": 1, "a": 2}',
        b'\xef\xbb\xbf{"bom": true}',
        '{"utf16": "\u00e9"}'.encode("utf-16"),
    ],
)
def test_json_is_read_as_the_standard_library_reads_it(body: bytes) -> None:
    assert repr(json_loads(body)) == repr(json.loads(body))  # repr: NaN equals nothing, not even itself
