"""``elign import-edm``: turn an EDM run (``args.pickle`` + ``generative_model_ema.npy``) into our checkpoint.

A mismatch between the args and the weights is a one-line error and exit code 2.
The arguments only; the work: :mod:`elign.stages.import_edm`.
"""

from __future__ import annotations

import argparse


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="convert EDM's args.pickle + generative_model[_ema].npy into an elign checkpoint")
    p.add_argument(
        "--args",
        required=True,
        dest="edm_args",
        metavar="ARGS",
        help="EDM's args.pickle (or a JSON file of the same fields)",
    )
    p.add_argument("--weights", required=True, help="EDM's generative_model_ema.npy (a torch.save'd state dict)")
    p.add_argument("--out", required=True, help="our checkpoint to write, e.g. results/models/qm9/edm.pt")
    p.add_argument(
        "--atom-decoder",
        nargs="+",
        default=None,
        metavar="SYMBOL",
        help="element symbols of the one-hot columns, if the args do not imply them",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from elign.stages.import_edm import run_import_edm

    run_import_edm(args.edm_args, args.weights, args.out, args.atom_decoder)
    return 0
