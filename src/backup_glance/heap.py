"""Give back to the system the memory a big poll or a publish freed.

Python hands objects of more than 512 bytes, and the buffers a poll reads its answers into, to the C library's
allocator. glibc keeps what is freed in its heaps for later, and much of it never fits what comes later: after a
first poll of 10,000 guests about 100 MB sat free in them for the life of the process, counted in its memory.
`malloc_trim` returns those free pages (a few milliseconds). Where the C library has no such call (musl, macOS),
this does nothing.

glibc also gives each new thread a heap of its own (up to eight per core), each keeping its own free memory:
with the history writes, the judging and the feed in worker threads, that was 10 to 25 MB more after a few
cycles at 10,000 guests. Python lets one thread allocate at a time anyway, so `limit_heaps` caps them at two.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable
from functools import cache


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the process's own symbols, the C library's among them
    except (OSError, AttributeError, TypeError):  # not found; or no C library to name at all (Windows)
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


# glibc's `mallopt` parameter for the number of heaps (malloc.h: M_ARENA_MAX), and the cap set by `limit_heaps`.
_M_ARENA_MAX = -8
HEAPS = 2


@cache
def _mallopt() -> Callable[[int, int], int] | None:
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):
        return None
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt


def limit_heaps() -> bool:
    """Let threads share the C library's heaps, at most `HEAPS` of them; call it before starting threads. False
    where it cannot, or where MALLOC_ARENA_MAX is set: then the operator chose, and glibc already obeys it."""
    mallopt = _mallopt()
    if mallopt is None or os.environ.get("MALLOC_ARENA_MAX"):
        return False
    return mallopt(_M_ARENA_MAX, HEAPS) == 1


def release_free_memory() -> bool:
    """Return the C library's free pages to the system; False where it cannot."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
