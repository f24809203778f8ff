"""The examples in docstrings outside the schedule engine are tests too."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

import backup_glance.clean
import backup_glance.config._checks
import backup_glance.config._schema
import backup_glance.config._yaml
import backup_glance.errors
import backup_glance.health._text
import backup_glance.listdiff
import backup_glance.logs
import backup_glance.sources._bounds
import backup_glance.sources._proxmox
import backup_glance.sources._util
import backup_glance.web.auth
import backup_glance.web.params
import backup_glance.web.subpath

MODULES = [
    backup_glance.config._checks,
    backup_glance.config._schema,
    backup_glance.config._yaml,
    backup_glance.clean,
    backup_glance.errors,
    backup_glance.health._text,
    backup_glance.listdiff,
    backup_glance.logs,
    backup_glance.sources._bounds,
    backup_glance.sources._proxmox,
    backup_glance.sources._util,
    backup_glance.web.auth,
    backup_glance.web.params,
    backup_glance.web.subpath,
]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_docstring_examples_hold(module: ModuleType) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0
