"""The FED-GRPO update (step 4 of :mod:`elign.rl.trainer`): ``update_epochs`` passes over the (rollout,
trained step) pairs in the loss; each pass takes one AdamW step per micro-batch of rollouts
(:func:`micro_batches`), on the mean loss of its pairs, accumulated in chunks of ``minibatch_steps`` pairs (cut
earlier under ``max_batch_edges``) after clipping the gradient norm (:mod:`elign.rl.objective` for the loss).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import numpy as np
import torch

from elign.data.batching import plan_chunks
from elign.diffusion.en_diffusion import EnVariationalDiffusion
from elign.rl.advantages import Advantages
from elign.rl.objective import LossStats, ppo_kl_loss
from elign.rl.rollout import Rollouts, step_times
from elign.training.optim import EMA, set_learning_rate

log = logging.getLogger("elign.finetune")

__all__ = ["chunk_loss", "micro_batches", "update_policy"]


def chunk_loss(
    policy: EnVariationalDiffusion,
    reference: EnVariationalDiffusion,
    ro: Rollouts,
    rows: torch.Tensor,
    steps: torch.Tensor,
    advantage: torch.Tensor,
    denominator: int,
    clip_range: float,
    kl_weight: float,
    *,
    policy_features: bool = True,
    feature_kl_weight: float = 1.0,
) -> tuple[torch.Tensor, LossStats]:
    """Loss of the pairs (rows[m], steps[m]) (branched-step indices), μ_θ with grad, μ_ref without.

    policy_features False: log-probs (new and old, the old one from the recorded μ_old) of the positions only.
    """
    n = int(ro.sizes[rows].max())
    node_mask, z_t, z_s = ro.node_mask[rows, :n], ro.z[rows, steps, :n], ro.z[rows, steps + 1, :n]
    ctx = None if ro.context is None else ro.context[rows, :n]
    s, t = step_times(policy, ro.t_int[steps], len(rows), z_t.dtype, z_t.device)
    graph = policy.make_graph(node_mask)
    mu, sigma = policy.posterior_from_eps(z_t, policy.phi(z_t, t, node_mask, context=ctx, graph=graph), s, t)
    if policy_features:
        logp, logp_old = policy.reverse_step_log_prob(z_s, mu, sigma, node_mask), ro.logp_old[rows, steps]
    else:
        x = slice(0, policy.n_dims)
        logp = policy.reverse_step_log_prob(z_s[..., x], mu[..., x], sigma, node_mask)
        logp_old = policy.reverse_step_log_prob(z_s[..., x], ro.mu_old[rows, steps, :n, x], sigma, node_mask)
    with torch.no_grad():
        mu_ref = reference.posterior_from_eps(z_t, reference.phi(z_t, t, node_mask, context=ctx, graph=graph), s, t)[0]
    return ppo_kl_loss(
        logp,
        logp_old,
        advantage,
        mu,
        mu_ref,
        sigma,
        node_mask,
        clip_range=clip_range,
        kl_weight=kl_weight,
        denominator=denominator,
        feature_kl_weight=feature_kl_weight,
    )


def micro_batches(rows: np.ndarray, num_rollouts: int, rollouts_per_step: int | None) -> list[np.ndarray]:
    """Indices into the pairs (whose rollout rows are ``rows``, (M,)) of each optimizer step: all pairs in one
    step (None), or the pairs of rollouts [0, m), [m, 2m), … in row order (the official code chunks its
    rollout batch in order, without shuffling). A chunk without any pair in the loss takes no step."""
    if rollouts_per_step is None:
        return [np.arange(len(rows))]
    chunks = [
        np.flatnonzero((rows >= lo) & (rows < lo + rollouts_per_step))
        for lo in range(0, num_rollouts, rollouts_per_step)
    ]
    return [c for c in chunks if len(c)]


def _accumulate(policy, reference, ro, rows, steps, advantage, sel: np.ndarray, fc) -> tuple[float, LossStats]:
    """Backward the mean loss of the pairs ``sel`` in chunks of ``fc.minibatch_steps``; (loss, statistics)."""
    total, stats = 0.0, LossStats.empty()
    sizes = ro.sizes[rows[torch.as_tensor(sel, device=rows.device)]].cpu().numpy()  # edge budget: elign.data.batching
    for chunk in plan_chunks(sizes, fc.minibatch_steps, getattr(fc, "max_batch_edges", None)):
        idx = torch.as_tensor(sel[chunk], device=rows.device)
        loss, part = chunk_loss(
            policy,
            reference,
            ro,
            rows[idx],
            steps[idx],
            advantage[idx],
            len(sel),
            fc.clip_range,
            fc.kl_weight,
            policy_features=fc.policy_features,
            feature_kl_weight=fc.feature_kl_weight,
        )
        loss.backward()
        total += float(loss.detach())
        stats = stats.merge(part)
    return total, stats


def update_policy(
    policy,
    reference,
    optimizer,
    ro: Rollouts,
    trained: np.ndarray,
    adv: Advantages,
    fc,
    ema: EMA | None = None,
    first_step: int = 0,
    lr_at: Callable[[int], float] | None = None,
) -> dict[str, float]:
    """``fc.update_epochs`` passes over the pairs in the loss; each pass takes one AdamW step per micro-batch
    (:func:`micro_batches`) on the mean loss of its pairs, accumulated in chunks, after clipping the gradient
    norm. ``lr_at(k)`` sets the rate of optimizer step k (counted from ``first_step``). Returns the merged loss
    statistics, mean loss and mean pre-clipping gradient norm over the steps, and ``optimizer_steps`` taken."""
    keep = adv.in_loss & ro.finite.cpu().numpy()[:, None]
    b_idx, j_idx = np.nonzero(keep)
    dev = ro.z.device
    rows = torch.as_tensor(b_idx, device=dev)
    steps = torch.as_tensor(trained[b_idx, j_idx], device=dev)
    advantage = torch.as_tensor(adv.advantage[b_idx, j_idx], device=dev)
    n_pairs, stats, losses, norms = len(b_idx), LossStats.empty(), [], []
    if n_pairs == 0:
        log.warning("no (rollout, step) pair has a reward signal this iteration: no update")
    batches = micro_batches(b_idx, ro.num_rollouts, fc.micro_batch_rollouts) if n_pairs else []
    step = first_step
    for _ in range(fc.update_epochs):
        for sel in batches:
            optimizer.zero_grad(set_to_none=True)
            total, part = _accumulate(policy, reference, ro, rows, steps, advantage, sel, fc)
            stats = stats.merge(part)
            norm = float(torch.nn.utils.clip_grad_norm_(policy.parameters(), fc.grad_clip))
            if not (math.isfinite(norm) and math.isfinite(total)):
                raise FloatingPointError(f"non-finite FED-GRPO loss ({total}) or gradient norm ({norm})")
            if lr_at is not None:
                set_learning_rate(optimizer, lr_at(step))
            optimizer.step()
            step += 1
            if ema is not None:
                ema.update(policy)
            losses.append(total)
            norms.append(norm)
    nan = float("nan")
    return {
        **stats.summary(),
        "loss": float(np.mean(losses)) if losses else nan,
        "grad_norm": float(np.mean(norms)) if norms else nan,
        "trained_pairs": n_pairs,
        "optimizer_steps": step - first_step,
    }
