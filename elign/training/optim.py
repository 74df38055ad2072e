"""EDM's optimizer, EMA of the weights and adaptive gradient clipping.

Follows Hoogeboom et al. 2022's code (ehoogeboom/e3_diffusion_for_molecules):
* ``qm9/models.py::get_optim``: AdamW(lr, amsgrad=True, weight_decay=1e-12);
* ``equivariant_diffusion/utils.py::EMA``: ema ← β·ema + (1 − β)·θ after every optimizer step (parameters
  only; β = ``ema_decay``, 0.9999 for the published QM9 model);
* ``utils.py::Queue`` / ``gradient_clipping``: keep the last 50 gradient norms (seeded with 3000 so the first
  steps are effectively unclipped), allow at most 1.5·mean + 2·std (population std) of them, clip the global
  L2 norm to that, and push min(norm, max) back into the queue.

EDM trains at a constant rate; :func:`learning_rate` adds an optional decay at the end (``pretrain.lr_decay``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

#: EDM's queue length and seed value (``utils.Queue(max_len=50)``; ``gradnorm_queue.add(3000)``).
QUEUE_LEN = 50
QUEUE_SEED = 3000.0


def make_optimizer(model: nn.Module, lr: float, weight_decay: float = 1e-12, amsgrad: bool = True) -> torch.optim.AdamW:
    """EDM's optimizer: AdamW with amsgrad over all parameters (``amsgrad=False``: plain AdamW, as the
    official Elign code uses for post-training)."""
    return torch.optim.AdamW(model.parameters(), lr=lr, amsgrad=amsgrad, weight_decay=weight_decay)


def learning_rate(step: np.ndarray | int, lr: float, decay: Any | None) -> np.ndarray | float:
    """The rate of optimizer step ``step`` (0-based; scalar or array of steps).

    ``decay`` is None (constant ``lr``) or has ``start_step``, ``end_step``, ``final_lr`` and ``shape``
    (:class:`elign.config.LrDecay`): ``lr`` before start_step, then cosine or linear to final_lr at end_step.
    """
    steps = np.asarray(step, dtype=np.float64)
    if decay is None:
        rate = np.full_like(steps, lr)
    else:
        frac = np.clip((steps - decay.start_step) / (decay.end_step - decay.start_step), 0.0, 1.0)
        weight = 0.5 * (1.0 + np.cos(np.pi * frac)) if decay.shape == "cosine" else 1.0 - frac
        rate = decay.final_lr + (lr - decay.final_lr) * weight
    return float(rate) if np.ndim(step) == 0 else rate


def set_learning_rate(optimizer: torch.optim.Optimizer, rate: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = rate


class EMA:
    """Exponential moving average of a model's parameters (EDM's ``EMA.update_model_average``).

    ``shadow`` maps parameter names to float tensors (same dtype/device as the parameters). Buffers are
    not averaged: :meth:`state_dict` takes them from the live model, so the result loads into the model.
    """

    def __init__(self, model: nn.Module, decay: float, shadow: Mapping[str, torch.Tensor] | None = None):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        params = dict(model.named_parameters())
        if shadow is None:
            self.shadow = {k: p.detach().clone() for k, p in params.items()}
        else:
            missing = sorted(set(params) - set(shadow))
            if missing:
                raise ValueError(f"EMA state lacks parameters {missing[:5]}")
            self.shadow = {k: shadow[k].detach().to(p.device, p.dtype).clone() for k, p in params.items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """shadow ← β·shadow + (1 − β)·θ for every trained parameter θ (a frozen one keeps its value exactly)."""
        beta = self.decay
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            s = self.shadow[name]
            s.mul_(beta).add_(p.detach(), alpha=1.0 - beta)

    def state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """A full model state dict with the averaged parameters (buffers from ``model``)."""
        return {k: self.shadow.get(k, v).detach().clone() for k, v in model.state_dict().items()}


@dataclass
class GradNormQueue:
    """EDM's ``utils.Queue``: newest first, at most ``max_len`` items."""

    items: list[float]
    max_len: int = QUEUE_LEN

    @classmethod
    def seeded(cls, value: float = QUEUE_SEED, max_len: int = QUEUE_LEN) -> GradNormQueue:
        return cls([float(value)], max_len)

    def add(self, item: float) -> None:
        self.items.insert(0, float(item))
        del self.items[self.max_len :]

    def max_norm(self) -> float:
        """1.5·mean + 2·std of the queue (population std, as ``np.std``)."""
        return float(1.5 * np.mean(self.items) + 2.0 * np.std(self.items))


def clip_gradients(parameters: Iterable[nn.Parameter], queue: GradNormQueue) -> tuple[float, float, bool]:
    """EDM's ``gradient_clipping``: clip the global L2 gradient norm to ``queue.max_norm()``.

    Returns (norm before clipping, the allowed maximum, whether it was clipped); pushes min(norm, max).
    A non-finite norm is pushed as the maximum (clip_grad_norm_ then leaves NaN gradients, as in EDM).
    """
    max_norm = queue.max_norm()
    norm = float(torch.nn.utils.clip_grad_norm_(list(parameters), max_norm=max_norm, norm_type=2.0))
    clipped = not norm <= max_norm
    queue.add(max_norm if clipped else norm)
    return norm, max_norm, clipped


def grad_norm(parameters: Iterable[nn.Parameter]) -> float:
    """Global L2 norm of the gradients (what is logged when clipping is off)."""
    grads = [p.grad.detach() for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))
