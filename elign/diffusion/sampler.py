"""Fast batched ancestral sampling of molecules from an :class:`EnVariationalDiffusion` (EDM's sampler).

EDM (Hoogeboom et al. 2022, ``EnVariationalDiffusion.sample``): z_T ~ N(0, I) (zero-CoM positions), then
for s = T−1 … 0 one reverse step z_{s+1} → z_s ~ p(z_s | z_{s+1}), then the decode p(x, h | z_0). Here:

* molecules of similar size share a batch (sorted by atom count, then cut into ``batch_size`` chunks and,
  with ``max_edges``, under an edge budget: :func:`elign.data.batching.plan_batches`), so padding is small
  and one large molecule does not blow up a batch's memory; the output keeps the requested order;
* the sparse graph of a batch is built once and reused for all T + 1 network calls; no autograd
  (``torch.inference_mode``); the model's dtype (float32 from the CLI);
* every batch gets its own ``torch.Generator`` seeded from (seed, batch index), so a seed reproduces the
  samples exactly (for the same sizes, batch size, edge budget and device);
* a sample that goes wrong is kept as a row with a ``status`` ("nan", "exploded", "bad_charge") and a
  ``reason``, never an exception.

:func:`reverse_step` is the single reverse step, shared with RL rollouts (which also take its ε̂ and pass
a context) and guided sampling: its ``hook(StepState) -> μ or None`` may replace the mean before z_s is
drawn (e.g. an MLFF force term).
It sets no grad mode itself; note that tensors made under ``inference_mode`` cannot later enter autograd
(RL code that wants gradients through stored states should roll out under ``torch.no_grad`` instead).

Shapes: B molecules padded to N atoms, D = 3 + F features per atom; positions in Å after decoding.
"""

from __future__ import annotations

import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from elign.data.batching import plan_batches
from elign.diffusion import geometry as geo
from elign.diffusion.en_diffusion import Decoded, EnVariationalDiffusion
from elign.elements import atomic_number
from elign.io.table import MoleculeTable
from elign.model.graph import MolGraph

__all__ = [
    "StepState",
    "StepOutput",
    "BatchSample",
    "SampleResult",
    "reverse_step",
    "sample_batch",
    "sample_molecules",
    "compile_network",
    "atomic_numbers_of_types",
    "make_node_mask",
    "plan_batches",
    "check_batch",
    "draw_noise",
    "batch_seed",
    "STATUSES",
]

STATUSES = ("ok", "nan", "exploded", "bad_charge")


@dataclass
class StepState:
    """What a step hook sees at the reverse step t → s (both (B, 1) in [0, 1]; ``t_int`` = round(t·T)).

    z_t, mu: (B, N, D) in model units; sigma: (B, 1, 1); node_mask (B, N, 1); graph: the batch's graph.
    """

    model: EnVariationalDiffusion
    t_int: int
    s: torch.Tensor
    t: torch.Tensor
    z_t: torch.Tensor
    mu: torch.Tensor
    sigma: torch.Tensor
    node_mask: torch.Tensor
    graph: MolGraph


#: hook(state) -> a replacement μ (B, N, D) or None to keep it; x is re-centred after sampling anyway.
StepHook = Callable[[StepState], "torch.Tensor | None"]


@dataclass
class StepOutput:
    """z_s (B, N, D) drawn from N(μ, σ²) (x re-centred), the μ, σ (B, 1, 1) it was drawn from (after the
    hook), and the network's ε̂ = φ(z_t, t) (B, N, D) that gave μ (RL rollouts decode ẑ_{0|t} from it)."""

    z_s: torch.Tensor
    mu: torch.Tensor
    sigma: torch.Tensor
    eps: torch.Tensor


def draw_noise(
    model: EnVariationalDiffusion, node_mask: torch.Tensor, generator: torch.Generator | None, dtype: torch.dtype
) -> torch.Tensor:
    """ε = [zero-CoM Gaussian x, masked Gaussian h] (B, N, D) for ``node_mask``: the model's
    ``sample_combined_position_feature_noise`` without its host-synchronising mask check."""
    b, n, _ = node_mask.shape
    return model.sample_combined_position_feature_noise(b, n, node_mask, generator, dtype, check_mask=False)


