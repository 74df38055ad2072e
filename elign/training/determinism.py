"""Pretraining's determinism: seeds derived from the run's seed, the order of the training molecules, and
the diffusion times and noise of a global batch.

Step k (0-based) trains on global batch k: epoch e = k // S (S = ⌊M / batch_size⌋ steps per epoch; the last
incomplete batch of an epoch is dropped), rows e·S… of a permutation drawn from a NumPy generator seeded by
(seed, epoch). :func:`draw_training_noise` draws t and ε on CPU from the ``torch.Generator`` the trainer checkpoints,
in EDM's order; the validation loss (:mod:`elign.training.evaluation`) uses it with its own generator.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch

from elign.data.batching import node_mask_from_sizes
from elign.diffusion.en_diffusion import EnVariationalDiffusion


def derive_seed(seed: int, *keys: str | int) -> int:
    """A 63-bit seed from the master seed and a path of keys (strings hashed with crc32)."""
    ints = [int(seed)] + [k if isinstance(k, int) else zlib.crc32(k.encode()) for k in keys]
    return int(np.random.SeedSequence(ints).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """(n,) order of the training molecules in ``epoch``; depends only on (seed, epoch)."""
    return np.random.default_rng(derive_seed(seed, "pretrain/data", epoch)).permutation(n)


def global_batch(step: int, n: int, batch_size: int, seed: int) -> tuple[int, int, np.ndarray]:
    """(epoch, index inside the epoch, (batch_size,) molecule positions) of 0-based step ``step``."""
    per_epoch = n // batch_size
    epoch, pos = divmod(step, per_epoch)
    return epoch, pos, epoch_permutation(n, seed, epoch)[pos * batch_size : (pos + 1) * batch_size]


def draw_training_noise(
    model: EnVariationalDiffusion, sizes: np.ndarray, n_slots: int, generator: torch.Generator, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Training noise of a global batch, drawn on CPU: t (B, 1) int64 in {0…T} and ε (B, N, 3 + F)
    (zero-CoM for x, zero in padded slots), in the order EDM's ``compute_loss`` draws them."""
    b = len(sizes)
    mask = node_mask_from_sizes(sizes, n_slots, dtype)
    t_int = torch.randint(0, model.T + 1, (b, 1), generator=generator)
    eps = model.sample_combined_position_feature_noise(b, n_slots, mask, generator, dtype)
    return t_int, eps
