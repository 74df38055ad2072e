"""Options shared by the stage commands: how a stage gets its config."""

from __future__ import annotations

import argparse
import json

from elign.config import ConfigError, ElignConfig, deep_merge, load_config, read_yaml, validate_config


def add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="YAML",
        help="config file(s), deep-merged in order (e.g. config/config.yaml then an experiment)",
    )
    parser.add_argument(
        "--config-json",
        default=None,
        metavar="JSON",
        help="config as a JSON string, merged last (what the Snakemake rules pass)",
    )


def resolve_config(args: argparse.Namespace) -> ElignConfig:
    """Merge ``--config`` files then ``--config-json``; validate; defaults fill the rest.

    Only ``--config-json`` (what a Snakemake rule passes: the keys its stage reads, of a config the Snakefile
    checked whole) is a slice: the semantic rules then read only keys it sets."""
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
