"""Build an :class:`EnVariationalDiffusion` from a model-config dict, and back.

The model-config layout is documented in :mod:`elign.model.presets`. Reading a model from one of our
checkpoint files is :func:`elign.diffusion.checkpoint.load_model` (the checkpoint module builds on this one).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from elign.diffusion.en_diffusion import DiffusionConfig, EnVariationalDiffusion
from elign.model.dynamics import DynamicsConfig, EGNNDynamics
from elign.model.presets import MODEL_CONFIG_FORMAT

_TOP_KEYS = {"format", "atom_decoder", "include_charges", "dynamics", "diffusion"}
_OPTIONAL_KEYS = {"time_gate"}  # {"t_above": float}: a second, frozen network for t > t_above (set_time_gate)


def build_model(model_config: Mapping[str, Any], dtype: torch.dtype | None = None) -> EnVariationalDiffusion:
    """Fresh (randomly initialised, EDM init) model from a model-config dict; float32 unless ``dtype``."""
    unknown = sorted(set(model_config) - _TOP_KEYS - _OPTIONAL_KEYS)
    missing = sorted(_TOP_KEYS - set(model_config) - {"format"})
    if unknown or missing:
        raise ValueError(f"model config: unknown keys {unknown}, missing keys {missing}")
    fmt = model_config.get("format", MODEL_CONFIG_FORMAT)
    if fmt != MODEL_CONFIG_FORMAT:
        raise ValueError(f"model config format {fmt!r} is not {MODEL_CONFIG_FORMAT!r}")
    decoder = list(model_config["atom_decoder"])
    charges = bool(model_config["include_charges"])
    dyn = DynamicsConfig.from_dict(model_config["dynamics"])
    if dyn.in_node_nf != len(decoder) + int(charges):
        raise ValueError(
            f"dynamics.in_node_nf={dyn.in_node_nf} but {len(decoder)} atom types + "
            f"{int(charges)} charge column = {len(decoder) + int(charges)}"
        )
    diff = DiffusionConfig.from_dict(model_config["diffusion"])
    model = EnVariationalDiffusion(EGNNDynamics(dyn), len(decoder), charges, diff, atom_decoder=decoder)
    gate = model_config.get("time_gate")
    if gate is not None:
        if not isinstance(gate, Mapping) or set(gate) != {"t_above"}:
            raise ValueError(f"model config: time_gate must be {{'t_above': float}}, got {gate!r}")
        model.set_time_gate(EGNNDynamics(dyn), float(gate["t_above"]))
    return model.to(dtype) if dtype is not None else model


def model_config_of(model: EnVariationalDiffusion) -> dict[str, Any]:
    """The resolved model-config dict of a built model (what checkpoints store)."""
    return {
        "format": MODEL_CONFIG_FORMAT,
        "atom_decoder": list(model.atom_decoder),
        "include_charges": model.include_charges,
        "dynamics": model.dynamics.config.to_dict(),
        "diffusion": model.config.to_dict(),
        **({"time_gate": {"t_above": model.gate_t}} if model.prefix_dynamics is not None else {}),
    }
