"""The options stage commands share, each defined once (:data:`SHARED_OPTIONS`); the config; NAME=PATH lists."""

from __future__ import annotations

import argparse
import dataclasses
import json

from elign.config import ConfigError, ElignConfig, deep_merge, load_config, read_yaml, validate_config

#: options several stages share: flag -> ``add_argument`` keywords (:func:`add_shared_options`)
SHARED_OPTIONS: dict[str, dict] = {
    "--config": {
        "action": "append",
        "default": [],
        "metavar": "YAML",
        "help": "config file(s), deep-merged in order (e.g. config/config.yaml then an experiment)",
    },
    "--config-json": {
        "metavar": "JSON",
        "help": "config as a JSON string, merged last (what the Snakemake rules pass)",
    },
    "--threads": {"type": int, "default": None, "help": "CPU threads for torch (default: torch's)"},
    "--dtype": {
        "choices": ("float32", "float64"),
        "default": "float32",
        "help": "model and compute precision (float64 for exact comparisons in tests)",
    },
    "--no-progress": {"action": "store_true", "help": "no progress bar on stderr"},
    "--max-minutes": {
        "type": float,
        "default": None,
        "help": "end this sitting after so many minutes (finetune: after the iteration that passes them) with a "
        "resume file (<out>.partial); rerun the same command to go on",
    },
}


def add_config_options(parser: argparse.ArgumentParser) -> None:
    add_shared_options(parser, "--config", "--config-json")


def resolve_config(args: argparse.Namespace) -> ElignConfig:
    """Merge ``--config`` files then ``--config-json``; validate; defaults fill the rest. Only ``--config-json``
    (a rule's slice of a config the Snakefile checked whole) is partial: the semantic rules read only its keys."""
    origins = [(path, read_yaml(path)) for path in args.config]
    if args.config_json:
        try:
            override = json.loads(args.config_json)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--config-json is not valid JSON: {exc}") from None
        if not isinstance(override, dict):
            raise ConfigError(f"--config-json must be a JSON object of sections, got {type(override).__name__}")
        origins.append(("--config-json", override))
    if not origins:
        return load_config()
    merged: dict = {}
    for _, data in origins:
        merged = deep_merge(merged, data)
    source = " + ".join(name for name, _ in origins)
    return validate_config(merged, source=source, origins=origins, whole=bool(args.config))


def named_path(text: str) -> tuple[str, str]:
    """Parse ``NAME=PATH`` (an argparse ``type``), e.g. ``--metrics aligned=results/metrics/qm9/aligned.parquet``."""
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, path


def named_paths(pairs: list[tuple[str, str]] | None, flag: str) -> dict[str, str]:
    """Repeated ``NAME=PATH`` options -> ``{name: path}`` in the given order; a name given twice is an error."""
    out: dict[str, str] = {}
    for name, path in pairs or []:
        if name in out:
            raise ConfigError(f"{flag} {name}=...: given twice")
        out[name] = path
    return out


def set_threads(threads: int | None) -> None:
    """torch's intra-op threads from ``--threads`` (at least 1); None leaves torch's default."""
    if threads is not None:
        import torch  # not at import: ``elign --help`` stays quick

        torch.set_num_threads(max(1, threads))


def add_shared_options(parser: argparse.ArgumentParser, *flags: str, **overrides) -> None:
    """Add options of :data:`SHARED_OPTIONS` by flag; ``overrides`` replace keywords (``"--threads", default=1``)."""
    for flag in flags:
        parser.add_argument(flag, **{**SHARED_OPTIONS[flag], **overrides})


def request_from_args(cls, args: argparse.Namespace, **values):
    """Request dataclass ``cls`` from the options of the same names (``--models-dir``: models_dir) and ``values``."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{**{k: v for k, v in vars(args).items() if k in names}, **values})
