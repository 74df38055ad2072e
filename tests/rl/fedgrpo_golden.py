"""Golden FED-GRPO runs: two iterations on the tiny model, recorded for the bit-identity test.

``tests/fixtures/fedgrpo_golden.npz`` was written by running this module with the code of commit c405080
(before rewards became a registry)::

    git worktree add --detach /tmp/old-reg c405080
    PYTHONPATH=/tmp/old-reg python tests/rl/fedgrpo_golden.py tests/fixtures/fedgrpo_golden.npz

It uses only what both versions have (``finetune``, ``update_policy``'s arguments, the checkpoint and the
history), so the same :func:`run_case` drives the old code here and the new one in
``tests/rl/test_reward_registry.py``. Recorded per case: each iteration's trained steps, mixed advantages and
in-loss mask (the ``adv`` the trainer hands to ``update_policy``), the history's numeric columns (wall times
left out) and the sha256 of the final raw and EMA weights.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rl_toys import HarmonicBackend, save_tiny  # noqa: E402

from elign.config import validate_config  # noqa: E402
from elign.diffusion.checkpoint import load_checkpoint  # noqa: E402
from elign.rl import trainer  # noqa: E402

BASE = {
    "iterations": 2,
    "prompts_per_iteration": 2,
    "rollouts_per_prompt": 3,
    "sizes": [4, 6],
    "shared_prefix_steps": 12,
    "train_steps_per_rollout": 5,
    "energy_every": 2,
    "minibatch_steps": 4,
    "update_epochs": 2,
    "lr": 1e-3,
    "ema_decay": 0.5,
    "device": "cpu",
    # the code defaults of c405080 that later changed to the default run's values (tests/test_config_defaults.py)
    "reference_prefix": False,
    "eval_every": None,
}
#: case → (finetune overrides, HarmonicBackend options, training keys for the novelty penalty)
CASES = {
    "default": ({}, {}, None),
    "paper": (
        {
            "micro_batch_rollouts": 4,
            "lr_schedule": {"kind": "cosine", "warmup_steps": 2, "total_steps": 6, "min_lr_ratio": 0.3},
            "group_std": "population",
            "amsgrad": False,
            "weight_decay": 1e-4,
            "energy_every": 1,
            "train_steps_per_rollout": None,
            "novelty_penalty": 0.5,
            "unstable_penalty": 0.2,
            "invalid_penalty": 0.1,
            "penalties_in_energy": True,
        },
        {"unknown": (9,)},
        {"C", "CC", "O", "N"},
    ),
    "gated": ({"stable_only": True, "weight_energy": 0.5, "weight_force": 2.0, "energy_every": 3}, {"k": 0.8}, None),
}
SKIP_HISTORY = ("rollout_seconds", "reward_seconds", "update_seconds", "seconds", "eval_seconds")


def _sha(state: dict | None) -> str:
    h = hashlib.sha256()
    for key, value in (state or {}).items():
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def run_case(name: str, workdir: Path) -> dict[str, np.ndarray]:
    """Run case ``name`` from a fresh tiny checkpoint in ``workdir``; the arrays recorded (module doc)."""
    over, backend_options, keys = CASES[name]
    torch.set_num_threads(1)
    model = save_tiny(workdir / f"{name}_pretrained.pt")
    config = validate_config({"seed": 5, "finetune": {**BASE, **over}})
    seen: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    original = trainer.update_policy

    def spy(policy, reference, optimizer, ro, trained, adv, fc, *args, **kwargs):
        seen.append((np.array(trained), np.array(adv.advantage), np.array(adv.in_loss)))
        return original(policy, reference, optimizer, ro, trained, adv, fc, *args, **kwargs)

    trainer.update_policy = spy
    try:
        out = workdir / f"{name}_aligned.pt"
        backend = HarmonicBackend(**backend_options)
        trainer.finetune(config, model, out, None, backend=backend, progress=False, training_keys=keys)
    finally:
        trainer.update_policy = original
    ckpt = load_checkpoint(out)
    record = {
        "weights_sha256": np.array(_sha(ckpt["state_dict"])),
        "ema_sha256": np.array(_sha(ckpt["ema_state_dict"])),
    }
    for i, (trained, advantage, in_loss) in enumerate(seen):
        record.update({f"trained_{i}": trained, f"advantage_{i}": advantage, f"in_loss_{i}": in_loss})
    for column, values in ckpt["extra"]["history"].items():
        if column not in SKIP_HISTORY:
            record[f"history_{column}"] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return record


def main(path: str) -> None:
    import tempfile

    arrays = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in CASES:
            arrays.update({f"{name}/{k}": v for k, v in run_case(name, Path(tmp)).items()})
    np.savez_compressed(path, **arrays)
    print(f"wrote {path}: {len(arrays)} arrays")


if __name__ == "__main__":
    main(sys.argv[1])
