"""The examples in the schedule modules' docstrings are tests too."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

import backup_glance.commands.schedule
import backup_glance.schedule
import backup_glance.schedule._common
import backup_glance.schedule.describe

MODULES = [
    backup_glance.schedule,
    backup_glance.schedule._common,
    backup_glance.schedule.describe,
    backup_glance.commands.schedule,
]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_docstring_examples_hold(module: ModuleType) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0
