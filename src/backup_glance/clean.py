"""Text from outside (a source's answer, an error body) made safe to store, render and log. No imports of ours.

>>> clean_text("a\\ud800b\\nc\\x1b[2J" + "x" * 10, limit=12)
'a\\ufffdb c[2Jxxx…'
"""

from __future__ import annotations

import re

MARK = "…"  # where text was cut
MAX_NAME = 200
_LONGEST_NUMBER_BITS = 1000  # about 300 digits: longer numbers are shown by their size
_DIGITS_PER_BIT = 0.30103  # log10(2)

# Control characters, and the bidirectional overrides and isolates that make text display in another order than
# it reads (a name "\u202egnp.exe" shows as "exe.png").
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
_LINE_BREAKS = re.compile(r"[\r\n\t]+")
_HIDDEN = re.compile(_CONTROL.pattern[:-1] + r"\t\n\r]")  # either of the two
_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(value: object, limit: int = MAX_NAME) -> str:
    """Valid Unicode, no control characters (line breaks become spaces), at most `limit` characters."""
    text = value if isinstance(value, str) else str(value)
    if not text.isascii():
        # Valid JSON can carry a lone surrogate; SQLite and every UTF-8 output refuse it.
        text = _SURROGATE.sub("\ufffd", text)
    text = _CONTROL.sub("", _LINE_BREAKS.sub(" ", text))
    return text if len(text) <= limit else text[: limit - 1] + MARK


def hidden_character(text: str) -> str | None:
    """The first character of `text` that does not show as itself (a control character, a line break or tab, a
    direction override), as "U+202E"; None when there is none.

    >>> hidden_character("Nextcloud · ☁"), hidden_character("va\\u202eult"), hidden_character("a\\tb")
    (None, 'U+202E', 'U+0009')
    """
    found = _HIDDEN.search(text)
    return None if found is None else f"U+{ord(found.group()):04X}"


def quoted(value: object, limit: int = 40) -> str:
    """A value from outside as a message quotes it: its repr (quotes, a lone surrogate written as \\ud800),
    cleaned and at most `limit` characters. A long string is cut before its repr is made (one may be megabytes)."""
    return clean_text(safe_repr(value[: limit * 2] if isinstance(value, str) else value), limit)


def safe_repr(value: object) -> str:
    """`repr`, except of a whole number too long to print (Python refuses past 4,300 digits): its size instead.

    >>> safe_repr(2**64), safe_repr(16**5000)
    ('18446744073709551616', 'a number of about 6,021 digits')
    """
    if isinstance(value, int) and value.bit_length() > _LONGEST_NUMBER_BITS:
        return f"a number of about {int(value.bit_length() * _DIGITS_PER_BIT) + 1:,} digits"
    return repr(value)
