"""Options shared by the stage commands: how a stage gets its config."""

from __future__ import annotations

import argparse
import json

from elign.config import ConfigError, ElignConfig, deep_merge, load_config, read_yaml, validate_config


def add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", action="append", default=[], metavar="YAML",
                        help="config file(s), deep-merged in order (e.g. config/config.yaml then an experiment)")
    parser.add_argument("--config-json", default=None, metavar="JSON",
                        help="config as a JSON string, merged last (what the Snakemake rules pass)")


def resolve_config(args: argparse.Namespace) -> ElignConfig:
    """Merge ``--config`` files then ``--config-json``; validate; defaults fill the rest."""
    merged: dict = {}
    for path in args.config:
        merged = deep_merge(merged, read_yaml(path))
    if args.config_json:
        try:
            override = json.loads(args.config_json)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--config-json is not valid JSON: {exc}") from None
        merged = deep_merge(merged, override)
    if not args.config and not args.config_json:
        return load_config()
    return validate_config(merged, source=" + ".join(args.config + (["--config-json"] if args.config_json else [])))


def named_path(text: str) -> tuple[str, str]:
    """Parse ``NAME=PATH`` (an argparse ``type``), e.g. ``--metrics aligned=results/metrics/qm9/aligned.parquet``."""
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, path
