"""Our checkpoint format: one ``torch.save`` dict, written atomically, read with ``weights_only=True``.

Layout (format ``elign.checkpoint/1``)::

    {"format": "elign.checkpoint/1",
     "elign_version": "0.1.0",
     "model_config": {...},           # see elign.model.presets (architecture + diffusion hyper-parameters)
     "state_dict": {...},             # EnVariationalDiffusion.state_dict() (includes the γ table)
     "ema_state_dict": {...} | None,  # EMA weights (EDM: decay 0.9999), same keys
     "extra": {...}}                  # free-form metadata: plain Python values and tensors only

A killed writer never leaves a half-written file: the dict goes to a temporary file in the target folder,
is flushed and fsync'ed, then moved over the target with ``os.replace``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch

import elign

CHECKPOINT_FORMAT = "elign.checkpoint/1"


def save_checkpoint(path: str | Path, model_config: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor],
                    ema_state_dict: Mapping[str, torch.Tensor] | None = None,
                    extra: Mapping[str, Any] | None = None) -> Path:
    """Write a checkpoint atomically; returns the path. Parent folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "elign_version": elign.__version__,
        "model_config": dict(model_config),
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        "ema_state_dict": None if ema_state_dict is None else {k: v.detach().cpu() for k, v in ema_state_dict.items()},
        "extra": dict(extra or {}),
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and check one of our checkpoints (safe unpickling: tensors and plain values only)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path} is not a readable elign checkpoint: {exc}") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(f"{path} is not an elign checkpoint (format {found!r}, expected {CHECKPOINT_FORMAT!r}); "
                         "EDM's generative_model*.npy files load with elign.model.edm_import.import_edm")
    for key in ("model_config", "state_dict"):
        if key not in ckpt:
            raise ValueError(f"checkpoint {path} lacks {key!r}")
    return ckpt
