"""``elign import-edm``: turn an EDM run (``args.pickle`` + ``generative_model_ema.npy``) into our checkpoint.

The args are read with a Namespace-only unpickler (or from JSON); the state dict is renamed onto our model
and loaded strictly (:func:`elign.diffusion.edm_import.import_edm`). A mismatch between the args and the
weights is a one-line error and exit code 2. The weights keep their stored dtype; the stored γ table is
kept. The checkpoint's ``extra`` records the source files and the weights' sha256.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from elign.io.provenance import file_sha256

log = logging.getLogger("elign.import_edm")


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
    import torch

    from elign.diffusion.checkpoint import save_checkpoint
    from elign.diffusion.edm_import import EDMImportError, import_edm

    weights = Path(args.weights)
    if not weights.is_file():
        raise FileNotFoundError(f"EDM weights file {weights} does not exist")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a file that is not a tensor pickle
        raise EDMImportError(f"{weights} is not a readable EDM state dict: {exc}") from None
    if not isinstance(state, dict):
        raise EDMImportError(f"{weights}: expected a state dict, found {type(state).__name__}")
    try:
        model, config = import_edm(args.edm_args, state, atom_decoder=args.atom_decoder)
    except EDMImportError as exc:
        raise EDMImportError(f"{args.edm_args} + {weights}: {exc}") from None
    extra = {
        "source": "edm",
        "edm_args": str(args.edm_args),
        "edm_weights": str(weights),
        "edm_weights_sha256": file_sha256(weights),
    }
    save_checkpoint(args.out, config, model.state_dict(), extra=extra)
    dyn = config["dynamics"]
    log.info(
        "wrote %s: EDM %d layers x %d, atom types %s, charges %s, T = %d, dtype %s",
        args.out,
        dyn["n_layers"],
        dyn["hidden_nf"],
        config["atom_decoder"],
        config["include_charges"],
        config["diffusion"]["timesteps"],
        next(model.parameters()).dtype,
    )
    return 0
