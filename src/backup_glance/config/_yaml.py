"""YAML 1.2 for configuration files: plain values plus the line and column of every key and list item.

PyYAML speaks YAML 1.1, where `off`, `no`, `on` and `yes` are booleans and `12:30:00` is a number: a service
called `off` or a Norwegian country code would silently change type. Here only the YAML 1.2 core schema is
resolved (`true`/`false`, `null`/`~`, decimal, `0o` and `0x` integers, floats); everything else is a string.
PyYAML's composer keeps a mark on every node, so each key and item can be pointed at exactly.

    doc = load_yaml("sources:\\n  - name: off\\n")
    doc.data == {"sources": [{"name": "off"}]}
    doc.positions[("sources", 0, "name")] == (2, 5)     # 1-based line and column of the key
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

KeyPath = tuple[str | int, ...]
Position = tuple[int, int]  # 1-based line and column
ScalarHook = Callable[[str, KeyPath, Position], "str | None"]

MAX_NODES = 200_000  # an alias bomb ("billion laughs") expands to far more; a real config has a few hundred
MAX_DEPTH = 64  # nesting levels; a real config has under ten, and Python's stack ends somewhere near 300
_LONGEST_NUMBER = 1000  # characters of a whole number (a numeric token is a few dozen)

_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_MERGE = "tag:yaml.org,2002:merge"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"


class _Core12Loader(yaml.SafeLoader):
    """Resolves plain scalars by the YAML 1.2 core schema only."""


_Core12Loader.yaml_implicit_resolvers = {}  # its own table, not a copy of YAML 1.1's


for _tag, _pattern, _first in (
    (_BOOL, r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    (_NULL, r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    (_INT, r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    (
        _FLOAT,
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+0123456789.",
    ),
    (_MERGE, r"^<<$", "<"),
):
    _Core12Loader.add_implicit_resolver(_tag, re.compile(_pattern), list(_first))


class YamlProblem(Exception):
    """The text is not YAML we accept; `line` and `column` are 1-based (0 when unknown)."""

    def __init__(self, message: str, line: int = 0, column: int = 0, path: KeyPath = ()) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column
        self.path = path  # the key it is about, when known


@dataclass
class Document:
    data: Any
    positions: dict[KeyPath, Position] = field(default_factory=dict)
    problems: list[YamlProblem] = field(default_factory=list)  # e.g. duplicate keys: reported, parsing goes on


def load_yaml(
    text: str, *, on_scalar: ScalarHook | None = None, on_key: Callable[[str], str] | None = None
) -> Document:
    """Parse one YAML document. `on_scalar` may rewrite a string value (variable substitution; None = keep it) and
    `on_key` a key; a value they rewrite is always a string."""
    try:
        root = yaml.compose(text, Loader=_Core12Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
        raise YamlProblem(_syntax_message(exc), line, column) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow, e.g. in a binary file
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise YamlProblem("not valid YAML: a control character here (is this a binary file?)", line, column) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(f"not valid YAML: {str(exc).splitlines()[0]}") from None
    except RecursionError:  # PyYAML composes nested values recursively
        raise YamlProblem(f"values nested too deeply (a configuration needs fewer than {MAX_DEPTH} levels)") from None
    builder = _Builder(on_scalar, on_key)
    document = Document(data=None)
    if root is not None:
        document.data = builder.build(root, ())
    document.positions = builder.positions
    document.problems = builder.problems
    return document


def _syntax_message(exc: yaml.MarkedYAMLError) -> str:
    problem = exc.problem or "syntax error"
    if "'\\t'" in problem:
        return "not valid YAML: a tab character here; indent with spaces"
    if exc.context == "expected a single document in the stream":
        return "not valid YAML: a second document starts here (after '---'); the file holds one"
    context = f" {exc.context}" if exc.context else ""
    return f"not valid YAML: {problem}{context}"


class _Builder:
    def __init__(self, on_scalar: ScalarHook | None, on_key: Callable[[str], str] | None) -> None:
        self.positions: dict[KeyPath, Position] = {}
        self.problems: list[YamlProblem] = []
        self._on_scalar = on_scalar
        self._on_key = on_key
        self._count = 0
        self._open: set[int] = set()  # nodes being built: an alias back to one of them would recurse forever

    def build(self, node: Node, path: KeyPath) -> Any:
        self._count += 1
        if self._count > MAX_NODES:
            raise YamlProblem(f"more than {MAX_NODES} values (an alias expanding without end?)", *_at(node))
        if id(node) in self._open:
            raise YamlProblem("an alias refers to the value that contains it", *_at(node))
        if len(path) > MAX_DEPTH:
            raise YamlProblem(f"values nested more than {MAX_DEPTH} levels deep", *_at(node), path=path[:3])
        self._open.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self._mapping(node, path)
            if isinstance(node, SequenceNode):
                if node.tag != _SEQ:
                    raise YamlProblem(f"unsupported tag {node.tag}", *_at(node))
                items = []
                for index, item in enumerate(node.value):
                    self.positions[(*path, index)] = _at(item)
                    items.append(self.build(item, (*path, index)))
                return items
            assert isinstance(node, ScalarNode)
            return self._scalar(node, path)
        finally:
            self._open.discard(id(node))

    def _mapping(self, node: MappingNode, path: KeyPath) -> dict[str, Any]:
        if node.tag != _MAP:
            raise YamlProblem(f"unsupported tag {node.tag}", *_at(node))
        result: dict[str, Any] = {}
        merged: list[tuple[str, Any, Position]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                merged += self._merge_sources(value_node, path)
                continue
            if not isinstance(key_node, ScalarNode):
                raise YamlProblem("a key must be plain text, not a list or a mapping", *_at(key_node))
            _check_characters(key_node.value, key_node, path, " in a key")
            key = self._on_key(key_node.value) if self._on_key else key_node.value
            if key in result:
                first = self.positions[(*path, key)]
                self.problems.append(
                    YamlProblem(f"key '{key}' appears twice (first on line {first[0]}); keep one", *_at(key_node))
                )
                continue
            self.positions[(*path, key)] = _at(key_node)
            result[key] = self.build(value_node, (*path, key))
        for key, value, position in merged:  # explicit keys win over merged ones
            if key not in result:
                result[key] = value
                self.positions.setdefault((*path, key), position)
        return result

    def _merge_sources(self, node: Node, path: KeyPath) -> list[tuple[str, Any, Position]]:
        sources = node.value if isinstance(node, SequenceNode) else [node]
        entries: list[tuple[str, Any, Position]] = []
        for source in sources:
            if not isinstance(source, MappingNode):
                raise YamlProblem("'<<' merges mappings only", *_at(source))
            value = self.build(source, path)
            entries += [(k, v, self.positions.get((*path, k), _at(source))) for k, v in value.items()]
        return entries

    def _scalar(self, node: ScalarNode, path: KeyPath) -> Any:
        text: str = node.value
        _check_characters(text, node, path)
        if self._on_scalar is not None and node.tag == _STR:
            rewritten = self._on_scalar(text, path, _at(node))
            if rewritten is not None:
                _check_characters(rewritten, node, path, " (in the value a ${...} reference gave)")
                return rewritten
        tag = node.tag
        if tag == _STR:
            return text
        if tag == _NULL:
            return None
        if tag == _BOOL:
            return text.lower() == "true"
        if tag == _INT:
            return _integer(text, node)
        if tag == _FLOAT:
            return _float(text, node)
        raise YamlProblem(f"unsupported tag {tag} (write the value as plain text)", *_at(node))


_UNUSABLE = re.compile("[\x00\ud800-\udfff]")


def _check_characters(text: str, node: Node, path: KeyPath, where: str = "") -> None:
    """NUL and lone surrogates (a "\\ud800" escape) are no text any program can pass on; refuse them here."""
    found = _UNUSABLE.search(text)
    if found is None:
        return
    char = found.group()
    if char == "\x00":
        message = "a NUL character (\\0) here" + where + "; remove it"
    else:
        message = (
            f"a lone surrogate (\\u{ord(char):04x}) here{where}: half of a character, not text; "
            "write the character itself or its \\U00XXXXXX escape"
        )
    raise YamlProblem(message, *_at(node), path=path)


def _integer(text: str, node: ScalarNode) -> int:
    if len(text) > _LONGEST_NUMBER:  # Python refuses decimals past 4,300 digits
        too_long = f"a number {len(text):,} characters long: no setting takes one that long (is a quote missing?)"
        raise YamlProblem(too_long, *_at(node))
    try:
        if text.startswith("0o"):
            return int(text[2:], 8)
        if text.startswith("0x"):
            return int(text[2:], 16)
        return int(text, 10)
    except ValueError:  # an explicit !!int on something else
        raise YamlProblem(f"not a whole number: {text[:40]!r}", *_at(node)) from None


def _float(text: str, node: ScalarNode) -> float:
    lowered = text.lower()
    if lowered.endswith(".inf"):
        return -math.inf if lowered.startswith("-") else math.inf
    if lowered == ".nan":
        return math.nan
    try:
        return float(text)
    except ValueError:  # an explicit !!float on something else
        raise YamlProblem(f"not a number: {text[:40]!r}", *_at(node)) from None


def dotted(path: KeyPath) -> str:
    """A key path as a person writes it.

    >>> dotted(("sources", 0, "token_secret")), dotted(())
    ('sources[0].token_secret', '(top level)')
    """
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _at(node: Node) -> Position:
    return node.start_mark.line + 1, node.start_mark.column + 1


__all__ = ["Document", "KeyPath", "Position", "YamlProblem", "dotted", "load_yaml"]
