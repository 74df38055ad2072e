"""The pretrained backbone of a run from ``pretrain.source``: a shipped backbone, a file, or an EDM checkpoint.

``elign pretrain`` trains when ``pretrain.source.kind`` is ``train``; otherwise it calls
:func:`materialize_pretrained`, which writes the same three outputs a training run writes, so every later
stage reads ``results/models/<dataset>/pretrained.pt`` whatever its origin:

* ``pretrained.pt``: our checkpoint with the backbone's weights as both ``state_dict`` and
  ``ema_state_dict`` (sampling with or without EMA gives the same model) and ``extra.source``;
* ``history.parquet``: the backbone's training history when it has one (a shipped backbone does), else an
  empty table with the history columns;
* ``backbone.json``: where the weights came from (kind, name or path, sha256) and, for a shipped backbone,
  its card's training summary and metrics, which the report shows beside the run's own samples.

Every check runs before anything is written: an unknown name, a missing file, weights whose sha256 differs
from the card, weights of another architecture than the card says, or a backbone whose atom types cannot
represent the dataset's elements is one clear error.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from elign.config import ConfigError, PretrainedSource
from elign.diffusion.checkpoint import load_checkpoint, save_checkpoint
from elign.diffusion.edm_import import import_edm_files
from elign.io.atomic import atomic_paths, write_json_atomic
from elign.io.provenance import file_sha256
from elign.model.zoo import ShippedModelError, find_shipped, verify_weights
from elign.training import checkpointing as ckpt_io
from elign.training import pretrain_state as ts

#: card sections copied into backbone.json (the report's backbone table)
_CARD_SUMMARY = ("name", "summary", "architecture", "data", "training", "metrics", "reproduce")


def _weights_of(ckpt: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    ema = ckpt.get("ema_state_dict")
    return dict(ema if ema is not None else ckpt["state_dict"])


def _shipped(source: PretrainedSource) -> tuple[dict, dict, dict]:
    model = find_shipped(source.name, source.models_dir)
    path = verify_weights(model)
    ckpt = load_checkpoint(path)
    card_config = model.card["architecture"].get("model_config")
    differences = [] if card_config is None else ckpt_io.diff_configs(card_config, ckpt["model_config"])
    if differences:
        raise ShippedModelError(f"{path}: architecture differs from its card ({'; '.join(differences)})")
    info = {
        "kind": "shipped",
        "name": model.name,
        "weights": str(path),
        "sha256": model.sha256,
        "card": {k: model.card[k] for k in _CARD_SUMMARY if k in model.card},
    }
    return ckpt["model_config"], _weights_of(ckpt), info


def _file(source: PretrainedSource) -> tuple[dict, dict, dict]:
    path = Path(source.path)
    if not path.exists():
        raise FileNotFoundError(f"pretrain.source.path: checkpoint {path} does not exist")
    ckpt = load_checkpoint(path)
    return ckpt["model_config"], _weights_of(ckpt), {"kind": "file", "weights": str(path), "sha256": file_sha256(path)}


def _edm(source: PretrainedSource) -> tuple[dict, dict, dict]:
    for key, value in (("path", source.path), ("edm_args", source.edm_args)):
        if not Path(value).is_file():
            raise FileNotFoundError(f"pretrain.source.{key}: {value} does not exist")
    model, config = import_edm_files(source.edm_args, source.path)
    return (
        config,
        model.state_dict(),
        {"kind": "edm", "weights": source.path, "edm_args": source.edm_args, "sha256": file_sha256(source.path)},
    )


def resolve_source(source: PretrainedSource) -> tuple[dict, dict[str, torch.Tensor], dict[str, Any]]:
    """(model_config, weights, provenance) of a non-training source, after every check."""
    if source.kind == "train":
        raise ValueError("pretrain.source.kind is 'train': there is nothing to resolve; run the training")
    return {"shipped": _shipped, "file": _file, "edm": _edm}[source.kind](source)


def check_atom_types(model_config: Mapping[str, Any], elements: Iterable[str], what: str) -> None:
    """ConfigError when the dataset holds elements the backbone's one-hot atom types cannot represent."""
    decoder = list(model_config["atom_decoder"])
    missing = sorted(set(elements) - set(decoder))
    if missing:
        raise ConfigError(
            f"{what}: the backbone knows the atom types {decoder}, but the data has {missing}; "
            "use a backbone trained on this dataset or pretrain.source.kind: train"
        )


def dataset_elements(stats_path: str | Path) -> list[str]:
    """Element symbols of the training split in the data stage's stats.json (``splits.train.atom_type_counts``)."""
    stats = json.loads(Path(stats_path).read_text())
    counts = stats.get("splits", {}).get("train", {}).get("atom_type_counts")
    if not isinstance(counts, dict):
        raise ConfigError(f"{stats_path}: no splits.train.atom_type_counts to check the backbone's atom types against")
    return [k for k, v in counts.items() if int(v) > 0]


def materialize_pretrained(
    source: PretrainedSource,
    out: str | Path,
    history: str | Path,
    backbone_json: str | Path,
    stats: str | Path | None = None,
) -> dict[str, Any]:
    """Write ``out`` (checkpoint), ``history`` and ``backbone_json`` for a non-training source; see module doc."""
    config, weights, info = resolve_source(source)
    if stats is not None:
        check_atom_types(config, dataset_elements(stats), f"pretrain.source ({info['weights']})")
    shipped_history = Path(source.models_dir) / source.name / "history.parquet" if source.kind == "shipped" else None
    with atomic_paths([out, history, backbone_json]) as (out_tmp, history_tmp, json_tmp):  # published together
        save_checkpoint(out_tmp, config, weights, weights, {"stage": "pretrained", "source": info})
        if shipped_history is not None and shipped_history.is_file():
            shutil.copyfile(shipped_history, history_tmp)
        else:
            ts.write_history(history_tmp, ts.empty_history())
        write_json_atomic(json_tmp, info)
    return info
