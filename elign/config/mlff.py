"""The ``mlff`` keys of the finetune, sample and evaluate sections: which force field scores molecules."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from elign.config.base import Section
from elign.registries import MLFF_BACKENDS


class MLFFConfig(Section):
    """Which force field scores molecules (elign.mlff registry); energies in eV, forces in eV/Å."""

    backend: str = Field(
        "ani2x",
        description="a registered backend (elign.registries); default ANI-2x (torchani; H C N O F S Cl); "
        "gfn2-xtb: GFN2-xTB (tblite; H-Rn)",
        json_schema_extra=MLFF_BACKENDS.schema_enum,
    )
    model_path: str | None = Field(None, description="weights file for aimnet2 / mace-off / uma")
    model: str | None = Field(None, description="mace-off size: small | medium | large")
    model_index: int | None = Field(None, ge=0, description="ANI: one ensemble member instead of the ensemble")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["float32", "float64"] = "float32"
    batch_size: int = Field(256, ge=1, description="molecules per MLFF call")
    workers: int | None = Field(
        None, ge=1, description="gfn2-xtb only: worker processes, one thread each; null = the job's threads"
    )
    time_limit_s: float | None = Field(
        None,
        gt=0,
        description="gfn2-xtb only: seconds per molecule before a timeout row; null = the backend's "
        "default (elign.mlff.xtb.DEFAULT_TIME_LIMIT_S)",
    )
    electronic_temperature_k: float | None = Field(
        None,
        gt=0,
        description="gfn2-xtb only: Fermi smearing temperature; null = tblite's 300 K. Higher (e.g. "
        "3000) lets SCFs of far-from-equilibrium geometries converge, with smeared energies",
    )

    @field_validator("backend")
    @classmethod
    def _registered_backend(cls, value: str) -> str:
        return MLFF_BACKENDS.check(value)

    @field_validator("workers", "time_limit_s", "electronic_temperature_k")
    @classmethod
    def _xtb_only(cls, value, info):
        if value is not None and info.data.get("backend") != "gfn2-xtb":
            raise ValueError(f"{info.field_name} applies to backend gfn2-xtb only, not {info.data.get('backend')!r}")
        return value
