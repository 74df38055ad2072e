"""``elign <stage> ...``: the command line every Snakemake rule calls.

Each stage module under ``elign.cli`` has ``add_parser(subparsers)`` (parsing) and ``run(args)`` (work).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback

from elign import __version__
from elign.config import ConfigError
from elign.io.errors import DataFormatError
from elign.numerics import pin_cpu_numerics

STAGES = {
    "prepare": "elign.cli.prepare",
    "sample": "elign.cli.sample",
    "time-sampling": "elign.cli.time_sampling",
    "import-edm": "elign.cli.import_edm",
    "pretrain": "elign.cli.pretrain",
    "models": "elign.cli.models",
    "finetune": "elign.cli.finetune",
    "evaluate": "elign.cli.evaluate",
    "summarize": "elign.cli.evaluate:add_summarize_parser",
    "dft": "elign.cli.dft",
    "dft-gather": "elign.cli.dft:add_gather_parser",
    "dft-select": "elign.cli.dft:add_select_parser",
    "stats": "elign.cli.stats",
    "report": "elign.cli.report",
    "config-schema": "elign.cli.schema",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="elign", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"elign {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="on an input or config error, show the Python traceback after the message"
    )
    sub = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for name, target in STAGES.items():
        module, _, func = target.partition(":")
        getattr(importlib.import_module(module), func or "add_parser")(sub, name)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        pin_cpu_numerics()  # before any stage module imports torch or numpy (elign.numerics)
    except ValueError as exc:
        print(f"elign: error: {exc}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.run(args) or 0)
    except Exception as exc:
        if not isinstance(exc, _user_errors()):
            raise
        # Expected user-facing failures: one clear message, no traceback (unless --debug).
        print(f"elign {args.stage}: error: {exc}", file=sys.stderr)
        if args.debug:
            traceback.print_exc()
        return 2


def _user_errors() -> tuple[type[Exception], ...]:
    """Exception types reported as one message. EDMImportError's module imports torch, so it is only looked
    up when a stage has already imported it (it cannot have been raised otherwise)."""
    edm_import = sys.modules.get("elign.diffusion.edm_import")
    extra = (edm_import.EDMImportError,) if edm_import is not None else ()
    return (ConfigError, DataFormatError, FileNotFoundError, IsADirectoryError, PermissionError) + extra


if __name__ == "__main__":
    sys.exit(main())
