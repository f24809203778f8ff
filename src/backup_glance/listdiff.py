"""Where a long list differs from its last version, found at C speed when the two share most of their objects.

Sources hand back the very same objects, in the same order, for what they did not read again: a quiet poll of
a big PBS lists 200,000 runs and 10,000 snapshot series that differ from the ones before in a few hundred places.
Comparing the two a slice at a time (a tuple comparison sees the same object at once) finds those places without
a Python step per item.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")
FIRST_STEP = 64  # slice length a comparison starts with after each difference
LOOKAHEAD = 64  # how far on a list an item is looked for before it counts as new or gone


def difference(old: Sequence[T], new: Sequence[T], *, most: int) -> tuple[list[T], list[T]] | None:
    """The items only `new` lists and those only `old` lists, or None past `most` of them. Items compare
    equal by identity first, then by `==`.

    An item moved within the list may be counted in both; whoever applies the two (the gone ones first) gets
    the same result either way.

    >>> difference((1, 2, 3, 4), (1, 3, 4, 5), most=10)
    ([5], [2])
    >>> difference((1, 2, 3), (4, 5, 6), most=2) is None
    True
    """
    appeared: list[T] = []
    vanished: list[T] = []
    i = j = 0
    while True:
        same = _same_run(old, new, i, j)
        i, j = i + same, j + same
        if i == len(old) or j == len(new) or len(appeared) + len(vanished) > most:
            break
        if (ahead := _find(new, old[i], j + 1)) is not None:  # new ones listed before old[i]
            appeared.extend(new[j:ahead])
            j = ahead
        elif (ahead := _find(old, new[j], i + 1)) is not None:  # old ones no longer listed before new[j]
            vanished.extend(old[i:ahead])
            i = ahead
        else:  # one in place of the other
            vanished.append(old[i])
            appeared.append(new[j])
            i, j = i + 1, j + 1
    appeared.extend(new[j:])
    vanished.extend(old[i:])
    return None if len(appeared) + len(vanished) > most else (appeared, vanished)


def _same_run(old: Sequence[T], new: Sequence[T], i: int, j: int) -> int:
    """How many items from old[i] and new[j] on are equal, pairwise: slices double while they match."""
    length, step = 0, FIRST_STEP
    left = min(len(old) - i, len(new) - j)
    while length < left:
        step = min(step, left - length)
        if old[i + length : i + length + step] == new[j + length : j + length + step]:
            length += step
            step *= 2
        elif step == 1:
            break
        else:
            step //= 2
    return length


def _find(items: Sequence[T], item: T, start: int) -> int | None:
    try:
        return items.index(item, start, start + LOOKAHEAD)
    except ValueError:
        return None
