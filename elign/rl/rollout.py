"""FED-GRPO rollouts: groups of reverse-diffusion trajectories that share a prefix, then branch.

Elign (arXiv 2601.21985) treats the reverse chain of an EDM model as a policy: the state at step t is z_t,
the action is z_s (s = t − 1) drawn from p_θ(z_s | z_t) = N(μ_θ(z_t, t), σ_{t|s}² I) on EDM's space
(zero-CoM positions, free features; :mod:`elign.diffusion.gaussian`). A *prompt* is a molecule size (and,
for conditional models, a condition). For each prompt, K rollouts

* share the initial noise z_T and the first ``shared_prefix_steps`` reverse steps (computed once, for all
  prompts together as one batch of P molecules, then each row repeated K times), and
* branch afterwards with independent noise; only these branched steps are recorded and trained.

For every branched step k (k = 0 … S − 1 in sampling order, t = T − prefix − k, s = t − 1) the rollout
records z_t and z_s (as one chain ``z[:, k]`` / ``z[:, k + 1]``), μ_old and σ of the sampling (old) policy,
log p_old(z_s | z_t) per molecule, and the model's clean prediction ẑ_{0|t} = (z_t − σ_t ε̂)/α_t decoded to
positions (Å) and atom types (argmax of the one-hot block) for the energy potential. The final z_0 is decoded
with EDM's p(x, h | z_0) to positions (Å) and atomic numbers.

Each step is :func:`elign.diffusion.sampler.reverse_step` (the sampler's own step, with the prompt's
context; it also returns the ε̂ the clean prediction is decoded from). Roll out under
``torch.no_grad`` (not ``inference_mode``): the stored tensors enter autograd later in the update. A rollout
whose chain turns non-finite is zeroed from then on (as the sampler does) and flagged in ``finite``.

Shapes: P prompts, K rollouts each, B = P·K rows ordered prompt-major (rows p·K … p·K + K − 1 form group p),
N = the largest prompt size, D = 3 + F, S = T − shared_prefix_steps branched steps.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from elign.data.batching import plan_chunks
from elign.diffusion.en_diffusion import EnVariationalDiffusion
from elign.diffusion.sampler import atomic_numbers_of_types, draw_noise, make_node_mask, reverse_step

__all__ = ["Prompt", "Rollouts", "rollout", "step_times", "make_prompts", "choose_trained_steps", "edge_budget"]


@dataclass(frozen=True)
class Prompt:
    """One prompt: the molecule size, and room for a condition (node context (num_atoms, c) for models
    built with ``context_node_nf = c``; None for the unconditional EDM models used here)."""

    num_atoms: int
    context: torch.Tensor | None = None


def make_prompts(sizes: Sequence[int]) -> list[Prompt]:
    return [Prompt(int(n)) for n in sizes]


@dataclass
class Rollouts:
    """The recorded groups (see the module doc for shapes and meaning).

    group (B,) long: prompt index of each row; node_mask (B, N, 1); t_int (S,) long: t of branched step k;
    z (B, S + 1, N, D): z[:, k] = z_t and z[:, k + 1] = z_s of step k (model units); mu_old (B, S, N, D);
    sigma (S,): std of p(z_s | z_t) (the same for every molecule at a given t); logp_old (B, S);
    x0_ang (B, S, N, 3): ẑ_{0|t} positions in Å; x0_types (B, S, N) long: its atom-type index (−1 padding);
    branch_z (B, N, D): the state at the branch point (= z[:, 0]); final_x_ang (B, N, 3) Å (NaN rows
    where the chain went non-finite); final_numbers (B, N) int64 atomic numbers, 0 = padding;
    finite (B,) bool; type_numbers (K,) long: atomic number of each atom-type column (the model's
    atom_decoder); context: (B, N, c) or None.
    """

    prompts: list[Prompt]
    group: torch.Tensor
    node_mask: torch.Tensor
    t_int: torch.Tensor
    z: torch.Tensor
    mu_old: torch.Tensor
    sigma: torch.Tensor
    logp_old: torch.Tensor
    x0_ang: torch.Tensor
    x0_types: torch.Tensor
    final_x_ang: torch.Tensor
    final_numbers: torch.Tensor
    finite: torch.Tensor
    type_numbers: torch.Tensor
    context: torch.Tensor | None = None

    @property
    def num_rollouts(self) -> int:
        return int(self.group.shape[0])

    @property
    def num_steps(self) -> int:
        return int(self.t_int.shape[0])

    @property
    def group_size(self) -> int:
        return self.num_rollouts // len(self.prompts)

    @property
    def sizes(self) -> torch.Tensor:
        """(B,) long atom counts."""
        return self.node_mask[..., 0].sum(dim=1).round().long()

    @property
    def branch_z(self) -> torch.Tensor:
        return self.z[:, 0]


def step_times(
    model: EnVariationalDiffusion, t_int: torch.Tensor | int, b: int, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(s, t) as (b, 1) tensors for the step t_int → t_int − 1, rounded exactly as the sampler's
    ``torch.full((b, 1), s_int / T)`` (float64 quotient, then cast). t_int: an int or (b,) integer tensor."""
    ti = torch.as_tensor(t_int, device=device).to(torch.float64).reshape(-1, 1).expand(b, 1)
    return ((ti - 1) / model.T).to(dtype), (ti / model.T).to(dtype)


