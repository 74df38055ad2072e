"""The whole run's config (:class:`ElignConfig`): reading YAML files, validating (the model, the JSON schema, the
semantic rules) and the JSON schema itself."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError

from elign.config.base import SEED_MAX, Section
from elign.config.data import DataConfig
from elign.config.evaluation import DftConfig, EvaluateConfig, ReportConfig, SampleConfig
from elign.config.finetune import FinetuneConfig
from elign.config.pretrain import PretrainConfig
from elign.config_checks import (
    ConfigError,
    ConfigMapping,
    Origins,
    integral_floats_as_ints,
    key_loc,
    no_final_newline,
    origin_note,
    read_yaml,
    schema_problems,
    short_repr,
    surprise_lines,
    trusted,
    without_keys,
    yaml_scalars,
)
from elign.config_rules import semantic_problems
from elign.registries import ALL as REGISTRIES
from elign.registries import names_key


class ElignConfig(Section):
    """The whole run. Every section has defaults; ``config/config.yaml`` is the embedded default run."""

    seed: int = Field(0, ge=0, le=SEED_MAX, description="master seed; each stage derives its own from it")
    data: DataConfig = DataConfig()
    pretrain: PretrainConfig = PretrainConfig()
    finetune: FinetuneConfig = FinetuneConfig()
    sample: SampleConfig = SampleConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    dft: DftConfig = DftConfig()
    report: ReportConfig = ReportConfig()


# ---------------------------------------------------------------------------------------- loading
def deep_merge(base: dict, override: dict) -> dict:
    """Recursively merge ``override`` onto a copy of ``base`` (dicts merge, everything else replaces)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_config(*paths: str | Path) -> ElignConfig:
    """Read and deep-merge YAML files in order (later ones override), then validate."""
    files = [(str(path), read_yaml(path)) for path in paths]
    merged: dict = {}
    for _, data in files:
        merged = deep_merge(merged, data)
    return validate_config(merged, source=" + ".join(str(p) for p in paths) or "config", origins=files)


def validate_config(
    data: dict[str, Any], source: str = "config", origins: Origins | None = None, whole: bool = True
) -> ElignConfig:
    """The typed config of ``data``: the pydantic model, the JSON schema's types (they must agree), YAML 1.1
    readings and the semantic rules (:mod:`elign.config_rules`); every problem in one :class:`ConfigError`.

    origins: ``(file name, its mapping)`` in merge order, so that each message says which file set the key.
    whole: ``data`` is the run's whole config; false for a stage's slice (``--config-json``), where a rule
    runs only if each key it reads is set in ``origins`` (the defaults of the rest are not the run's values).
    """
    if not isinstance(data, dict):
        raise ConfigError(
            f"invalid config ({source}): the top level must be a mapping of sections, got {type(data).__name__}"
        )
    plain = integral_floats_as_ints(data)
    try:
        config, model_errors = ElignConfig.model_validate(plain), None
    except ValidationError as exc:
        config, model_errors = None, exc
    lines = _model_lines(model_errors, origins) if model_errors else []
    reported = [loc for loc, _ in lines]
    lines += [
        (loc, f"  {'.'.join(map(str, loc)) or '<top level>'}: {msg}{origin_note(loc, origins)}")
        for loc, msg in schema_problems(data, _schema_validator())
        if not any(seen[: len(loc)] == loc for seen in reported)
    ]  # the model said it already, at or below
    lines += surprise_lines(lines, origins)
    skipped = [loc for loc, _ in lines]
    if config is None:
        config = _best_effort(plain, reported)
    if config is not None:
        for keys, message in semantic_problems(config, lambda key: trusted(key, skipped, origins, whole)):
            lines.append((key_loc(keys[0]), f"  {', '.join(keys)}: {message}{origin_note(key_loc(keys[0]), origins)}"))
    if lines:
        raise ConfigError("\n".join([f"invalid config ({source}):"] + [line for _, line in lines]))
    return config


