"""EDM's ``egnn_dynamics`` network φ(z_t, t): the ε-predictor of the diffusion model.

Follows ``EGNN_dynamics_QM9._forward`` (ehoogeboom/e3_diffusion_for_molecules, ``egnn/models.py``):
input z = [x (3), h (in_node_nf)] per atom; the time t (∈ [0, 1]) is appended as an extra node feature
(``condition_time``), then an optional per-atom context; the EGNN returns new coordinates and features;
the output is [velocity = x_out − x with its mean over real atoms removed (zero centre of mass), h_out
without the time/context columns]. A NaN anywhere in the velocity resets the whole velocity to zero with a
warning, as EDM does.

Two interfaces:
* :meth:`EGNNDynamics.forward` — EDM's padded layout: xh (B, N, 3 + F), node_mask (B, N, 1), optional
  ``edge_mask`` in EDM's layout (B·N·N, 1) or a prebuilt :class:`MolGraph` (preferred: build it once per
  batch with :func:`elign.model.graph.build_graph` and reuse it for every step);
* :meth:`EGNNDynamics.forward_flat` — the M real atoms only, for callers that keep flat tensors.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from elign.config_checks import dataclass_from_dict
from elign.model.egnn import EGNN
from elign.model.graph import MolGraph, build_graph, graph_from_edge_mask


@dataclass(frozen=True)
class DynamicsConfig:
    """Architecture of :class:`EGNNDynamics` (EDM argument names in brackets).

    in_node_nf: atom features without time/context = number of atom types + include_charges.
    hidden_nf [nf], n_layers, inv_sublayers, attention, tanh, coords_range (EDM: 15, not exposed),
    norm_constant, normalization_factor, aggregation_method (only 'sum': EDM's 'mean' divides by the
    padded size N, which a sparse graph cannot reproduce), sin_embedding, condition_time, context_node_nf.
    """

    in_node_nf: int
    hidden_nf: int = 256
    n_layers: int = 9
    inv_sublayers: int = 1
    attention: bool = True
    tanh: bool = True
    coords_range: float = 15.0
    norm_constant: float = 1.0
    normalization_factor: float = 1.0
    aggregation_method: str = "sum"
    sin_embedding: bool = False
    condition_time: bool = True
    context_node_nf: int = 0

    def __post_init__(self) -> None:
        if self.aggregation_method != "sum":
            raise ValueError(
                f"aggregation_method {self.aggregation_method!r} is not supported; only 'sum' "
                "(EDM's QM9 and GEOM models use 'sum')"
            )
        for name in ("in_node_nf", "hidden_nf", "n_layers", "inv_sublayers"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.context_node_nf < 0:
            raise ValueError(f"context_node_nf must be >= 0, got {self.context_node_nf}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DynamicsConfig:
        return dataclass_from_dict(cls, data, "dynamics")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class EGNNDynamics(nn.Module):
    """EDM's EGNN dynamics; the network submodule is ``egnn`` (EDM state-dict prefix ``dynamics.egnn``)."""

    n_dims = 3

    def __init__(self, config: DynamicsConfig):
        super().__init__()
        self.config = config
        extra = int(config.condition_time) + config.context_node_nf
        self.egnn = EGNN(
            in_node_nf=config.in_node_nf + extra,
            hidden_nf=config.hidden_nf,
            n_layers=config.n_layers,
            inv_sublayers=config.inv_sublayers,
            attention=config.attention,
            tanh=config.tanh,
            coords_range=config.coords_range,
            norm_constant=config.norm_constant,
            normalization_factor=config.normalization_factor,
            sin_embedding=config.sin_embedding,
        )

    def forward_flat(
        self,
        t_atom: torch.Tensor | None,
        x: torch.Tensor,
        h: torch.Tensor,
        graph: MolGraph,
        context: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """φ on the real atoms only.

        Args:
            t_atom: (M, 1) time in [0, 1] of each atom's molecule (ignored unless condition_time).
            x: (M, 3) positions, zero centre of mass per molecule; h: (M, in_node_nf) features.
            graph: the batch's MolGraph; context: (M, context_node_nf) or None.
        Returns:
            velocity (M, 3) with zero mean per molecule (before a NaN reset, see module doc), h_out (M, F).
        """
        cfg = self.config
        if h.shape[1] != cfg.in_node_nf:
            raise ValueError(f"h has {h.shape[1]} features, model expects in_node_nf={cfg.in_node_nf}")
        parts = [h]
        if cfg.condition_time:
            if t_atom is None:
                raise ValueError("this model is conditioned on time: pass t")
            parts.append(t_atom.to(h.dtype).reshape(-1, 1))
        if cfg.context_node_nf:
            if context is None or context.shape[1] != cfg.context_node_nf:
                raise ValueError(f"expected a context with {cfg.context_node_nf} features per atom")
            parts.append(context.to(h.dtype))
        h_in = torch.cat(parts, dim=1) if len(parts) > 1 else h
        h_out, x_out = self.egnn(h_in, x, graph)
        vel = x_out - x
        h_out = h_out[:, : cfg.in_node_nf]  # drop the time and context columns
        if torch.isnan(vel).any():
            warnings.warn(
                "NaN in the EGNN velocity output; resetting it to zero (as EDM does)", RuntimeWarning, stacklevel=2
            )
            vel = torch.zeros_like(vel)
        mean = graph.molecule_sum(vel) / graph.n_atoms.clamp(min=1).to(vel.dtype)[:, None]
        return vel - mean[graph.batch], h_out

    def forward(
        self,
        t: torch.Tensor | float,
        xh: torch.Tensor,
        node_mask: torch.Tensor,
        edge_mask: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        graph: MolGraph | None = None,
    ) -> torch.Tensor:
        """EDM's ``_forward``: padded in, padded out.

        Args:
            t: time in [0, 1]: a scalar / one-element tensor, or (B,) / (B, 1) per molecule.
            xh: (B, N, 3 + in_node_nf) = [x, h]; values in padded slots are ignored.
            node_mask: (B, N, 1), 1 for real atoms.
            edge_mask: EDM's (B·N·N, 1) mask; None = all pairs i != j of real atoms (EDM's masks).
            context: (B, N, context_node_nf) or None.
            graph: prebuilt MolGraph (overrides edge_mask); build once per batch and reuse.
        Returns:
            (B, N, 3 + in_node_nf) = [ε̂_x (zero CoM), ε̂_h], zeros in padded slots.
        """
        b, n, _ = xh.shape
        if graph is None:
            graph = build_graph(node_mask) if edge_mask is None else graph_from_edge_mask(node_mask, edge_mask)
        flat = graph.to_flat(xh)
        t = torch.as_tensor(t, dtype=xh.dtype, device=xh.device)
        if t.numel() == 1:
            t_atom = t.reshape(1, 1).expand(flat.shape[0], 1)
        elif t.numel() == b:
            t_atom = t.reshape(b, 1)[graph.batch]
        else:
            raise ValueError(f"t must have 1 or B={b} elements, got shape {tuple(t.shape)}")
        ctx = graph.to_flat(context) if context is not None else None
        vel, h_out = self.forward_flat(t_atom, flat[:, : self.n_dims], flat[:, self.n_dims :], graph, ctx)
        return graph.to_padded(torch.cat([vel, h_out], dim=1))


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
