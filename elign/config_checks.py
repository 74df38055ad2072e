"""Reading config files strictly, and saying which file a bad key came from (used by :mod:`elign.config`).

* :func:`read_yaml`: UTF-8 text, valid YAML without duplicate keys, a mapping at the top, not empty, at most
  :data:`MAX_DEPTH` levels deep and :data:`MAX_NODES` values (YAML aliases can make a small file huge).
  Snakemake refuses an empty config file too, so the CLI and the workflow agree.
* :func:`schema_problems`: the JSON-schema check of the raw values (types as JSON knows them: ``'0'`` is
  not an integer, ``true`` is not a number); run after the pydantic model, whose lax mode would convert.
* :func:`origin_note`: which of the merged files set a key path, for the error message.
"""

from __future__ import annotations

import reprlib
from collections.abc import Iterable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from elign.elements import atomic_number

MAX_DEPTH = 32  # the config is 4 levels deep; far deeper input is a mistake or an attack on the parser
MAX_NODES = 100_000  # values after expanding YAML aliases ("billion laughs")
Origins = list[tuple[str, Any]]  # (file or flag name, its parsed mapping), in merge order

_repr = reprlib.Repr()
_repr.maxstring, _repr.maxother, _repr.maxlist, _repr.maxdict, _repr.maxlevel = 60, 60, 6, 6, 3


class ConfigError(ValueError):
    """A config that does not validate; the message names each key path and what is allowed."""


def short_repr(value: Any) -> str:
    """``repr`` of a config value, shortened so that one bad value gives one readable line."""
    return _repr.repr(value)


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but a key given twice in one mapping is an error (PyYAML keeps the last)."""


def _no_duplicate_keys(loader: _StrictLoader, node: yaml.MappingNode) -> dict:
    seen: dict = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.setdefault(key, key_node.start_mark.line + 1)
        except TypeError:  # an unhashable key: PyYAML's own constructor reports it
            continue
        if first != key_node.start_mark.line + 1:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {first})", key_node.start_mark
            )
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicate_keys)


def _too_big(data: Any) -> str | None:
    """Why ``data`` is too deep or too large to be a config, or None."""
    stack, nodes = [(data, 1)], 0
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if depth > MAX_DEPTH:
            return f"nested more than {MAX_DEPTH} levels deep"
        if nodes > MAX_NODES:
            return f"more than {MAX_NODES} values (after expanding YAML aliases)"
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        stack.extend((child, depth + 1) for child in children)
    return None


def read_yaml(path: str | Path) -> dict:
    """One config file as a mapping; every way it can be unreadable is a :class:`ConfigError` naming it."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not a config file")
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{path}: line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x})") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a config") from None
    if data is None:
        raise ConfigError(
            f"{path}: the file is empty; a config file is a mapping of sections (write {{}} for no settings)"
        )
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(data).__name__}")
    problem = _too_big(data)
    if problem is not None:
        raise ConfigError(f"{path}: {problem}")
    return data


def _number_hint(value: Any) -> str:
    if not isinstance(value, str):
        return ""
    try:
        float(value)
    except ValueError:
        return ""
    if "e" in value.lower() and "." not in value:
        return " (YAML 1.1 reads 1e-4 as text: write 1.0e-4)"
    return " (a number in quotes is text: write it without quotes)"


def schema_problems(data: Any, validator) -> list[tuple[tuple, str]]:
    """(key path, message) of each JSON-schema violation of ``data`` (a ``jsonschema`` validator)."""
    out = []
    for err in sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path]):
        message = err.message if len(err.message) <= 200 else err.message[:200] + "..."
        if err.validator in ("type", "anyOf"):
            message = f"{short_repr(err.instance)} is not of the type the schema allows"
            message += f" ({_schema_types(err.schema)})" if _schema_types(err.schema) else ""
        out.append((tuple(err.absolute_path), message + _number_hint(err.instance)))
    return out


