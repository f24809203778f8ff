"""Freed memory goes back to the system: what glibc keeps free in its heaps is returned by `release_free_memory`."""

from __future__ import annotations

import os
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


# Eight threads, each allocating blocks glibc serves from the heap the thread was given; `malloc_stats` then
# writes one "Arena N:" section per heap to stderr.
_THREADS = """
import ctypes, sys, threading
from backup_glance.heap import limit_heaps

limited = limit_heaps() if sys.argv[1] == "limit" else None
start = threading.Barrier(8)

def allocate():
    start.wait()  # all alive at once: a thread that started after one ended would take over that one's heap
    held = [bytearray(4096) for _ in range(2000)]
    start.wait()

threads = [threading.Thread(target=allocate) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(limited, flush=True)
ctypes.CDLL(None).malloc_stats()
"""


def _heaps(mode: str, **env: str) -> tuple[str, int]:
    inherited = {name: value for name, value in os.environ.items() if name != "MALLOC_ARENA_MAX"}
    done = subprocess.run(
        [sys.executable, "-c", _THREADS, mode], capture_output=True, text=True, check=True, env={**inherited, **env}
    )
    return done.stdout.strip(), done.stderr.count("Arena ")


@pytest.mark.skipif(_malloc_trim() is None, reason="not glibc")
def test_threads_share_at_most_two_heaps() -> None:
    assert _heaps("limit") == ("True", 2)
    limited, unlimited = _heaps("no limit")
    assert limited == "None" and unlimited > 2  # what the cap prevents: a heap per thread


@pytest.mark.skipif(_malloc_trim() is None, reason="not glibc")
def test_an_operators_malloc_arena_max_stands() -> None:
    assert _heaps("limit", MALLOC_ARENA_MAX="4") == ("False", 4)
