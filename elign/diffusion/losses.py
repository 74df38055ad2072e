"""EDM's training loss and variational bound, as a mixin of :class:`EnVariationalDiffusion`.

Follows ``EnVariationalDiffusion.compute_loss`` / ``forward`` in EDM's ``equivariant_diffusion/en_diffusion.py``
(Hoogeboom et al. 2022, Sec. 3.3 and App. B). Per molecule, with t ~ U{0, …, T}:

Training with ``loss_type='l2'`` (how every published EDM model was trained; ``module.train()``):
    loss = KL(q(z_T | x) ‖ N(0, I))                      (data-only, ≈ 0, no gradient; kept as EDM does)
         + [t > 0] ½ ‖ε − ε̂‖² / ((3 + F)·N)              (N = padded size of the batch, as EDM)
         + [t = 0] −log p(x, h | z_0) without constants  (its x part uses the same scaled error)
    with the log-normalisation constants of p(x | z_0) and the Δlog p_x of ``normalize`` set to zero.
EDM's training script then subtracts log p(N) (a data constant from the size histogram; not included
here) and averages over the batch.

Evaluation (``module.eval()``) or ``loss_type='vlb'``: the full negative ELBO estimate
    −log p(x, h) ≤ KL_prior + T·½(SNR(s − t) − 1)·‖ε − ε̂‖² + L_0 + constants − Δlog p_x,
with L_0 from a second network pass at t = 0 (``t0_always``), as EDM.
Shapes: x (B, N, 3), h_cat (B, N, K), h_int (B, N, c), node_mask (B, N, 1); losses (B,).
"""

from __future__ import annotations

import numpy as np
import torch

from elign.diffusion import geometry as geo
from elign.diffusion.gaussian import cdf_standard_gaussian, gaussian_kl, gaussian_kl_for_dimension
from elign.model.graph import MolGraph


