"""Pydantic's findings, said the way a person editing YAML needs them: which key, what is wrong, what to write.

No regular expressions, no "Input should be"; unknown keys and source types come with a "did you mean".
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from ._schema import PROTECTION_OFF, PROTECTION_POLICY, SOURCE_TYPES, Config, spelled
from ._yaml import KeyPath

_KINDS = {
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be text",
    "list_type": "must be a list, e.g. [a, b] or one '- item' per line",
    "dict_type": "must be a mapping of keys to values",
    "model_type": "must be a mapping of keys to values",
    "model_attributes_type": "must be a mapping of keys to values",
    "date_parsing": "must be a date like 2027-01-01",
    "date_from_datetime_parsing": "must be a date like 2027-01-01 or a time like 2027-01-01T08:00",
    "datetime_parsing": "must be a time like 2027-01-01T08:00",
    "date_type": "must be a date like 2027-01-01",
    "datetime_type": "must be a time like 2027-01-01T08:00",
    "finite_number": "must be a finite number",
}


def translate(error: ValidationError, data: Any) -> list[tuple[KeyPath, str]]:
    """One (key path, message) per problem, in the order pydantic found them."""
    problems = []
    for item in error.errors():
        loc = _strip_union_tags(tuple(item["loc"]), data)
        if item["type"] == "union_tag_invalid":  # at the `type:` key that names it, not at the item's first key
            loc = (*loc, "type")
        problems.append((loc, _message(item, loc, data)))
        if item["type"] in ("union_tag_invalid", "union_tag_not_found"):
            problems += _unknown_to_every_type(loc[:-1] if item["type"] == "union_tag_invalid" else loc, data)
    return problems


def _unknown_to_every_type(path: KeyPath, data: Any) -> list[tuple[KeyPath, str]]:
    """A source without a known type is not read further, yet a key no type knows is wrong whatever the type
    (`typ: pbs`, `tokn: ...`): named now, not after the type is fixed."""
    item = _at(data, path)
    if not isinstance(item, dict):
        return []
    known = sorted({key for model in SOURCE_TYPES.values() for key in model.model_fields})
    return [
        ((*path, key), f"{UNKNOWN_KEY} '{key}'" + _did_you_mean(key, known))
        for key in item
        if isinstance(key, str) and key not in known
    ]


def _at(data: Any, path: KeyPath) -> Any:
    for part in path:
        data = _child(data, part)
    return data


def _strip_union_tags(loc: tuple[Any, ...], data: Any) -> KeyPath:
    """Pydantic puts the tag of a tagged union ("pbs") into the location of errors inside it."""
    out: list[str | int] = []
    for index, part in enumerate(loc):
        if index > 0 and isinstance(loc[index - 1], int) and part in SOURCE_TYPES and out[:1] == ["sources"]:
            continue
        if isinstance(part, str) and (part.startswith("function-") or part in ("json-or-python[json=...]",)):
            continue
        if index > 0 and loc[index - 1] == "protection" and part in (PROTECTION_POLICY, PROTECTION_OFF):
            continue
        out.append(part)
    return tuple(out)


UNKNOWN_KEY = "unknown key"  # a finding about the key itself, whatever its value (read or not)


def _message(item: Any, loc: KeyPath, data: Any) -> str:
    kind = item["type"]
    ctx = item.get("ctx") or {}
    if kind == "extra_forbidden":
        key = str(loc[-1]) if loc else "?"
        return f"{UNKNOWN_KEY} '{key}'" + _did_you_mean(key, allowed_keys(loc[:-1], data))
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        tag = str(ctx.get("tag", ""))
        return f"unknown source type '{tag}'" + _did_you_mean(tag, list(SOURCE_TYPES), listing=True)
    if kind == "union_tag_not_found":
        return "type is required: one of " + ", ".join(SOURCE_TYPES)
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '')}, not {_shown(item.get('input'))}"
    if kind in ("greater_than_equal", "greater_than"):
        return f"must be at least {ctx.get('ge', ctx.get('gt'))}, not {_shown(item.get('input'))}"
    if kind in ("less_than_equal", "less_than"):
        return f"must be at most {ctx.get('le', ctx.get('lt'))}, not {_shown(item.get('input'))}"
    if kind == "string_too_short" and ctx.get("min_length") == 1:
        return "must not be empty"
    if kind in _KINDS:
        return f"{_KINDS[kind]}, not {_shown(item.get('input'))}"
    message = str(item["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return message.replace("Input should be", "must be")


def _shown(value: object) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = spelled(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _did_you_mean(word: str, choices: list[str], *, listing: bool = False) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    hint = f" — did you mean '{close[0]}'?" if close else ""
    if listing or (not close and choices and len(choices) <= 12):
        hint += " (known: " + ", ".join(choices) + ")"
    return hint


def allowed_keys(path: KeyPath, data: Any) -> list[str]:
    """The keys the configuration accepts at `path` (empty when it is not a mapping of known keys)."""
    model = model_at(path, data)
    return list(model.model_fields) if model is not None else []


def model_at(path: KeyPath, data: Any) -> type[BaseModel] | None:
    """Which record the mapping at `path` is parsed into, following the data for tagged unions."""
    model: type[BaseModel] | None = Config
    annotation: Any = None
    value = data
    for part in path:
        value = _child(value, part)
        if isinstance(part, str):
            if model is None or part not in model.model_fields:
                return None
            annotation = model.model_fields[part].annotation
        elif annotation is not None and typing.get_origin(_unwrap(annotation)) is list:
            annotation = typing.get_args(_unwrap(annotation))[0]
        else:
            return None
        model = _pick_model(annotation, value)
    return model


def _child(value: Any, part: str | int) -> Any:
    if isinstance(part, int):
        return value[part] if isinstance(value, list) and -len(value) <= part < len(value) else None
    return value.get(part) if isinstance(value, dict) else None


def _unwrap(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _pick_model(annotation: Any, value: Any) -> type[BaseModel] | None:
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        models = _models_in(annotation)
        if len(models) == 1:
            return models[0]
        kind = value.get("type") if isinstance(value, dict) else None
        return SOURCE_TYPES.get(kind) if isinstance(kind, str) else None
    return None


def _models_in(union: Any) -> list[type[BaseModel]]:
    """The records a union (nested ones and tagged members too) can be parsed into."""
    found: list[type[BaseModel]] = []
    for member in map(_unwrap, typing.get_args(union)):
        if isinstance(member, type) and issubclass(member, BaseModel):
            found.append(member)
        elif typing.get_origin(member) in (typing.Union, types.UnionType):
            found += _models_in(member)
    return found


__all__ = ["allowed_keys", "model_at", "translate"]
