"""The examples in the notify and metrics docstrings are tests too."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

import backup_glance.config._notify
import backup_glance.notify._deliver
import backup_glance.notify._policy

MODULES = [
    backup_glance.config._notify,
    backup_glance.notify._deliver,
    backup_glance.notify._policy,
]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_docstring_examples_hold(module: ModuleType) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0
