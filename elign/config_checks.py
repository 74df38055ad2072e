"""Reading config files strictly, and saying which file a bad key came from (used by :mod:`elign.config`).

* :func:`read_yaml`: UTF-8 text, valid YAML without duplicate keys, a mapping at the top, not empty, at most
  :data:`MAX_DEPTH` levels deep and :data:`MAX_NODES` values (YAML aliases can make a small file huge).
  Snakemake refuses an empty config file too, so the CLI and the workflow agree.
* :func:`schema_problems`: the JSON-schema check of the raw values (types as JSON knows them: ``'0'`` is
  not an integer, ``true`` is not a number); run after the pydantic model, whose lax mode would convert.
* :func:`origin_note`: which of the merged files set a key path, for the error message.
"""

from __future__ import annotations

import re
import reprlib
from collections.abc import Callable, Iterable, Mapping
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
    if data is None:  # an empty experiment (no overrides, or only comments) changes nothing
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(data).__name__}")
    problem = _too_big(data)
    if problem is not None:
        raise ConfigError(f"{path}: {problem}")
    return ConfigMapping(data, yaml_surprises(yaml.compose(text, Loader=_StrictLoader)))


# ------------------------------------------------------------------------------ YAML 1.1 surprises
class ConfigMapping(dict):
    """A config file's mapping, with the plain scalars YAML 1.1 reads otherwise than YAML 1.2 (``notes``)."""

    def __init__(self, data: dict, notes: list[Surprise] | None = None):
        super().__init__(data)
        self.notes = notes or []


Surprise = tuple[tuple, str, str]  # (key path, the text as written, what YAML 1.1 made of it: a kind below)
_SEXAGESIMAL = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")
_OCTAL = re.compile(r"[-+]?0[0-7_]+")
_BOOL_WORDS = {"yes", "no", "on", "off"}  # YAML 1.2 (and JSON) read these as text; 1.1 (PyYAML) as booleans


def surprise_kind(text: str, tag: str) -> str | None:
    """'sexagesimal', 'octal' or 'bool word' when YAML 1.1 reads the plain scalar ``text`` (resolved to
    ``tag``) as a number or boolean that YAML 1.2 would not; else None."""
    kind = tag.rsplit(":", 1)[-1]
    if kind in ("int", "float") and _SEXAGESIMAL.fullmatch(text):
        return "sexagesimal"
    if kind == "int" and _OCTAL.fullmatch(text):
        return "octal"
    if kind == "bool" and text.lower() in _BOOL_WORDS:
        return "bool word"
    return None


def yaml_surprises(node: yaml.Node | None) -> list[Surprise]:
    """The surprising plain scalars of a composed YAML document, with their key paths (aliases visited once)."""
    out, seen, stack = [], set(), [(node, ())]
    while stack:
        node, loc = stack.pop()
        if node is None or id(node) in seen or len(loc) > MAX_DEPTH:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            stack.extend((v, loc + (k.value,)) for k, v in node.value if isinstance(k, yaml.ScalarNode))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((v, loc + (i,)) for i, v in enumerate(node.value))
        elif node.style is None and (kind := surprise_kind(node.value, node.tag)):
            out.append((loc, node.value, kind))
    return out


def surprise_hint(text: str, kind: str, value: Any) -> str:
    """What to write instead, for a message about ``text`` that YAML 1.1 read as ``value``."""
    if kind == "bool word":
        return f"YAML 1.1 reads {text} as {str(value).lower()}: quote it, '{text}', if you mean the text"
    meaning = "sexagesimal (base 60)" if kind == "sexagesimal" else "octal (base 8)"
    return (
        f"YAML 1.1 reads {text} as the {meaning} number {value}: write the number you mean without "
        f"{'colons' if kind == 'sexagesimal' else 'a leading zero'}, or quote it to mean text"
    )


def yaml_scalars(data: Any, accepts: Callable[[tuple, Any], bool], loc: tuple = ()) -> tuple[Any, list[Surprise]]:
    """Snakemake's ``--config`` overrides read the way the user typed them: each string inside becomes the
    YAML scalar it spells (``'30'`` -> 30, ``'null'`` -> None), unless only the text is valid at its key
    (``accepts(key path, value)``: the schema's check). Snakemake parses a nested ``--config`` value with
    YAML's BaseLoader, so every scalar in it arrives as a string."""
    if isinstance(data, dict):
        pairs = [(k, yaml_scalars(v, accepts, loc + (k,))) for k, v in data.items()]
        return {k: v for k, (v, _) in pairs}, [n for _, (_, notes) in pairs for n in notes]
    if isinstance(data, list):
        items = [yaml_scalars(v, accepts, loc + (i,)) for i, v in enumerate(data)]
        return [v for v, _ in items], [n for _, notes in items for n in notes]
    if not isinstance(data, str):
        return data, []
    tag = _StrictLoader.resolve(_StrictLoader, yaml.ScalarNode, data, (True, False))
    if tag == "tag:yaml.org,2002:str":
        return data, []
    value = yaml.load(data, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass; one plain scalar)
    if not accepts(loc, value) and accepts(loc, data):
        return data, []
    kind = surprise_kind(data, tag)
    return value, [(loc, data, kind)] if kind else []


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


# ------------------------------------------------------------------- the semantic stage's bookkeeping
def key_loc(key: str) -> tuple:
    """``"data.files.paths.0"`` -> ``("data", "files", "paths", 0)``."""
    return tuple(int(p) if p.isdigit() else p for p in key.split("."))


def trusted(key: str, skipped: list[tuple], origins: Origins | None, whole: bool) -> bool:
    """Whether a semantic rule may read ``key``: its value (or one above or below it) was not rejected, and
    the config is the whole run's or a file or flag set the key."""
    loc = key_loc(key)
    if any(s[: len(loc)] == loc or loc[: len(s)] == s for s in skipped):
        return False
    return whole or any(_sets(data, loc) for _, data in origins or [])


def without_keys(data: dict, locs: Iterable[tuple]) -> dict:
    """A copy of ``data`` without the deepest mapping key on each path of ``locs`` (a rejected value)."""
    import copy

    out = copy.deepcopy(data)
    for loc in locs:
        node, parent, key = out, None, None
        for part in loc:
            if isinstance(node, dict) and part in node:
                parent, key, node = node, part, node[part]
            elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
                node = node[part]
            else:
                break
        if parent is not None:
            parent.pop(key, None)
    return out


def surprise_lines(lines: list[tuple[tuple, str]], origins: Origins | None) -> list[tuple[tuple, str]]:
    """YAML 1.1 readings (:func:`surprise_kind`) in the files or flags that set the key: a hint on the line
    of a value rejected there (in place), else a line of its own for a number read from colons or a leading
    zero. A boolean from ``yes``/``no``/``on``/``off`` where a boolean is allowed is what the user meant."""
    out = []
    for name, data in origins or []:
        for loc, text, kind in getattr(data, "notes", ()):
            if [n for n, d in origins if _sets(d, loc)][-1] != name:
                continue  # a later file or flag replaced it
            hint = surprise_hint(text, kind, _value([(name, data)], loc))
            hits = [i for i, (at, _) in enumerate(lines) if at[: len(loc)] == loc]
            for i in hits:
                lines[i] = (lines[i][0], f"{lines[i][1]} ({hint})")
            if not hits and kind != "bool word":
                out.append((loc, f"  {'.'.join(map(str, loc))}: {text}: {hint} [in {name}]"))
    return out


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
