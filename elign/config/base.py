"""The base of every config section, and what several sections share."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

SEED_MAX = 2**32 - 1  # numpy's legacy seeding range; seed + any offset stays far inside torch's and Parquet's int64


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, values are checked strictly.

    Floats must be finite (``.inf``/``.nan`` in YAML are errors); the JSON types of the values are checked
    against the generated schema too (:func:`validate_config`), so ``seed: '0'`` or ``seed: true`` is an
    error here exactly as in the Snakefile's schema validation.
    """

    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)


def require_for_kind(source: Any, need: dict[str, tuple[str, ...]], where: str) -> Any:
    """``source`` after checking that the keys its ``kind`` needs are set (an experiment may switch the kind
    of a merged config: keys another kind uses are ignored)."""
    missing = [k for k in need[source.kind] if getattr(source, k) is None]
    if missing:
        raise ValueError(f"{where}.kind {source.kind!r} needs {' and '.join(missing)}")
    return source
