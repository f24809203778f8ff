"""The wheel, built once per session from a copy of the source and installed into a fresh venv (no repo on the path).

The venv lives in a world-readable temporary folder outside pytest's (which is private to root), so the tests can
run the installed command as an unprivileged user, as the container does.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from install_helpers import REPO, Installed, open_temp_dir, run_checked

sys.path.insert(0, str(REPO / "tests" / "integration"))  # the test modules import serve_process from there

# What the build reads (pyproject: readme, the license file, the package); caches and egg-info stay behind.
BUILD_INPUTS = ("pyproject.toml", "README.md", "LICENSE", "src")
BUILD_LEFTOVERS = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")


@pytest.fixture(scope="session")
def installed() -> Iterator[Installed]:
    root = open_temp_dir("backup-glance-install-")
    try:
        # Built from a copy: an in-tree setuptools build writes build/ and *.egg-info into the checkout, and a
        # stale build/lib can put deleted modules into the next wheel.
        source = root / "source"
        for name in BUILD_INPUTS:
            item = REPO / name
            if item.is_dir():
                shutil.copytree(item, source / name, ignore=BUILD_LEFTOVERS)
            else:
                source.mkdir(exist_ok=True)
                shutil.copy2(item, source / name)
        dist = root / "dist"
        build = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(dist), str(source)]
        offline = subprocess.run([*build, "--no-build-isolation"], capture_output=True, text=True, check=False)
        if offline.returncode != 0:
            # This venv's setuptools is older than pyproject's build requirement: pip fetches a fitting one.
            run_checked(build)
        (wheel,) = dist.glob("backup_glance-*.whl")
        venv = root / "venv"
        # No pip in the new venv (saves its bootstrap); this pip installs into it, with its cache and index.
        run_checked([sys.executable, "-m", "venv", "--without-pip", str(venv)])
        run_checked(
            [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q", str(wheel)]
        )
        yield Installed(wheel=wheel, source=source, venv=venv)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    path = open_temp_dir("backup-glance-test-")
    yield path
    shutil.rmtree(path, ignore_errors=True)