def reverse_step(
    model: EnVariationalDiffusion,
    z_t: torch.Tensor,
    s: torch.Tensor,
    t: torch.Tensor,
    node_mask: torch.Tensor,
    graph: MolGraph,
    generator: torch.Generator | None = None,
    hook: StepHook | None = None,
    t_int: int = -1,
    context: torch.Tensor | None = None,
) -> StepOutput:
    """One ancestral step z_t → z_s: ε̂ = φ(z_t, t), (μ, σ) of p(z_s | z_t), optional hook on μ, then
    z_s = μ + σ·ε with x re-centred (``model.sample_from_step``, the one draw; bit-identical to EDM's
    ``sample_p_zs_given_zt`` without a hook).

    s, t: (B, 1) in [0, 1]; z_t (B, N, D) model units; graph from ``model.make_graph(node_mask)``;
    context: (B, N, c) node context of a conditional model, or None.
    """
    eps = model.phi(z_t, t, node_mask, context=context, graph=graph)
    mu, sigma = model.posterior_from_eps(z_t, eps, s, t)
    if hook is not None:
        new_mu = hook(StepState(model, t_int, s, t, z_t, mu, sigma, node_mask, graph))
        mu = mu if new_mu is None else new_mu
    return StepOutput(model.sample_from_step(mu, sigma, node_mask, generator), mu, sigma, eps)


def compile_network(model: EnVariationalDiffusion, **kwargs) -> EnVariationalDiffusion:
    """``torch.compile`` the model's EGNN in place (dynamic shapes: one compilation serves every batch).

    State-dict keys do not change. Measured on 1 shared CPU thread (bench/sampling.py, float32): edm_qm9
    1.3× per step after ~30 s of compilation, small_cpu no gain; so it pays only for long runs of big
    models. Round-off differs from eager, so a seed reproduces samples only within the same mode.
    """
    model.dynamics.egnn.compile(dynamic=True, **kwargs)
    if model.prefix_dynamics is not None:
        model.prefix_dynamics.egnn.compile(dynamic=True, **kwargs)
    return model