def integral_floats_as_ints(data: Any) -> Any:
    """A copy of ``data`` with every integral float (``2.0``, ``9.2e18``) as an int, the rest as is.

    JSON Schema calls ``2.0`` an integer, and so does pydantic, but pydantic converts a float to an int only
    up to 2**63; as ints, integer fields read them as the schema does, and float fields as before.
    """
    if isinstance(data, dict):
        return {k: integral_floats_as_ints(v) for k, v in data.items()}
    if isinstance(data, list):
        return [integral_floats_as_ints(v) for v in data]
    if isinstance(data, float) and data.is_integer():
        return int(data)
    return data


def no_final_newline(schema: Any) -> Any:
    """``schema`` with ``not: {pattern: "\\n"}`` beside every ``pattern``, in place.

    Pydantic matches ``$`` at the very end of the text (as JSON Schema's ECMA regexes do); Python's ``re``,
    which the ``jsonschema`` package (and so Snakemake) uses, also matches it before a final newline, so
    ``dataset: "qm9\\n"`` would pass the schema and fail the model. Refusing newlines makes the two agree.
    """
    if isinstance(schema, dict):
        for value in schema.values():
            no_final_newline(value)
        if isinstance(schema.get("pattern"), str) and "not" not in schema:
            schema["not"] = {"pattern": "\n"}
    elif isinstance(schema, list):
        for value in schema:
            no_final_newline(value)
    return schema


def _schema_types(schema: dict) -> str:
    options = schema.get("anyOf", [schema])
    names = [
        o.get("type") or ("one of " + ", ".join(map(repr, o["enum"])) if "enum" in o else o.get("const"))
        for o in options
    ]
    return " or ".join(str(n) for n in names if n is not None)


def _sets(data: Any, loc: Iterable) -> bool:
    """Whether ``data`` sets the key path ``loc`` (or replaces a part of it above)."""
    node = data
    for part in loc:
        if isinstance(node, dict):
            if part not in node:
                return False
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int):
            if part >= len(node):
                return False
            node = node[part]
        else:
            return True
    return True


def origin_note(loc: tuple, origins: Origins | None) -> str:
    """`` [in a.yaml]``: the file(s) that set ``loc`` (the last one wins for a single value), or ""."""
    if not origins or not loc:
        return ""
    names = [name for name, data in origins if _sets(data, loc)]
    if not names:
        return " [not set in any file: a default]"
    return (
        f" [in {names[-1]}]"
        if len(names) == 1 or not isinstance(_value(origins, loc), dict)
        else f" [in {', '.join(names)}]"
    )


def _value(origins: Origins, loc: tuple) -> Any:
    for _name, data in reversed(origins):
        if _sets(data, loc):
            node = data
            for part in loc:
                if not isinstance(node, (dict, list)):
                    return node
                node = node[part]
            return node
    return None


# --------------------------------------------------------------------- rules shared by config sections
def known_elements(value: list[str] | None) -> list[str] | None:
    """Element symbols, each known (Z = 1..118) and listed once."""
    for s in value or []:
        try:
            atomic_number(s)
        except KeyError as exc:
            raise ValueError(f"unknown element symbol {s!r}") from exc
    if value is not None and len({s.strip().lower() for s in value}) != len(value):
        raise ValueError(f"element symbols listed twice in {value}")
    return value


def fractions_leave_training(section: Any, where: str) -> Any:
    """valid_fraction + test_fraction < 1, so the random split leaves molecules to train on."""
    total = section.valid_fraction + section.test_fraction
    if total >= 1:
        raise ValueError(
            f"{where}.valid_fraction + {where}.test_fraction = {total:g} leaves no molecules to train "
            "on; the sum must be below 1"
        )
    return section


def dataclass_from_dict(cls, data: Mapping[str, Any], what: str):
    """``cls(**data)`` for a config dataclass; unknown keys are an error naming them and the known ones."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {what} config keys {unknown}; known: {sorted(known)}")
    return cls(**dict(data))