class DiffusionLossMixin:
    """EDM's loss terms; relies on the schedule/scaling methods of EnVariationalDiffusion."""

    def _l2_training(self) -> bool:
        return self.training and self.config.loss_type == "l2"

    def compute_error(self, net_out: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Σ (ε − ε̂)² per molecule; divided by (3 + F)·N in l2 training (EDM ``compute_error``)."""
        error = geo.sum_except_batch((eps - net_out) ** 2)
        if self._l2_training():
            error = error / ((self.n_dims + self.in_node_nf) * net_out.shape[1])
        return error

    def kl_prior(self, xh: torch.Tensor, node_mask: torch.Tensor) -> torch.Tensor:
        """KL(q(z_T | x, h) ‖ N(0, I)) with (n − 1)·3 dimensions for x and n·F for h, (B,)."""
        b = xh.shape[0]
        gamma_t = self.gamma(torch.ones((b, 1), dtype=xh.dtype, device=xh.device), xh.dtype)
        mu_t = self.alpha(gamma_t, xh) * xh
        mu_x, mu_h = mu_t[:, :, : self.n_dims], mu_t[:, :, self.n_dims :]
        sigma_x = self.sigma(gamma_t, mu_x).reshape(b)
        sigma_h = self.sigma(gamma_t, mu_h)
        kl_h = gaussian_kl(mu_h, sigma_h, torch.zeros_like(mu_h), torch.ones_like(sigma_h), node_mask)
        kl_x = gaussian_kl_for_dimension(
            mu_x, sigma_x, torch.zeros_like(mu_x), torch.ones_like(sigma_x), d=self.subspace_dimensionality(node_mask)
        )
        return kl_x + kl_h

    def log_constants_p_x_given_z0(self, x: torch.Tensor, node_mask: torch.Tensor) -> torch.Tensor:
        """(n − 1)·3·(−log σ_x − ½ log 2π) with σ_x = σ_0/α_0 = exp(γ_0/2), (B,)."""
        b = x.shape[0]
        dof = self.subspace_dimensionality(node_mask)
        gamma_0 = self.gamma(torch.zeros((b, 1), dtype=x.dtype, device=x.device), x.dtype)
        log_sigma_x = 0.5 * gamma_0.reshape(b)
        return dof * (-log_sigma_x - 0.5 * np.log(2 * np.pi))

    def log_pxh_given_z0_without_constants(
        self,
        h_cat: torch.Tensor,
        h_int: torch.Tensor,
        z_t: torch.Tensor,
        gamma_0: torch.Tensor,
        eps: torch.Tensor,
        net_out: torch.Tensor,
        node_mask: torch.Tensor,
        epsilon: float = 1e-10,
    ) -> torch.Tensor:
        """log p(x, h | z_0) up to x's constants: Gaussian x error + discretised integer charge +
        normalised discretised one-hot (EDM ``log_pxh_given_z0_without_constants``), (B,)."""
        _, z_cat, z_int = self.split_z(z_t)
        sigma_0 = self.sigma(gamma_0, z_t)
        sigma_0_cat, sigma_0_int = sigma_0 * self.norm_values[1], sigma_0 * self.norm_values[2]
        log_p_x = -0.5 * self.compute_error(net_out[:, :, : self.n_dims], eps[:, :, : self.n_dims])

        h_integer = torch.round(h_int * self.norm_values[2] + self.norm_biases[2])
        onehot = h_cat * self.norm_values[1] + self.norm_biases[1]
        centred_int = h_integer - (z_int * self.norm_values[2] + self.norm_biases[2])
        log_ph_int = torch.log(
            cdf_standard_gaussian((centred_int + 0.5) / sigma_0_int)
            - cdf_standard_gaussian((centred_int - 0.5) / sigma_0_int)
            + epsilon
        )
        log_ph_int = geo.sum_except_batch(log_ph_int * node_mask)

        centred_cat = (z_cat * self.norm_values[1] + self.norm_biases[1]) - 1
        log_ph_cat = torch.log(
            cdf_standard_gaussian((centred_cat + 0.5) / sigma_0_cat)
            - cdf_standard_gaussian((centred_cat - 0.5) / sigma_0_cat)
            + epsilon
        )
        log_probs = log_ph_cat - torch.logsumexp(log_ph_cat, dim=2, keepdim=True)
        log_ph_cat = geo.sum_except_batch(log_probs * onehot * node_mask)
        return log_p_x + log_ph_int + log_ph_cat

    def _sample_t(
        self, b: int, lowest: int, like: torch.Tensor, t_int: torch.Tensor | None, generator: torch.Generator | None
    ) -> torch.Tensor:
        if t_int is None:
            t_int = torch.randint(lowest, self.T + 1, (b, 1), generator=generator, device=like.device)
        return t_int.reshape(b, 1).to(like.dtype)

    def compute_loss(
        self,
        x: torch.Tensor,
        h_cat: torch.Tensor,
        h_int: torch.Tensor,
        node_mask: torch.Tensor,
        edge_mask: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        t0_always: bool = False,
        graph: MolGraph | None = None,
        t_int: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        eps: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """EDM ``compute_loss`` on normalised data; returns (loss (B,), {'t', 'error', 'loss_t', …}).

        t_int: optional (B,) or (B, 1) integer steps to use instead of sampling them (tests, data-parallel
        training). eps: optional (B, N, 3 + F) noise to use instead of sampling it (zero-CoM x part, zero in
        padded slots, e.g. ``sample_combined_position_feature_noise``); the t = 0 pass of ``t0_always``
        still samples its own.
        """
        graph = graph if graph is not None else self.make_graph(node_mask, edge_mask)
        b = x.shape[0]
        t_int = self._sample_t(b, 1 if t0_always else 0, x, t_int, generator)
        t_is_zero = (t_int == 0).to(x.dtype)
        # s = t − 1 (clamped at 0: at t = 0 EDM reads γ at index −1, a value its loss masks out anyway)
        s, t = (t_int - 1).clamp(min=0) / self.T, t_int / self.T
        gamma_s = self._inflate(self.gamma(s, x.dtype), x)
        gamma_t = self._inflate(self.gamma(t, x.dtype), x)
        if eps is None:
            eps = self.sample_combined_position_feature_noise(b, x.shape[1], node_mask, generator, x.dtype)
        elif tuple(eps.shape) != (b, x.shape[1], self.n_dims + self.in_node_nf):
            expected = (b, x.shape[1], self.n_dims + self.in_node_nf)
            raise ValueError(f"eps has shape {tuple(eps.shape)}, expected {expected}")
        else:
            eps = eps.to(x.dtype)
        xh = torch.cat([x, h_cat, h_int], dim=2)
        z_t = self.alpha(gamma_t, x) * xh + self.sigma(gamma_t, x) * eps
        geo.assert_mean_zero_with_mask(z_t[:, :, : self.n_dims], node_mask)
        net_out = self.phi(z_t, t, node_mask, context=context, graph=graph)
        error = self.compute_error(net_out, eps)
        if self._l2_training():
            snr_weight = torch.ones_like(error)
        else:
            snr_weight = (self.snr(gamma_s - gamma_t) - 1).reshape(b)
        loss_t_pos = 0.5 * snr_weight * error
        neg_log_constants = -self.log_constants_p_x_given_z0(x, node_mask)
        if self._l2_training():
            neg_log_constants = torch.zeros_like(neg_log_constants)
        kl_prior = self.kl_prior(xh, node_mask)
        if t0_always:
            t_zeros = torch.zeros_like(s)
            gamma_0 = self._inflate(self.gamma(t_zeros, x.dtype), x)
            eps_0 = self.sample_combined_position_feature_noise(b, x.shape[1], node_mask, generator, x.dtype)
            z_0 = self.alpha(gamma_0, x) * xh + self.sigma(gamma_0, x) * eps_0
            net_out_0 = self.phi(z_0, t_zeros, node_mask, context=context, graph=graph)
            loss_0 = -self.log_pxh_given_z0_without_constants(h_cat, h_int, z_0, gamma_0, eps_0, net_out_0, node_mask)
            loss = kl_prior + self.T * loss_t_pos + neg_log_constants + loss_0
        else:
            loss_0 = -self.log_pxh_given_z0_without_constants(h_cat, h_int, z_t, gamma_t, eps, net_out, node_mask)
            t_zero = t_is_zero.reshape(b)
            loss_t = loss_0 * t_zero + (1 - t_zero) * loss_t_pos
            loss = kl_prior + (loss_t if self._l2_training() else (self.T + 1) * loss_t) + neg_log_constants
        info = {"t": t_int.reshape(b).long(), "error": error, "loss_t": loss, "kl_prior": kl_prior, "loss_0": loss_0}
        return loss, info

    def loss_terms(
        self,
        x: torch.Tensor,
        h_cat: torch.Tensor,
        h_int: torch.Tensor,
        node_mask: torch.Tensor,
        edge_mask: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        graph: MolGraph | None = None,
        t_int: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        eps: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """EDM ``forward`` on data units (x in Å, one-hot, integer charges) plus the info dict.

        Returns (−log p(x, h) estimate per molecule (B,), info). In l2 training this is the training loss
        described in the module doc; in eval mode the full bound with the t = 0 term always included.
        """
        x, h_cat, h_int, delta_log_px = self.normalize(x, h_cat, h_int, node_mask)
        if self._l2_training():
            delta_log_px = torch.zeros_like(delta_log_px)
        loss, info = self.compute_loss(
            x,
            h_cat,
            h_int,
            node_mask,
            edge_mask,
            context,
            t0_always=not self.training,
            graph=graph,
            t_int=t_int,
            generator=generator,
            eps=eps,
        )
        info["delta_log_px"] = delta_log_px
        return loss - delta_log_px, info

    def forward(
        self,
        x: torch.Tensor,
        h_cat: torch.Tensor,
        h_int: torch.Tensor,
        node_mask: torch.Tensor,
        edge_mask: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        graph: MolGraph | None = None,
        generator: torch.Generator | None = None,
        t_int: torch.Tensor | None = None,
        eps: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B,) loss / negative log-likelihood estimate, as EDM's ``EnVariationalDiffusion.forward``.

        t_int / eps: optional pre-drawn time steps and noise (see :meth:`compute_loss`); training draws them
        for the whole global batch so a data-parallel shard sees the same noise as a single process.
        """
        return self.loss_terms(
            x, h_cat, h_int, node_mask, edge_mask, context, graph, t_int=t_int, generator=generator, eps=eps
        )[0]
