"""Freed memory goes back to the system: what glibc keeps free in its heaps is returned by `release_free_memory`."""

from __future__ import annotations

import subprocess
import sys

import pytest

from backup_glance.heap import _malloc_trim, release_free_memory

# A child process, so the heap holds only this: 3,000 freed 16 kB blocks between 1 kB blocks still in use. Each
# hole spans whole pages glibc keeps for itself; freeing at the top would hand them back by itself, holes do not.
_HOLES = """
import os
from backup_glance.heap import release_free_memory

PAGE = os.sysconf("SC_PAGE_SIZE")

def rss_kb():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE // 1024

blocks = []
for _ in range(3000):
    blocks.append(bytearray(16 * 1024))
    blocks.append(bytearray(1024))
held = blocks[1::2]
del blocks
before = rss_kb()
trimmed = release_free_memory()
print(trimmed, before, rss_kb())
"""


@pytest.mark.skipif(_malloc_trim() is None, reason="the C library has no malloc_trim (not glibc)")
def test_the_free_pages_of_the_heap_go_back_to_the_system() -> None:
    out = subprocess.run([sys.executable, "-c", _HOLES], capture_output=True, text=True, check=True).stdout.split()
    trimmed, before, after = out[0], int(out[1]), int(out[2])
    assert trimmed == "True"
    assert before - after > 30 * 1024, f"resident {before} kB before, {after} kB after"  # of the 48 MB freed


def test_without_malloc_trim_it_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("backup_glance.heap._malloc_trim", lambda: None)
    assert release_free_memory() is False
