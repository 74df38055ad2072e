"""``elign config-schema``: write the JSON schema (YAML) of the config, generated from elign/config/."""

from __future__ import annotations

import argparse
import sys

from elign.config import schema_yaml
from elign.io.atomic import write_text_atomic

DEFAULT_PATH = "workflow/schemas/config.schema.yaml"


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help=f"write the config JSON schema (default {DEFAULT_PATH}; '-' for stdout)")
    p.add_argument("--out", default=DEFAULT_PATH)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.out == "-":
        sys.stdout.write(schema_yaml())
    else:
        write_text_atomic(args.out, schema_yaml())
    return 0