def make_node_mask(sizes: Sequence[int], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(B, N, 1) mask of molecules with ``sizes`` atoms padded to N = max(sizes)."""
    n = torch.as_tensor(list(sizes), device=device)
    return (torch.arange(int(n.max()), device=device)[None, :] < n[:, None]).to(dtype)[..., None]


class BatchSample(NamedTuple):
    """One sampled batch: node_mask (B, N, 1); z0 (B, N, D) model units; decoded (x Å, one-hot, charges);
    nonfinite_t (B,) long: the step t at which the molecule's chain first held a non-finite value, else −1."""

    node_mask: torch.Tensor
    z0: torch.Tensor
    decoded: Decoded
    nonfinite_t: torch.Tensor


def sample_batch(
    model: EnVariationalDiffusion,
    sizes: Sequence[int],
    generator: torch.Generator | None = None,
    hook: StepHook | None = None,
    n_steps: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> BatchSample:
    """One batch of the chain t = T … 1 and the decode; no grad mode is set (callers choose).

    sizes: atom count of each of the B molecules. n_steps: run only the first ``n_steps`` reverse steps
    from t = T (benchmarks and tests; the result is then not a finished sample). progress(k): called
    after each step with k = 1. A molecule whose z turns non-finite is set to zero from then on (so that
    EDM's batch-wide NaN reset of the velocity does not hit the others) and decoded with NaN positions.
    """
    param = next(model.parameters())
    dtype, device = param.dtype, param.device
    node_mask = make_node_mask(sizes, device, dtype)
    graph = model.make_graph(node_mask)
    b = node_mask.shape[0]
    steps = model.T if n_steps is None else min(int(n_steps), model.T)
    nonfinite_t = torch.full((b,), -1, dtype=torch.long, device=device)
    z = draw_noise(model, node_mask, generator, dtype)
    for s_int in range(model.T - 1, model.T - 1 - steps, -1):
        s = torch.full((b, 1), s_int / model.T, dtype=dtype, device=device)
        t = torch.full((b, 1), (s_int + 1) / model.T, dtype=dtype, device=device)
        z = reverse_step(model, z, s, t, node_mask, graph, generator, hook, t_int=s_int + 1).z_s
        finite = torch.isfinite(z).flatten(1).all(dim=1)  # (B,); no host sync
        nonfinite_t = torch.where(~finite & (nonfinite_t < 0), s_int + 1, nonfinite_t)
        z = torch.where(finite[:, None, None], z, torch.zeros((), dtype=dtype, device=device))
        if progress is not None:
            progress(1)
    out = model.sample_p_xh_given_z0(z, node_mask, graph=graph, generator=generator)
    x = torch.where((nonfinite_t >= 0)[:, None, None], torch.full((), float("nan"), dtype=dtype, device=device), out.x)
    drift = torch.sum(x, dim=1).abs().amax(dim=1)  # (B,) |Σ x| per molecule
    if bool((drift > 5e-2).any()):  # EDM's safeguard (NaN rows compare False and stay as they are)
        warnings.warn(
            f"centre-of-gravity drift up to {drift.max().item():.3f}; projecting those molecules down",
            RuntimeWarning,
            stacklevel=2,
        )
        x = torch.where((drift > 5e-2)[:, None, None], geo.remove_mean_with_mask(x, node_mask, check_mask=False), x)
    return BatchSample(node_mask, z, out._replace(x=x), nonfinite_t)


def batch_seed(seed: int, batch_index: int) -> int:
    """Seed of batch ``batch_index``'s generator (independent streams per batch)."""
    return int(np.random.SeedSequence([int(seed), int(batch_index)]).generate_state(1, np.uint64)[0] >> 1)


# --------------------------------------------------------------------------------- checks and output
def atomic_numbers_of_types(model: EnVariationalDiffusion) -> torch.Tensor:
    """(K,) long: atomic number of each one-hot column (from the model's atom_decoder)."""
    if model.atom_decoder is None:
        raise ValueError("the model has no atom_decoder; cannot name its atom types")
    return torch.tensor([atomic_number(s) for s in model.atom_decoder], dtype=torch.long)


def check_batch(
    model: EnVariationalDiffusion, batch: BatchSample, max_abs_position_ang: float
) -> tuple[list[np.ndarray], list[np.ndarray], list[str], list[str]]:
    """Per molecule of one batch: (atomic numbers (n,), positions (n, 3) Å float32, status, reason).

    Status, first that applies: "nan" (the chain went non-finite, or a non-finite position or z_0
    feature), "exploded" (max |x| beyond ``max_abs_position_ang`` Å), "bad_charge" (models with charges:
    the rounded charge column ≠ the atomic number of the decoded type, which EDM's QM9 encoding makes
    them equal; EDM's sampler itself only asserts masking), else "ok".
    """
    z_of_type = atomic_numbers_of_types(model).numpy()
    node_mask, z0, out = batch.node_mask, batch.z0, batch.decoded
    nonfinite_t = batch.nonfinite_t.cpu().numpy()
    mask = node_mask[..., 0].bool().cpu().numpy()
    x = out.x.cpu().numpy()
    types = torch.argmax(out.one_hot, dim=2).cpu().numpy()
    feats = z0[:, :, model.n_dims :].cpu().numpy()
    charges = out.charges[..., 0].cpu().numpy() if model.include_charges else None
    zs, pos, status, reason = [], [], [], []
    for b in range(mask.shape[0]):
        m = mask[b]
        xb, zb = x[b, m], z_of_type[types[b, m]]
        zs.append(zb)
        pos.append(xb.astype(np.float32))
        if nonfinite_t[b] >= 0 or not (np.isfinite(xb).all() and np.isfinite(feats[b, m]).all()):
            status.append("nan")
            where = f"in the chain at step t={nonfinite_t[b]}" if nonfinite_t[b] >= 0 else "in the decoded sample"
            reason.append(f"non-finite values {where}")
            continue
        biggest = float(np.abs(xb).max()) if xb.size else 0.0
        if biggest > max_abs_position_ang:
            status.append("exploded")
            reason.append(f"max |x| = {biggest:.4g} A > max_abs_position_ang = {max_abs_position_ang:g} A")
            continue
        if charges is not None:
            bad = np.flatnonzero(charges[b, m] != zb)
            if bad.size:
                i = int(bad[0])
                status.append("bad_charge")
                reason.append(
                    f"{bad.size} atom(s) whose charge differs from the decoded type's atomic number "
                    f"(first: atom {i}, type Z={int(zb[i])}, charge {charges[b, m][i]:g})"
                )
                continue
        status.append("ok")
        reason.append("")
    return zs, pos, status, reason


@dataclass
class SampleResult:
    """Sampled molecules in the requested order and the timing of their batches.

    table: mol_id = request index, positions in Å (float32, as sampled), columns ``status``, ``reason``,
    ``sample_seconds`` (its batch's seconds / batch size), ``batch``. batch_seconds, batch_sizes,
    batch_max_atoms: (n_batches,); steps: reverse steps per batch.
    """

    table: MoleculeTable
    batch_seconds: np.ndarray
    batch_sizes: np.ndarray
    batch_max_atoms: np.ndarray
    steps: int

    def summary(self) -> dict:
        """Throughput and status counts (molecules/s, reverse steps/s over batches and over molecules)."""
        total = float(self.batch_seconds.sum())
        n_mol, n_batch = len(self.table), len(self.batch_seconds)
        rate = lambda v: v / total if total > 0 else float("nan")
        return {
            "num_molecules": n_mol,
            "num_batches": n_batch,
            "reverse_steps": self.steps,
            "sample_seconds": total,
            "molecules_per_s": rate(n_mol),
            "batch_steps_per_s": rate(n_batch * self.steps),
            "molecule_steps_per_s": rate(n_mol * self.steps),
            "status_counts": dict(Counter(self.table.columns["status"].tolist())),
        }


def sample_molecules(
    model: EnVariationalDiffusion,
    sizes: Sequence[int],
    batch_size: int = 64,
    seed: int = 0,
    max_abs_position_ang: float = 100.0,
    hook: StepHook | None = None,
    n_steps: int | None = None,
    progress: Callable[[int], None] | None = None,
    max_edges: int | None = None,
) -> SampleResult:
    """Sample ``len(sizes)`` molecules (molecule i has sizes[i] atoms) on the model's device and dtype.

    Batches from :func:`plan_batches` (``batch_size`` molecules, ``max_edges`` directed edges at most); batch k
    uses a generator seeded with ``batch_seed(seed, k)``. hook / n_steps / progress: as :func:`sample_batch`; a
    hook with a ``begin_batch(indices)`` method is told which requested molecules each batch holds (per-molecule
    bookkeeping, e.g. the guidance's status rows). Runs under ``torch.inference_mode``.
    """
    if len(sizes) == 0:
        raise ValueError("nothing to sample: sizes is empty")
    device = next(model.parameters()).device
    n = len(sizes)
    zs, pos = [None] * n, [None] * n
    status, reason = np.empty(n, dtype=object), np.empty(n, dtype=object)
    per_mol, batch_of = np.zeros(n), np.zeros(n, dtype=np.int64)
    plan = plan_batches(sizes, batch_size, max_edges)
    seconds = np.zeros(len(plan))
    was_training = model.training
    model.eval()
    try:
        for k, idx in enumerate(plan):
            gen = torch.Generator(device=device).manual_seed(batch_seed(seed, k))
            if hasattr(hook, "begin_batch"):
                hook.begin_batch(idx)
            t0 = time.perf_counter()
            with torch.inference_mode():
                batch = sample_batch(model, [sizes[i] for i in idx], gen, hook, n_steps, progress)
                rows = check_batch(model, batch, max_abs_position_ang)  # copies to the host: synchronises
            seconds[k] = time.perf_counter() - t0
            for j, i in enumerate(idx):
                zs[i], pos[i], status[i], reason[i] = rows[0][j], rows[1][j], rows[2][j], rows[3][j]
            per_mol[idx], batch_of[idx] = seconds[k] / len(idx), k
    finally:
        model.train(was_training)
    table = MoleculeTable(
        np.arange(n),
        np.asarray(sizes),
        np.concatenate(zs),
        np.concatenate(pos),
        np.full(n, None, dtype=object),
        {"status": status, "reason": reason, "sample_seconds": per_mol, "batch": batch_of},
    )
    steps = model.T if n_steps is None else min(int(n_steps), model.T)
    return SampleResult(
        table, seconds, np.array([len(i) for i in plan]), np.array([max(sizes[i] for i in idx) for idx in plan]), steps
    )
