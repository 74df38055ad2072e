"""EDM's E(3)-equivariant variational diffusion over zero-CoM positions and atom features.

Follows Hoogeboom et al. 2022 ("Equivariant Diffusion for Molecule Generation in 3D", ICML) and its code
(ehoogeboom/e3_diffusion_for_molecules, ``equivariant_diffusion/en_diffusion.py``: EnVariationalDiffusion).

Data: per atom z = [x (3, Å / normalize_factors[0]), one-hot atom type / normalize_factors[1],
integer charge / normalize_factors[2]] (EDM: factors (1, 4, 10), biases (None, 0, 0)); padded batches
(B, N, ·) with node_mask (B, N, 1). Forward process q(z_t | z_0) = N(α_t z_0, σ_t² I) with
α_t² = sigmoid(−γ_t), σ_t² = sigmoid(γ_t), γ from :mod:`elign.diffusion.schedules`.

Centre of mass. Positions live in the (n − 1)·3-dimensional zero-CoM subspace of each molecule
(n real atoms): noise is drawn there (:mod:`elign.diffusion.geometry`), the network's ε̂_x is centred,
and every Gaussian density or KL over positions uses (n − 1)·3 degrees of freedom (EDM's
``subspace_dimensionality``) while the features use n·F. See :mod:`elign.diffusion.gaussian`.

Deliberate differences from EDM's code (none changes a result the golden test checks):
* ``normalize`` casts features to the working dtype (EDM casts to float32, which rounds charge/10);
* with ``include_charges=False`` the decoder reads all atom-type columns (EDM's ``z0[:, :, 3:-1]``
  drops the last type);
* randomness can come from an explicit ``torch.Generator``; 'learned' schedules and the 'x'
  parametrisation are not supported (no published EDM model uses them).

Usage (B molecules padded to N atoms; build the sparse graph once per batch and pass it everywhere)::

    model = elign.diffusion.factory.build_model(model_config)          # or load_model(path) / import_edm(...)
    graph = model.make_graph(node_mask)
    loss = model(x_ang, one_hot, charges, node_mask, graph=graph)      # (B,), train(): EDM's l2 loss
    mu, sigma = model.p_zs_given_zt(s, t, z_t, node_mask, graph=graph)  # s, t: (B, 1) in [0, 1]
    z_s = model.sample_from_step(mu, sigma, node_mask, generator)
    logp = model.reverse_step_log_prob(z_s, mu, sigma, node_mask)      # (B,)
    out = model.sample_p_xh_given_z0(z_0, node_mask, graph=graph)     # Decoded(x Å, one_hot, charges)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from elign.config_checks import dataclass_from_dict
from elign.diffusion import geometry as geo
from elign.diffusion.gaussian import reverse_step_log_prob
from elign.diffusion.losses import DiffusionLossMixin
from elign.diffusion.schedules import PredefinedNoiseSchedule
from elign.model.dynamics import EGNNDynamics
from elign.model.graph import MolGraph, build_graph, graph_from_edge_mask

__all__ = ["DiffusionConfig", "EnVariationalDiffusion", "Decoded", "reverse_step_log_prob"]


@dataclass(frozen=True)
class DiffusionConfig:
    """Diffusion hyper-parameters (EDM argument names: diffusion_steps, diffusion_noise_schedule,
    diffusion_noise_precision, diffusion_loss_type, normalize_factors)."""

    timesteps: int = 1000
    noise_schedule: str = "polynomial_2"
    noise_precision: float = 1e-5
    loss_type: str = "l2"
    normalize_factors: tuple[float, float, float] = (1.0, 4.0, 10.0)
    norm_biases: tuple[float | None, float, float] = (None, 0.0, 0.0)

    def __post_init__(self) -> None:
        if self.loss_type not in ("l2", "vlb"):
            raise ValueError(f"loss_type must be 'l2' or 'vlb', got {self.loss_type!r}")
        object.__setattr__(self, "normalize_factors", tuple(float(v) for v in self.normalize_factors))
        object.__setattr__(self, "norm_biases", tuple(None if v is None else float(v) for v in self.norm_biases))
        if len(self.normalize_factors) != 3 or len(self.norm_biases) != 3:
            raise ValueError("normalize_factors and norm_biases need 3 entries (x, one-hot, charge)")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DiffusionConfig:
        return dataclass_from_dict(cls, data, "diffusion")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["normalize_factors"], d["norm_biases"] = list(self.normalize_factors), list(self.norm_biases)
        return d


class Decoded(NamedTuple):
    """Output of p(x, h | z_0): x (B, N, 3) in Å, one_hot (B, N, K) 0/1, charges (B, N, 1 or 0) integers
    (both float, zero in padded slots)."""

    x: torch.Tensor
    one_hot: torch.Tensor
    charges: torch.Tensor


class EnVariationalDiffusion(DiffusionLossMixin, nn.Module):
    """EDM diffusion around an :class:`EGNNDynamics` ε-network. Submodules: ``dynamics``, ``schedule``.

    Losses (``forward``, ``compute_loss`` …) come from :class:`elign.diffusion.losses.DiffusionLossMixin`.
    """

    n_dims = 3

    def __init__(
        self,
        dynamics: EGNNDynamics,
        n_atom_types: int,
        include_charges: bool,
        config: DiffusionConfig = DiffusionConfig(),
        gamma_table: torch.Tensor | None = None,
        atom_decoder: Sequence[str] | None = None,
    ):
        super().__init__()
        if atom_decoder is not None and len(atom_decoder) != n_atom_types:
            raise ValueError(f"atom_decoder has {len(atom_decoder)} entries, n_atom_types={n_atom_types}")
        self.atom_decoder = list(atom_decoder) if atom_decoder is not None else None
        self.config = config
        self.dynamics = dynamics
        self.num_classes = int(n_atom_types)
        self.include_charges = bool(include_charges)
        self.in_node_nf = self.num_classes + int(self.include_charges)
        if dynamics.config.in_node_nf != self.in_node_nf:
            raise ValueError(
                f"dynamics in_node_nf={dynamics.config.in_node_nf} but atom types + charges = {self.in_node_nf}"
            )
        self.T = config.timesteps
        self.norm_values = config.normalize_factors
        self.norm_biases = config.norm_biases
        self.schedule = PredefinedNoiseSchedule(
            config.noise_schedule, config.timesteps, config.noise_precision, table=gamma_table
        )
        self._check_norm_values()
        self.prefix_dynamics: EGNNDynamics | None = None  # a time gate (set_time_gate); None = one network
        self.gate_t: float | None = None

    def set_time_gate(self, prefix_dynamics: EGNNDynamics, gate_t: float) -> None:
        """Use the frozen ``prefix_dynamics`` for every t > ``gate_t`` and ``dynamics`` for t <= gate_t.

        FED-GRPO trains the network only on the branched steps of its rollouts (t <= (T − shared prefix)/T);
        a fine-tuned network also changes on the earlier steps, where it got no training signal, through its
        shared weights. A gated model keeps the reference network there (finetune.reference_prefix). Either
        way one network runs per step, so a gated model samples at the same cost. Equivariance holds: both
        networks are E(3)-equivariant.
        """
        if not 0.0 <= gate_t < 1.0:
            raise ValueError(f"time gate must be in [0, 1), got {gate_t}")
        if prefix_dynamics.config != self.dynamics.config:
            raise ValueError("the prefix network must have the dynamics' architecture")
        for p in prefix_dynamics.parameters():
            p.requires_grad_(False)
        self.prefix_dynamics, self.gate_t = prefix_dynamics.eval(), float(gate_t)

    # ----------------------------------------------------------------------------- schedule maths
    def _check_norm_values(self, num_stdevs: int = 8) -> None:
        """EDM's ``check_issues_norm_values``: 1/factor must exceed 8·σ_0 for the discrete features."""
        sigma_0 = float(torch.sqrt(torch.sigmoid(self.schedule.gamma[0])))
        max_norm = max(self.norm_values[1], self.norm_values[2])
        if sigma_0 * num_stdevs > 1.0 / max_norm:
            raise ValueError(
                f"normalization value {max_norm} probably too large with sigma_0 {sigma_0:.5f} "
                f"and 1 / norm_value = {1.0 / max_norm}"
            )

    def gamma(self, t: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """γ(t) for t ∈ [0, 1] (any shape), in ``dtype`` (default: t's floating dtype)."""
        return self.schedule(t).to(dtype or (t.dtype if t.is_floating_point() else torch.float64))

    @staticmethod
    def _inflate(array: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return array.reshape((array.shape[0],) + (1,) * (target.dim() - 1))

    def sigma(self, gamma: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """σ = sqrt(sigmoid(γ)), shaped (B, 1, …) like target."""
        return self._inflate(torch.sqrt(torch.sigmoid(gamma)), target)

    def alpha(self, gamma: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """α = sqrt(sigmoid(−γ)), shaped (B, 1, …) like target."""
        return self._inflate(torch.sqrt(torch.sigmoid(-gamma)), target)

    @staticmethod
    def snr(gamma: torch.Tensor) -> torch.Tensor:
        """Signal-to-noise ratio α²/σ² = exp(−γ)."""
        return torch.exp(-gamma)

    def sigma_and_alpha_t_given_s(
        self, gamma_t: torch.Tensor, gamma_s: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(σ²_{t|s}, σ_{t|s}, α_{t|s}) with α_{t|s} = α_t/α_s, σ²_{t|s} = 1 − α²_{t|s} (EDM, stable form)."""
        sigma2 = self._inflate(-torch.expm1(F.softplus(gamma_s) - F.softplus(gamma_t)), target)
        log_alpha2 = F.logsigmoid(-gamma_t) - F.logsigmoid(-gamma_s)
        alpha = self._inflate(torch.exp(0.5 * log_alpha2), target)
        return sigma2, torch.sqrt(sigma2), alpha

    def subspace_dimensionality(self, node_mask: torch.Tensor) -> torch.Tensor:
        """(n − 1)·3 per molecule (B,): dimension of the zero-CoM position subspace."""
        return (geo.num_atoms(node_mask) - 1) * self.n_dims

    # ------------------------------------------------------------------------------ data scaling
    def normalize(
        self, x: torch.Tensor, h_cat: torch.Tensor, h_int: torch.Tensor, node_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Scale (x Å, one-hot, charges) into model units; returns (x, h_cat, h_int, Δlog p_x (B,))."""
        dtype = x.dtype
        x = x / self.norm_values[0]
        delta_log_px = -self.subspace_dimensionality(node_mask) * np.log(self.norm_values[0])
        h_cat = (h_cat.to(dtype) - self.norm_biases[1]) / self.norm_values[1] * node_mask
        h_int = (h_int.to(dtype) - self.norm_biases[2]) / self.norm_values[2]
        if self.include_charges:
            h_int = h_int * node_mask
        return x, h_cat, h_int, delta_log_px

    def unnormalize(
        self, x: torch.Tensor, h_cat: torch.Tensor, h_int: torch.Tensor, node_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Inverse of :meth:`normalize` (without the volume term)."""
        x = x * self.norm_values[0]
        h_cat = (h_cat * self.norm_values[1] + self.norm_biases[1]) * node_mask
        h_int = h_int * self.norm_values[2] + self.norm_biases[2]
        if self.include_charges:
            h_int = h_int * node_mask
        return x, h_cat, h_int

    def split_z(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, N, 3 + K + c) -> x (B, N, 3), h_cat (B, N, K), h_int (B, N, c) with c = include_charges."""
        k0, k1 = self.n_dims, self.n_dims + self.num_classes
        return z[..., :k0], z[..., k0:k1], z[..., k1 : k1 + int(self.include_charges)]

    # ----------------------------------------------------------------------------------- network
    @staticmethod
    def make_graph(node_mask: torch.Tensor, edge_mask: torch.Tensor | None = None) -> MolGraph:
        """The sparse graph of a batch; build once and pass it to every call on that batch."""
        return build_graph(node_mask) if edge_mask is None else graph_from_edge_mask(node_mask, edge_mask)

    def phi(
        self,
        z: torch.Tensor,
        t: torch.Tensor,
        node_mask: torch.Tensor,
        edge_mask: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        graph: MolGraph | None = None,
    ) -> torch.Tensor:
        """ε̂ = φ(z_t, t): (B, N, 3 + F), t (B, 1) or scalar in [0, 1]. With a time gate, rows with t > gate_t
        use the prefix network (both networks run only when one batch holds both kinds of row)."""
        if self.prefix_dynamics is None:
            return self.dynamics(t, z, node_mask, edge_mask=edge_mask, context=context, graph=graph)
        early = torch.as_tensor(t, device=z.device) > self.gate_t
        if not bool(early.any()):
            return self.dynamics(t, z, node_mask, edge_mask=edge_mask, context=context, graph=graph)
        out = self.prefix_dynamics(t, z, node_mask, edge_mask=edge_mask, context=context, graph=graph)
        if bool(early.all()):
            return out
        late = self.dynamics(t, z, node_mask, edge_mask=edge_mask, context=context, graph=graph)
        return torch.where(early.reshape(-1, 1, 1), out, late)

    def compute_x_pred(self, eps: torch.Tensor, z_t: torch.Tensor, gamma_t: torch.Tensor) -> torch.Tensor:
        """Clean-data prediction ẑ_0 = (z_t − σ_t ε̂) / α_t (model units)."""
        return 1.0 / self.alpha(gamma_t, eps) * (z_t - self.sigma(gamma_t, eps) * eps)

    # ------------------------------------------------------------------------------------- noise
    def sample_combined_position_feature_noise(
        self,
        n_samples: int,
        n_nodes: int,
        node_mask: torch.Tensor,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        check_mask: bool = True,
    ) -> torch.Tensor:
        """[zero-CoM Gaussian for x, masked Gaussian for h]: (B, N, 3 + in_node_nf), x drawn first.
        ``check_mask`` False: no host-synchronising check of the padded slots (zero by construction)."""
        z_x = geo.sample_center_gravity_zero_gaussian_with_mask(
            (n_samples, n_nodes, self.n_dims), node_mask, generator, dtype, check_mask
        )
        z_h = geo.sample_gaussian_with_mask((n_samples, n_nodes, self.in_node_nf), node_mask, generator, dtype)
        return torch.cat([z_x, z_h], dim=2)

    def sample_normal(
        self, mu: torch.Tensor, sigma: torch.Tensor, node_mask: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        eps = self.sample_combined_position_feature_noise(mu.shape[0], mu.shape[1], node_mask, generator, mu.dtype)
        return mu + sigma * eps

    # ------------------------------------------------------------------------------ reverse step
    def posterior_from_eps(
        self, z_t: torch.Tensor, eps_t: torch.Tensor, s: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std of p(z_s | z_t) from a given ε̂ (EDM ``sample_p_zs_given_zt``):

        μ = z_t / α_{t|s} − σ²_{t|s} / (α_{t|s} σ_t) · ε̂,   σ = σ_{t|s} σ_s / σ_t.
        s, t: (B, 1) in [0, 1]. Returns μ (B, N, D) and σ (B, 1, 1).
        """
        gamma_s, gamma_t = self.gamma(s, z_t.dtype), self.gamma(t, z_t.dtype)
        sigma2_t_given_s, sigma_t_given_s, alpha_t_given_s = self.sigma_and_alpha_t_given_s(gamma_t, gamma_s, z_t)
        sigma_s, sigma_t = self.sigma(gamma_s, z_t), self.sigma(gamma_t, z_t)
        mu = z_t / alpha_t_given_s - (sigma2_t_given_s / alpha_t_given_s / sigma_t) * eps_t
        return mu, sigma_t_given_s * sigma_s / sigma_t

    def p_zs_given_zt(
        self,
        s: torch.Tensor,
        t: torch.Tensor,
        z_t: torch.Tensor,
        node_mask: torch.Tensor,
        edge_mask: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        graph: MolGraph | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ (B, N, D), σ (B, 1, 1)) of the reverse step p(z_s | z_t); s = t − 1/T in EDM's sampler."""
        eps_t = self.phi(z_t, t, node_mask, edge_mask, context, graph)
        geo.assert_mean_zero_with_mask(z_t[:, :, : self.n_dims], node_mask)
        geo.assert_mean_zero_with_mask(eps_t[:, :, : self.n_dims], node_mask)
        return self.posterior_from_eps(z_t, eps_t, s, t)

    def sample_from_step(
        self, mu: torch.Tensor, sigma: torch.Tensor, node_mask: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """The one draw of a reverse step, for every sampler (:func:`elign.diffusion.sampler.reverse_step`,
        RL rollouts, :meth:`sample_p_zs_given_zt`): z_s = μ + σ·ε with ε from
        :meth:`sample_combined_position_feature_noise` (x then h, from ``generator``), then x re-centred
        against round-off drift (EDM). No host-synchronising mask checks: μ and ε are zero in padded slots."""
        b, n, _ = node_mask.shape
        eps = self.sample_combined_position_feature_noise(b, n, node_mask, generator, mu.dtype, check_mask=False)
        z_s = mu + sigma * eps
        x = geo.remove_mean_with_mask(z_s[:, :, : self.n_dims], node_mask, check_mask=False)
        return torch.cat([x, z_s[:, :, self.n_dims :]], dim=2)

    def sample_p_zs_given_zt(
        self,
        s: torch.Tensor,
        t: torch.Tensor,
        z_t: torch.Tensor,
        node_mask: torch.Tensor,
        edge_mask: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        graph: MolGraph | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """One ancestral sampling step z_t -> z_s."""
        mu, sigma = self.p_zs_given_zt(s, t, z_t, node_mask, edge_mask, context, graph)
        return self.sample_from_step(mu, sigma, node_mask, generator)

    @staticmethod
    def reverse_step_log_prob(
        z_s: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor, node_mask: torch.Tensor
    ) -> torch.Tensor:
        """(B,) log N(z_s; μ, σ²) with (n−1)·3 + n·F degrees of freedom (see :mod:`elign.diffusion.gaussian`)."""
        return reverse_step_log_prob(z_s, mu, sigma, node_mask)

    def sample_p_xh_given_z0(
        self,
        z0: torch.Tensor,
        node_mask: torch.Tensor,
        edge_mask: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        graph: MolGraph | None = None,
        generator: torch.Generator | None = None,
    ) -> Decoded:
        """Final decode p(x, h | z_0) (EDM ``sample_p_xh_given_z0``).

        x ~ N(ẑ_0, (σ_0/α_0)²) with ẑ_0 from φ(z_0, 0); atom type = argmax of z_0's one-hot block;
        charge = round(z_0's charge column · factor + bias). Returns :class:`Decoded` in data units.
        """
        zeros = torch.zeros((z0.shape[0], 1), dtype=z0.dtype, device=z0.device)
        gamma_0 = self.gamma(zeros, z0.dtype)
        sigma_x = self.snr(-0.5 * gamma_0).unsqueeze(1)  # sqrt(σ_0² / α_0²), (B, 1, 1)
        eps_0 = self.phi(z0, zeros, node_mask, edge_mask, context, graph)
        mu_x = self.compute_x_pred(eps_0, z0, gamma_0)
        xh = self.sample_normal(mu_x, sigma_x, node_mask, generator)
        _, z_cat, z_int = self.split_z(z0)
        x, h_cat, h_int = self.unnormalize(xh[:, :, : self.n_dims], z_cat, z_int, node_mask)
        one_hot = F.one_hot(torch.argmax(h_cat, dim=2), self.num_classes).to(z0.dtype) * node_mask
        charges = torch.round(h_int) * node_mask if self.include_charges else h_int
        return Decoded(x, one_hot, charges)
