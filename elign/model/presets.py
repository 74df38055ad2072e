"""Named backbone sizes and the model-config dict that builds a model.

A *model config* is a plain dict (stored in every checkpoint as ``model_config``)::

    {"format": "elign.edm/1",
     "atom_decoder": ["H", "C", "N", "O", "F"],      # one-hot column k = element atom_decoder[k]
     "include_charges": True,                         # extra integer feature = atomic number (EDM QM9)
     "dynamics": {...DynamicsConfig fields...},       # elign.model.dynamics.DynamicsConfig
     "diffusion": {...DiffusionConfig fields...}}     # elign.diffusion.en_diffusion.DiffusionConfig

``elign.diffusion.factory.build_model(config)`` turns it into an ``EnVariationalDiffusion``.

Presets (EDM: Hoogeboom et al. 2022, App. C; args of the published runs ``outputs/edm_qm9`` and
``outputs/edm_geom_drugs``): ``edm_qm9`` 9 layers × 256, ``edm_geom`` 4 layers × 256 (both: 1 invariant
sublayer per block, attention, tanh coordinate updates, norm_constant 1, normalization_factor 1, sum
aggregation, no sin embedding) and ``small_cpu`` 4 layers × 64 with the same switches, for tests and CPU
runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from elign.elements import GEOM_ATOM_DECODER, QM9_ATOM_DECODER  # noqa: F401 (re-exported)
from elign.model.dynamics import DynamicsConfig

MODEL_CONFIG_FORMAT = "elign.edm/1"


#: EDM's diffusion hyper-parameters for QM9 and GEOM-Drugs (same for both).
EDM_DIFFUSION: dict[str, Any] = {
    "timesteps": 1000,
    "noise_schedule": "polynomial_2",
    "noise_precision": 1e-5,
    "loss_type": "l2",
    "normalize_factors": [1.0, 4.0, 10.0],
    "norm_biases": [None, 0.0, 0.0],
}


#: DynamicsConfig fields a preset fixes; in_node_nf and context_node_nf follow the dataset and the condition.
ARCHITECTURE_FIELDS = tuple(f.name for f in fields(DynamicsConfig) if f.name not in ("in_node_nf", "context_node_nf"))


@dataclass(frozen=True)
class BackbonePreset:
    """A named architecture: :class:`DynamicsConfig`'s defaults (EDM's switches) with ``overrides`` (e.g.
    hidden_nf, n_layers), plus the dataset defaults the preset was published with."""

    overrides: Mapping[str, Any]
    default_atom_decoder: tuple[str, ...] = QM9_ATOM_DECODER
    default_include_charges: bool = True

    def __post_init__(self) -> None:
        unknown = sorted(set(self.overrides) - set(ARCHITECTURE_FIELDS))
        if unknown:
            raise ValueError(f"preset overrides {unknown} are not architecture fields: {list(ARCHITECTURE_FIELDS)}")

    def architecture(self) -> dict[str, Any]:
        """DynamicsConfig's architecture fields (all but in_node_nf / context_node_nf), in field order."""
        defaults = {f.name: f.default for f in fields(DynamicsConfig) if f.name in ARCHITECTURE_FIELDS}
        return {**defaults, **self.overrides}


PRESETS: dict[str, BackbonePreset] = {
    "edm_qm9": BackbonePreset({"hidden_nf": 256, "n_layers": 9}),
    "edm_geom": BackbonePreset(
        {"hidden_nf": 256, "n_layers": 4}, default_atom_decoder=GEOM_ATOM_DECODER, default_include_charges=False
    ),
    "small_cpu": BackbonePreset({"hidden_nf": 64, "n_layers": 4}),
}


def get_preset(name: str) -> BackbonePreset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown backbone preset {name!r}; choose one of {sorted(PRESETS)}") from None


def make_model_config(
    preset: str | BackbonePreset,
    atom_decoder: Sequence[str] | None = None,
    include_charges: bool | None = None,
    context_node_nf: int = 0,
    diffusion: dict[str, Any] | None = None,
    **architecture: Any,
) -> dict[str, Any]:
    """A complete model-config dict from a preset name, the dataset's atom types and optional overrides.

    Args:
        preset: preset name or object; atom_decoder / include_charges default to the preset's dataset.
        diffusion: overrides of EDM_DIFFUSION; architecture: overrides of preset fields (e.g. n_layers=2).
    """
    p = get_preset(preset) if isinstance(preset, str) else preset
    decoder = list(atom_decoder if atom_decoder is not None else p.default_atom_decoder)
    charges = p.default_include_charges if include_charges is None else bool(include_charges)
    arch = p.architecture()
    unknown = sorted(set(architecture) - set(arch))
    if unknown:
        raise ValueError(f"unknown architecture overrides {unknown}; known: {sorted(arch)}")
    arch.update(architecture)
    diff = dict(EDM_DIFFUSION)
    diff.update(diffusion or {})
    return {
        "format": MODEL_CONFIG_FORMAT,
        "atom_decoder": decoder,
        "include_charges": charges,
        "dynamics": {"in_node_nf": len(decoder) + int(charges), "context_node_nf": int(context_node_nf), **arch},
        "diffusion": diff,
    }
