"""The aligned model of a run from ``finetune.source``: a shipped aligned model or a FED-GRPO checkpoint file.

``elign finetune`` runs FED-GRPO when ``finetune.source.kind`` is ``train``; otherwise it calls
:func:`materialize_aligned`, which writes what a FED-GRPO run writes, so every later stage reads
``results/models/<dataset>/aligned.pt`` whatever its origin:

* ``aligned.pt``: our checkpoint with the model's architecture (a time gate included) and its sampling
  weights as both ``state_dict`` and ``ema_state_dict``, and ``extra.source``;
* ``finetune_history.parquet``: the model's FED-GRPO history (a shipped model ships it; a file has it in its
  checkpoint).

An aligned model means something only next to the model it was aligned from. Its backbone identity is the
sha256 of the weights FED-GRPO started from (a shipped card's ``backbone.sha256``, a checkpoint's
``extra.input.sha256``); the run's pretrained model has the identity :func:`backbone_sha256` gives. They must
be equal. Every check runs before anything is written.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from elign.config import AlignedSource, ConfigError
from elign.diffusion.checkpoint import load_checkpoint, save_checkpoint
from elign.io.atomic import atomic_paths
from elign.io.provenance import file_sha256
from elign.model.zoo import ShippedModelError, find_shipped, verify_weights
from elign.rl import trainer_state as st

__all__ = ["backbone_sha256", "materialize_aligned", "resolve_aligned"]


def backbone_sha256(pretrained: str | Path) -> str:
    """The identity of a run's pretrained model: the sha256 of the weights file it was made from (a shipped or
    file backbone's ``extra.source.sha256``), else of the checkpoint itself (a model trained in the run)."""
    ckpt = load_checkpoint(pretrained)
    source = ckpt.get("extra", {}).get("source")
    if isinstance(source, dict) and source.get("sha256"):
        return str(source["sha256"])
    return file_sha256(pretrained)


def _sampling_weights(ckpt: dict) -> dict:
    ema = ckpt.get("ema_state_dict")
    return dict(ema if ema is not None else ckpt["state_dict"])


def _shipped(source: AlignedSource) -> tuple[dict, dict, dict, Path | None]:
    model = find_shipped(source.name, source.models_dir)
    backbone = model.card.get("backbone")
    if model.card.get("kind") != "aligned" or not isinstance(backbone, dict) or "sha256" not in backbone:
        raise ShippedModelError(
            f"{model.folder / 'card.json'}: not an aligned model's card (no kind 'aligned' with a backbone sha256); "
            "finetune.source.kind 'shipped' takes a model shipped by `elign models ship-aligned`"
        )
    ckpt = load_checkpoint(verify_weights(model))
    info = {"kind": "shipped", "name": model.name, "weights": str(model.weights), "sha256": model.sha256}
    info["backbone"] = dict(backbone)
    history = model.folder / "finetune_history.parquet"
    return ckpt["model_config"], _sampling_weights(ckpt), info, history if history.is_file() else None


def _file(source: AlignedSource) -> tuple[dict, dict, dict, dict | None]:
    path = Path(source.path)
    if not path.is_file():
        raise FileNotFoundError(f"finetune.source.path: checkpoint {path} does not exist")
    ckpt = load_checkpoint(path)
    extra = ckpt.get("extra", {})
    if extra.get("stage") != "finetune" or not extra.get("input", {}).get("sha256"):
        raise ConfigError(
            f"finetune.source.path: {path} is not a FED-GRPO checkpoint (`elign finetune --out`); it must name the "
            "model it was aligned from"
        )
    info = {"kind": "file", "weights": str(path), "sha256": file_sha256(path), "backbone": dict(extra["input"])}
    return ckpt["model_config"], _sampling_weights(ckpt), info, extra.get("history")


def resolve_aligned(source: AlignedSource, pretrained: str | Path) -> tuple[dict, dict, dict, Any]:
    """(model_config, weights, provenance, history: a Parquet path, a column dict or None), after every check."""
    if source.kind == "train":
        raise ValueError("finetune.source.kind is 'train': there is nothing to resolve; run FED-GRPO")
    config, weights, info, history = (_shipped if source.kind == "shipped" else _file)(source)
    want, got = backbone_sha256(pretrained), info["backbone"]["sha256"]
    if want != got:
        where = info.get("name", info["weights"])
        raise ConfigError(
            f"finetune.source: {where} was aligned from the backbone with weights sha256 {got[:12]}, but this run's "
            f"pretrained model ({pretrained}) is {want[:12]}; use the backbone it was aligned from "
            f"({info['backbone'].get('name') or info['backbone'].get('path')}) or finetune.source.kind: train"
        )
    return config, weights, info, history


def materialize_aligned(source: AlignedSource, pretrained: str | Path, out: str | Path, history: str | Path) -> dict:
    """Write ``out`` and ``history`` for a shipped or file aligned model (module doc); returns its provenance."""
    config, weights, info, hist = resolve_aligned(source, pretrained)
    with atomic_paths([out, history]) as (out_tmp, history_tmp):  # published together
        save_checkpoint(out_tmp, config, weights, weights, {"stage": "aligned", "source": info})
        if isinstance(hist, Path):
            shutil.copyfile(hist, history_tmp)
        elif isinstance(hist, dict):
            st.write_history(history_tmp, st.restore_history(hist))
        else:
            st.write_history(history_tmp, st.empty_history())
    return info
