"""Shipped backbones: ``models/<name>/`` holds the weights and a model card, and loading checks the weights.

Layout of one shipped backbone (written by ``elign models ship``, :mod:`elign.stages.ship`)::

    models/<name>/weights.pt       our checkpoint format: state_dict = the EMA weights (float32), no optimizer
    models/<name>/card.json        machine-readable card (format ``elign.card/1``, keys below)
    models/<name>/card.md          the same card for people, with the curves
    models/<name>/history.parquet  the training history (loss, gradient norm, in-training sample stability)
    models/<name>/curves.png       loss and stability curves

``card.json`` keys: ``format``, ``name``, ``summary``, ``weights`` {file, sha256, bytes, dtype, selected_step,
ema_decay}, ``architecture`` {preset, parameters, model_config}, ``config`` (the full resolved training
config), ``data`` {dataset, source, split, train_molecules, fingerprint, valid_loss}, ``training``
{steps, epochs, batch_size, lr_schedule, segments [...], train_seconds, wall_seconds, selection},
``reproduce`` {command, expected_wall_hours}, ``metrics`` {seed, num_molecules, steps, atom_stability,
molecule_stability, validity, uniqueness, novelty, ..., sampling {molecules_per_s, threads, device}}.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elign.config import ConfigError
from elign.io.provenance import file_sha256

CARD_FORMAT = "elign.card/1"
CARD_FILE = "card.json"
_REQUIRED = ("format", "name", "weights", "architecture", "config", "data", "training", "metrics")


class ShippedModelError(ConfigError):
    """A shipped backbone that is unknown, incomplete or damaged (the message names the file and the fix);
    the CLI reports it as one message, like a config error."""


@dataclass(frozen=True)
class ShippedModel:
    """One shipped backbone: its folder, its card (dict) and its weights file."""

    name: str
    folder: Path
    card: dict[str, Any]

    @property
    def weights(self) -> Path:
        return self.folder / self.card["weights"]["file"]

    @property
    def sha256(self) -> str:
        return str(self.card["weights"]["sha256"])


def read_card(folder: str | Path) -> dict[str, Any]:
    """The card of the backbone in ``folder``; ShippedModelError when missing or malformed."""
    path = Path(folder) / CARD_FILE
    if not path.is_file():
        raise ShippedModelError(
            f"{path}: no model card; a shipped backbone folder needs {CARD_FILE} (written by `elign models ship`)"
        )
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ShippedModelError(f"{path}: not a readable JSON model card ({exc})") from None
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        found = card.get("format") if isinstance(card, dict) else type(card).__name__
        raise ShippedModelError(f"{path}: card format {found!r}, expected {CARD_FORMAT!r}")
    missing = [k for k in _REQUIRED if k not in card]
    if missing or not isinstance(card["weights"], dict) or not {"file", "sha256"} <= set(card["weights"]):
        raise ShippedModelError(f"{path}: incomplete card (missing {missing or 'weights.file / weights.sha256'})")
    return card


def list_shipped(models_dir: str | Path = "models") -> list[ShippedModel]:
    """Every backbone in ``models_dir`` (sub-folders with a card), sorted by name."""
    root = Path(models_dir)
    if not root.is_dir():
        return []
    return [
        ShippedModel(d.name, d, read_card(d))
        for d in sorted(root.iterdir())
        if d.is_dir() and (d / CARD_FILE).is_file()
    ]


def find_shipped(name: str, models_dir: str | Path = "models") -> ShippedModel:
    """The shipped backbone ``name``; ShippedModelError naming the ones that exist when it is unknown."""
    folder = Path(models_dir) / name
    if not (folder / CARD_FILE).is_file():
        known = [m.name for m in list_shipped(models_dir)]
        raise ShippedModelError(
            f"no shipped backbone {name!r} in {models_dir}/ (shipped: "
            f"{', '.join(known) if known else 'none'}); see `elign models`"
        )
    card = read_card(folder)
    if card["name"] != name:
        raise ShippedModelError(f"{folder / CARD_FILE}: the card names {card['name']!r}, the folder {name!r}")
    return ShippedModel(name, folder, card)


def verify_weights(model: ShippedModel) -> Path:
    """The weights path after checking its sha256 against the card; ShippedModelError otherwise."""
    path = model.weights
    if not path.is_file():
        raise ShippedModelError(f"{path}: the weights file named by {model.folder / CARD_FILE} is missing")
    got = file_sha256(path)
    if got != model.sha256:
        raise ShippedModelError(
            f"{path}: sha256 {got} does not match its card ({model.sha256}); the file is "
            "damaged or was replaced (restore it with `git checkout -- " + str(path) + "`)"
        )
    return path
