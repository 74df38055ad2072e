"""The extension points: one named :class:`Registry` per kind of plug-in (docs/extending.md).

MLFF backends, data sources, FED-GRPO rewards and evaluation metrics are looked up by the name the config
gives. Each kind has its registry here, at the bottom of the layers, so that :mod:`elign.config` can check a
name (and the JSON schema can list the names) without importing torch or the package that implements it:

* a built-in entry is *declared* below by its name and the module that registers it, like a Python entry
  point (``"ani2x": "elign.mlff.ani"``); the module is imported the first time the entry is used;
* that module registers the object with its package's decorator (``@register_backend("ani2x")`` in
  :mod:`elign.mlff.registry`, ``@register_source`` in :mod:`elign.data.registry`, ``@register_reward`` in
  :mod:`elign.rl.reward_registry`, ``@register_metric`` in :mod:`elign.metrics.registry`), which calls
  :meth:`Registry.register`;
* code outside elign (a plug-in package, a test) registers with the same decorator; its name is valid in the
  config from then on (the Snakefile's schema file lists the built-in names only).

This module imports nothing from elign.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Registry", "MLFF_BACKENDS", "DATA_SOURCES", "REWARDS", "METRICS", "ALL", "names_key"]


class Registry:
    """Names → objects of one kind, with lazily imported built-ins (module doc).

    kind: what an entry is, for messages ("MLFF backend"); builtin: name → module that registers it;
    fold: how a name is normalised for lookup (MLFF backend names are case-insensitive).
    """

    def __init__(self, kind: str, builtin: Mapping[str, str], fold: Callable[[str], str] = str):
        self.kind, self._fold = kind, fold
        self._builtin = {fold(k): v for k, v in builtin.items()}
        self._entries: dict[str, Any] = {}

    def register(self, name: str, obj: Any) -> Any:
        """Register ``obj`` as ``name``; ValueError if another object already holds the name."""
        key = self._fold(str(name))
        if key in self._entries and self._entries[key] is not obj:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        owner = self._builtin.get(key)
        if owner is not None and getattr(obj, "__module__", owner) != owner:
            raise ValueError(f"{self.kind} {name!r} is already registered (built in, by {owner})")
        self._entries[key] = obj
        return obj

    def decorator(self, name: str) -> Callable[[Any], Any]:
        """``@registry.decorator(name)``: :meth:`register` the decorated function or class as ``name``."""
        return lambda obj: self.register(name, obj)

    def unregister(self, name: str) -> None:
        """Remove a name registered at run time (a plug-in or a test); built-in names stay declared."""
        key = self._fold(str(name))
        if key in self._builtin:
            raise ValueError(f"{self.kind} {name!r} is built in and cannot be unregistered")
        self._entries.pop(key, None)

    def names(self) -> list[str]:
        """Every valid name, sorted: the built-ins and those registered at run time."""
        return sorted({*self._builtin, *self._entries})

    def builtin_names(self) -> list[str]:
        """The built-in names, sorted (the Snakefile's schema file lists these)."""
        return sorted(self._builtin)

    def module_of(self, name: str) -> str | None:
        """The module that registers a built-in name (None for other names)."""
        return self._builtin.get(self._fold(str(name)))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._fold(name) in self.names()

    def unknown(self, name: object) -> str:
        """The message for a name that is not registered, listing the registered ones."""
        return f"unknown {self.kind} {name!r}; registered: {', '.join(map(repr, self.names()))}"

    def check(self, name: str) -> str:
        """``name`` if it is registered exactly as spelled, else ValueError (for config validators)."""
        if name not in self.names():
            raise ValueError(self.unknown(name))
        return name

    def get(self, name: str) -> Any:
        """The object registered as ``name`` (importing its built-in module first); KeyError if unknown."""
        key = self._fold(str(name))
        if key not in self._entries and key in self._builtin:
            importlib.import_module(self._builtin[key])
        if key not in self._entries:
            raise KeyError(self.unknown(name))
        return self._entries[key]

    def schema_enum(self, schema: dict[str, Any]) -> None:
        """pydantic ``json_schema_extra``: the built-in names as the field's ``enum`` (the generated schema file
        is the same whatever was registered at run time; :func:`elign.config.validate_config` widens it)."""
        schema["enum"] = self.builtin_names()


MLFF_BACKENDS = Registry(
    "MLFF backend",
    {
        "ani2x": "elign.mlff.ani",
        "ani1x": "elign.mlff.ani",
        "ani1ccx": "elign.mlff.ani",
        "aimnet2": "elign.mlff.aimnet2",
        "mace-off": "elign.mlff.mace",
        "uma": "elign.mlff.uma",
        "gfn2-xtb": "elign.mlff.xtb",
    },
    fold=str.lower,
)
DATA_SOURCES = Registry(
    "data source",
    {
        "qm9pack": "elign.data.qm9pack",
        "figshare": "elign.data.figshare",
        "geom_drugs": "elign.data.geom",
        "files": "elign.data.files",
    },
)
#: FED-GRPO's two channels; their weights are ``finetune.weight_force`` / ``weight_energy``
REWARDS = Registry("reward", {"force": "elign.rl.rewards", "energy": "elign.rl.rewards"})
#: per-molecule metrics beyond the built-in columns of :func:`elign.metrics.evaluate.evaluate_table`
METRICS = Registry("metric", {})
ALL = (MLFF_BACKENDS, DATA_SOURCES, REWARDS, METRICS)


def names_key() -> tuple[tuple[str, ...], ...]:
    """Every registry's names (a cache key for what depends on them, such as the config's JSON schema)."""
    return tuple(tuple(r.names()) for r in ALL)
