"""Sample quality while pretraining: EDM's stability and RDKit validity of a small fixed batch of samples.

EDM (Hoogeboom et al. 2022, ``main_qm9.py``) samples molecules every few epochs and records atom and molecule
stability, because its maintainers found the training loss does not track sample quality. Here, every
``pretrain.eval_every`` steps the EMA weights (or the raw weights without EMA) sample ``eval_molecules``
molecules with the full chain (T steps) and :mod:`elign.metrics` scores them. The sizes and the noise are
the same at every evaluation (seeded from the run's seed only), so two evaluations differ only by the
weights. The training trajectory does not depend on it: sampling uses its own generators, and the global
torch RNG is restored afterwards.

Columns added to ``history.parquet`` (null on rows without an evaluation): ``eval_molecules`` (int64),
``eval_atom_stability``, ``eval_molecule_stability``, ``eval_validity``, ``eval_uniqueness`` (fractions,
float64), ``eval_seconds`` (float64, wall time of the evaluation, not counted in the training time).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from elign.data.batching import MoleculeBatcher
from elign.data.sizes import sizes_from_histogram
from elign.diffusion.factory import build_model
from elign.diffusion.sampler import compile_network, sample_molecules
from elign.metrics.evaluate import evaluate_table, summarize
from elign.training.determinism import draw_training_noise

EVAL_COLUMNS = (
    "eval_molecules",
    "eval_atom_stability",
    "eval_molecule_stability",
    "eval_validity",
    "eval_uniqueness",
    "eval_seconds",
)
#: summary key of :func:`elign.metrics.evaluate.summarize` behind each fraction column
_SUMMARY_KEYS = {
    "eval_atom_stability": "atom_stability",
    "eval_molecule_stability": "molecule_stability",
    "eval_validity": "validity",
    "eval_uniqueness": "uniqueness",
}


def empty_evaluation() -> dict[str, Any]:
    """The eval columns of a history row without an evaluation (nulls)."""
    return {c: None for c in EVAL_COLUMNS}


def eval_sizes(num_atoms: np.ndarray, n: int, seed: int) -> list[int]:
    """``n`` atom counts drawn from the training set's size histogram; depends only on (data, n, seed)."""
    histogram = Counter(int(k) for k in np.asarray(num_atoms))
    return sizes_from_histogram(dict(sorted(histogram.items())), n, seed)


def evaluate_weights(
    model_config: Mapping[str, Any],
    state_dict: Mapping[str, torch.Tensor],
    sizes: list[int],
    seed: int,
    batch_size: int = 64,
    compile: bool = False,
    device: torch.device | str = "cpu",
    backend: Any | None = None,
    relax: Any | None = None,
) -> dict[str, Any]:
    """Sample ``len(sizes)`` molecules from these weights (a copy of the model, float32) and score them.

    Returns the eval columns (see the module doc). With an MLFF ``backend`` also the mean MLFF force RMS
    (``eval_force_rms_mean_ev_per_ang``) and, with FIRE settings ``relax``, the mean relaxation energy
    (``eval_relaxation_energy_mean_kcal_mol``) over the scorable molecules. The caller's global torch RNG
    state is left as found.
    """
    t0 = time.perf_counter()
    model = build_model(dict(model_config)).to(device)
    model.load_state_dict(dict(state_dict), strict=True)
    model.eval()
    if compile:
        compile_network(model)
    with torch.random.fork_rng(devices=[torch.device(device)] if torch.device(device).type == "cuda" else []):
        result = sample_molecules(model, sizes, batch_size=batch_size, seed=seed)
    summary = summarize(evaluate_table(result.table, backend, None, relax), "eval")
    row: dict[str, Any] = {"eval_molecules": len(sizes)}
    keys = dict(_SUMMARY_KEYS)
    if backend is not None:
        keys["eval_force_rms_mean_ev_per_ang"] = "force_rms_ev_per_ang_mean"
    if backend is not None and relax is not None:
        keys["eval_relaxation_energy_mean_kcal_mol"] = "relaxation_energy_kcal_mol_mean"
    for column, key in keys.items():
        value = summary[key]
        row[column] = None if value is None or not np.isfinite(value) else float(value)
    row["eval_seconds"] = time.perf_counter() - t0
    return row


def validation_loss(
    model, table, batch_size: int = 64, seed: int = 0, max_molecules: int | None = 2000, source: str = "valid"
) -> dict[str, float]:
    """Mean training loss (EDM's l2 ε-loss, t ~ U{0…T}) of ``model`` on ``table`` with fixed noise.

    The first ``max_molecules`` rows of a permutation seeded by ``seed`` (all rows when None); the noise
    comes from a generator seeded by ``seed``, so two models are compared on the same (t, ε) draws.
    Returns {"valid_loss", "valid_loss_sem", "valid_molecules"}.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(table))[:max_molecules]
    batcher = MoleculeBatcher(table, model.atom_decoder, source)
    gen = torch.Generator().manual_seed(int(seed))
    dtype = next(model.parameters()).dtype
    losses = []
    was_training = model.training
    model.train()  # the training loss (EDM's l2 objective; in eval mode the model returns the VLB terms)
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            sizes = batcher.num_atoms[index]
            t_int, eps = draw_training_noise(model, sizes, int(sizes.max()), gen, dtype)
            batch = batcher.batch(index, dtype=dtype)
            charges = batch.charges if model.include_charges else batch.charges[..., :0]
            losses.append(model(batch.x, batch.one_hot, charges, batch.node_mask, t_int=t_int, eps=eps).numpy())
    model.train(was_training)
    values = np.concatenate(losses).astype(np.float64)
    return {
        "valid_loss": float(values.mean()),
        "valid_loss_sem": float(values.std(ddof=1) / np.sqrt(len(values))),
        "valid_molecules": int(len(values)),
    }