def _best_effort(data: dict, bad: list[tuple]) -> ElignConfig | None:
    """The config without the rejected keys (their defaults instead), so that the semantic rules can still
    report on the rest in the same message; None when that does not validate either."""
    for _ in range(3):
        data = without_keys(data, bad)
        try:
            return ElignConfig.model_validate(data)
        except ValidationError as exc:
            bad = [tuple(err["loc"]) for err in exc.errors()]
    return None


def snakemake_overrides(overrides: dict) -> ConfigMapping:
    """Snakemake's ``--config`` overrides read the way the user typed them (:func:`yaml_scalars`)."""
    validator = _schema_validator()

    def accepts(loc: tuple, value: Any) -> bool:
        probe = tuple(0 if isinstance(part, int) else part for part in loc)
        node = value
        for part in reversed(probe):
            node = [node] if isinstance(part, int) else {part: node}
        return not any(tuple(e.absolute_path)[: len(probe)] == probe for e in validator.iter_errors(node))

    data, notes = yaml_scalars(overrides, accepts)
    return ConfigMapping(data, notes)


def format_validation_error(exc: ValidationError, source: str, origins: Origins | None = None) -> str:
    """One line per problem: ``key.path: problem (allowed: ...) [in the file that set it]``."""
    return "\n".join([f"invalid config ({source}):"] + [line for _, line in _model_lines(exc, origins)])


def _model_lines(exc: ValidationError, origins: Origins | None) -> list[tuple[tuple, str]]:
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        path = ".".join(str(p) for p in loc) or "<top level>"
        where = origin_note(loc, origins)
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(_allowed_keys(err["loc"][:-1]))
            lines.append((loc, f"  {path}: unknown key (allowed here: {allowed}){where}"))
        else:
            lines.append((loc, f"  {path}: {err['msg']} (got {short_repr(err.get('input'))}){where}"))
    return lines


def _allowed_keys(loc: tuple) -> list[str]:
    model: type[BaseModel] = ElignConfig
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return []
        model = field.annotation
    return list(model.model_fields)


def _schema_validator():
    """The validator of the config's JSON schema, with the names registered at run time (plug-ins, tests) added to
    the registries' enums (the schema file lists the built-in names only)."""
    return _schema_validator_for(names_key())


@functools.lru_cache(maxsize=4)
def _schema_validator_for(_names: tuple) -> Any:
    import jsonschema

    return jsonschema.Draft202012Validator(_widen_registry_enums(json_schema()))


def _widen_registry_enums(node: Any) -> Any:
    """Every ``enum`` that lists a registry's built-in names lists all its registered names instead."""
    if isinstance(node, list):
        return [_widen_registry_enums(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _widen_registry_enums(v) for k, v in node.items()}
    for registry in REGISTRIES:
        if out.get("enum") == registry.builtin_names() and out["enum"]:
            out["enum"] = registry.names()
    return out


def json_schema() -> dict:
    """The JSON schema of :class:`ElignConfig` (what the Snakefile validates against)."""
    schema = _null_first(no_final_newline(ElignConfig.model_json_schema()))
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def _null_first(node: Any) -> Any:
    """Every ``anyOf`` that allows null tries null first.

    Snakemake fills schema defaults while it validates (``validate(config, set_default=True)``): it would
    descend into an optional section's ``$ref`` with the value None and fail on ``None.setdefault``
    (e.g. ``pretrain.lr_decay: null``). ``anyOf`` stops at the first branch that holds, so null goes first.
    """
    if isinstance(node, list):
        return [_null_first(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _null_first(v) for k, v in node.items()}
    if "anyOf" in out:
        out["anyOf"] = sorted(out["anyOf"], key=lambda branch: branch != {"type": "null"})
    return out


def schema_yaml() -> str:
    header = "# Generated by `elign config-schema` from elign/config/. Do not edit by hand.\n"
    return header + yaml.safe_dump(json_schema(), sort_keys=False, width=100)
