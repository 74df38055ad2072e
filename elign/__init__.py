"""elign: align E(3)-equivariant diffusion models for molecules with ML force fields (FED-GRPO)."""

__version__ = "0.1.0"