def _keep_finite(z: torch.Tensor, finite: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero the rows of z that turned non-finite; update the (B,) ``finite`` flags."""
    ok = torch.isfinite(z).flatten(1).all(dim=1)
    finite = finite & ok
    return torch.where(finite[:, None, None], z, torch.zeros((), dtype=z.dtype, device=z.device)), finite


def _context(prompts: Sequence[Prompt], n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor | None:
    if all(p.context is None for p in prompts):
        return None
    if any(p.context is None for p in prompts):
        raise ValueError("either every prompt has a condition or none has")
    c = prompts[0].context.shape[-1]
    out = torch.zeros((len(prompts), n, c), dtype=dtype, device=device)
    for i, p in enumerate(prompts):
        out[i, : p.num_atoms] = p.context.to(dtype=dtype, device=device).reshape(p.num_atoms, c)
    return out


def _shared_prefix(model, prompts, prefix_steps, generator, dtype, device):
    """z after the shared prefix for the P prompts (one row each), and their node mask / context."""
    node_mask = make_node_mask([p.num_atoms for p in prompts], device, dtype)
    context = _context(prompts, node_mask.shape[1], dtype, device)
    graph = model.make_graph(node_mask)
    b = node_mask.shape[0]
    z = draw_noise(model, node_mask, generator, dtype)
    finite = torch.ones(b, dtype=torch.bool, device=device)
    for t_int in range(model.T, model.T - prefix_steps, -1):
        s, t = step_times(model, t_int, b, dtype, device)
        z = reverse_step(model, z, s, t, node_mask, graph, generator, context=context).z_s
        z, finite = _keep_finite(z, finite)
    return z, node_mask, context, finite


def rollout(
    model: EnVariationalDiffusion,
    prompts: Sequence[Prompt],
    group_size: int,
    shared_prefix_steps: int,
    generator: torch.Generator | None = None,
    max_edges: int | None = None,
) -> Rollouts:
    """Roll out ``group_size`` trajectories per prompt (module doc). Call under ``torch.no_grad()``;
    the model's dtype and device are used. All randomness comes from ``generator``. ``max_edges``: each
    network pass runs in row chunks of at most this many edges (:func:`edge_budget`); None = whole batches."""
    if not 0 <= shared_prefix_steps < model.T:
        raise ValueError(f"shared_prefix_steps={shared_prefix_steps} must lie in [0, T) with T = {model.T}")
    if group_size < 1 or not prompts:
        raise ValueError("need at least one prompt and one rollout per prompt")
    param = next(model.parameters())
    dtype, device = param.dtype, param.device
    with edge_budget(model, max_edges):
        z, mask_p, ctx_p, finite = _shared_prefix(model, prompts, shared_prefix_steps, generator, dtype, device)
    rep = lambda v: None if v is None else v.repeat_interleave(group_size, dim=0)
    z, node_mask, context, finite = rep(z), rep(mask_p), rep(ctx_p), rep(finite)
    group = torch.arange(len(prompts), device=device).repeat_interleave(group_size)
    with edge_budget(model, max_edges):
        rec = _branch(model, z, node_mask, context, finite, shared_prefix_steps, generator)
    return Rollouts(list(prompts), group, node_mask, context=context, **rec)


@contextmanager
def edge_budget(model: EnVariationalDiffusion, max_edges: int | None) -> Iterator[EnVariationalDiffusion]:
    """Within the block, ``model.phi`` runs each batch in contiguous row chunks of at most ``max_edges``
    directed edges (:func:`elign.data.batching.plan_chunks`), each padded to its own largest molecule with its
    own graph, and returns ε̂ for the whole batch as one call would (padding rows zero). Everything else of a
    step (the noise draws, the posterior) still sees the whole batch, so the random stream is the same: a
    budget only changes how rows are grouped in the network, i.e. ε̂ up to float round-off. A batch that fits
    the budget takes the one-call path unchanged (bit-identical); None changes nothing.
    """
    if max_edges is None:
        yield model
        return
    whole = model.phi

    def chunked_phi(z, t, node_mask, edge_mask=None, context=None, graph=None):
        sizes = node_mask[..., 0].sum(dim=1).round().long().cpu().numpy()
        chunks = plan_chunks(sizes, max_edges=max_edges)
        if len(chunks) == 1 or edge_mask is not None:
            return whole(z, t, node_mask, edge_mask=edge_mask, context=context, graph=graph)
        t = torch.as_tensor(t, dtype=z.dtype, device=z.device)
        out = torch.zeros_like(z)
        for chunk in chunks:
            rows = torch.as_tensor(chunk, device=z.device)
            n = int(sizes[chunk].max())
            mask = node_mask[rows, :n]
            t_rows = t[rows] if t.ndim and t.shape[0] == len(sizes) else t
            ctx = None if context is None else context[rows, :n]
            out[rows, :n] = whole(z[rows, :n], t_rows, mask, context=ctx, graph=model.make_graph(mask))
        return out

    model.phi = chunked_phi
    try:
        yield model
    finally:
        del model.phi


def _branch(model, z, node_mask, context, finite, prefix, generator) -> dict:
    """The branched suffix t = T − prefix … 1 and the decode; returns the recorded tensors."""
    b, n, d = z.shape
    dtype, device = z.dtype, z.device
    steps = model.T - prefix
    graph = model.make_graph(node_mask)
    chain = torch.zeros((b, steps + 1, n, d), dtype=dtype, device=device)
    mu_old = torch.zeros((b, steps, n, d), dtype=dtype, device=device)
    sigma, logp = torch.zeros(steps, dtype=dtype, device=device), torch.zeros((b, steps), dtype=dtype, device=device)
    x0_ang = torch.zeros((b, steps, n, model.n_dims), dtype=dtype, device=device)
    x0_types = torch.full((b, steps, n), -1, dtype=torch.long, device=device)
    t_ints = torch.arange(model.T - prefix, 0, -1, device=device)
    real = node_mask[..., 0] > 0
    chain[:, 0] = z
    for k in range(steps):
        s, t = step_times(model, int(t_ints[k]), b, dtype, device)
        step = reverse_step(model, chain[:, k], s, t, node_mask, graph, generator, context=context)
        z_s, mu, sig, eps = step.z_s, step.mu, step.sigma, step.eps
        z_s, finite = _keep_finite(z_s, finite)
        chain[:, k + 1], mu_old[:, k], sigma[k] = z_s, mu, sig.reshape(-1)[0]
        logp[:, k] = model.reverse_step_log_prob(z_s, mu, sig, node_mask)
        x0 = model.compute_x_pred(eps, chain[:, k], model.gamma(t, dtype))
        x_ang, h_cat, _ = model.unnormalize(*model.split_z(x0), node_mask)
        x0_ang[:, k] = x_ang * node_mask
        x0_types[:, k] = torch.where(real, h_cat.argmax(dim=2), -1)
    out = model.sample_p_xh_given_z0(chain[:, -1], node_mask, context=context, graph=graph, generator=generator)
    z_of = atomic_numbers_of_types(model).to(device)
    numbers = torch.where(real, z_of[out.one_hot.argmax(dim=2)], 0)
    x = torch.where(
        (finite & torch.isfinite(out.x).flatten(1).all(1))[:, None, None],
        out.x,
        torch.full((), float("nan"), dtype=dtype, device=device),
    )
    return {
        "t_int": t_ints,
        "z": chain,
        "mu_old": mu_old,
        "sigma": sigma,
        "logp_old": logp,
        "x0_ang": x0_ang,
        "x0_types": x0_types,
        "final_x_ang": x,
        "final_numbers": numbers,
        "finite": finite,
        "type_numbers": z_of,
    }


def choose_trained_steps(
    num_steps: int, num_groups: int, per_rollout: int | None, rng: np.random.Generator
) -> np.ndarray:
    """(num_groups, S') branched-step indices trained per group, ascending (= sampling order, t descending).

    A random subset of ``per_rollout`` steps per group (the same steps for all K members of a group, so
    that the energy returns can be z-scored across the group at each trained step), or all steps if None
    or larger than ``num_steps``.
    """
    if per_rollout is None or per_rollout >= num_steps:
        return np.tile(np.arange(num_steps), (num_groups, 1))
    return np.stack([np.sort(rng.choice(num_steps, size=per_rollout, replace=False)) for _ in range(num_groups)])
