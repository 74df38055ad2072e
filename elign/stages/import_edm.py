"""The import-edm stage: an EDM run (``args.pickle`` + ``generative_model_ema.npy``) as our checkpoint.

The files are read by :func:`elign.diffusion.edm_import.import_edm_files` (the same reader as
``pretrain.source.kind: edm``): the args with a Namespace-only unpickler (or from JSON), the state dict
renamed onto our model and loaded strictly. The weights keep their stored dtype; the stored γ table is kept.
The checkpoint's ``extra`` records the source files and the weights' sha256.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from elign.diffusion.checkpoint import save_checkpoint
from elign.diffusion.edm_import import import_edm_files
from elign.io.provenance import file_sha256

log = logging.getLogger("elign.import_edm")


def run_import_edm(
    edm_args: str | Path, weights: str | Path, out: str | Path, atom_decoder: list[str] | None = None
) -> dict[str, Any]:
    """Write ``out`` from the EDM run's files; returns our model-config dict."""
    weights = Path(weights)
    model, config = import_edm_files(edm_args, weights, atom_decoder)
    extra = {
        "source": "edm",
        "edm_args": str(edm_args),
        "edm_weights": str(weights),
        "edm_weights_sha256": file_sha256(weights),
    }
    save_checkpoint(out, config, model.state_dict(), extra=extra)
    dyn = config["dynamics"]
    log.info(
        "wrote %s: EDM %d layers x %d, atom types %s, charges %s, T = %d, dtype %s",
        out,
        dyn["n_layers"],
        dyn["hidden_nf"],
        config["atom_decoder"],
        config["include_charges"],
        config["diffusion"]["timesteps"],
        next(model.parameters()).dtype,
    )
    return config
