"""The FED-GRPO loop (Elign, arXiv 2601.21985; docs/design.md, "Science, pinned down").

Per iteration i (all randomness seeded by (seed, i), see :mod:`elign.rl.trainer_state`):

1. **Rollout** (no grad, old policy = current weights): ``prompts_per_iteration`` sizes (from the training
   histogram, one size, or a list), ``rollouts_per_prompt`` rollouts each sharing z_T and the first
   ``shared_prefix_steps`` steps (:mod:`elign.rl.rollout`).
2. **Rewards** from the MLFF (:mod:`elign.rl.rewards`) on a random subset of ``train_steps_per_rollout``
   branched steps per group (the same steps for the K members; all steps if null): the registered rewards
   ``force`` and ``energy`` and those of ``extra_rewards`` (:mod:`elign.rl.reward_registry`).
3. **Advantages**, normalized per group and channel, mixed and clipped (:mod:`elign.rl.advantages`).
4. **Update** (:mod:`elign.rl.update`): ``update_epochs`` passes; each pass recomputes μ_θ (with grad) and
   μ_ref (frozen copy of the input model, no grad) for every (rollout, trained step) pair in the loss, in chunks of
   ``minibatch_steps`` pairs whose gradients are accumulated, then one AdamW step (EDM's optimizer:
   amsgrad, ``lr``, ``weight_decay``) after clipping the global gradient norm to ``grad_clip``, then the
   optional EMA update. The loss is normalised by the number of pairs, so a pass is one gradient step on
   the mean per-pair objective (:mod:`elign.rl.objective`). On the first pass the policy equals the
   sampling policy, so the ratio is 1 (up to float round-off of the recomputation).

The policy starts from the weights ``elign sample`` uses for the input checkpoint (its EMA weights when it
has them and ``sample.use_ema`` is true, else its raw weights), so "pretrained" and "aligned" samples
compare like with like; the same weights, frozen, are the KL reference.
"""

from __future__ import annotations

import copy
import logging
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from elign.config import ConfigError, ElignConfig
from elign.data.sizes import resolve_sizes
from elign.device import resolve_device
from elign.diffusion.checkpoint import LoadedCheckpoint, model_from_checkpoint, read_checkpoint
from elign.diffusion.factory import build_model, model_config_of
from elign.io.provenance import provenance
from elign.mlff.base import MLFFBackend
from elign.mlff.registry import backend_from_config
from elign.rl import trainer_state as st
from elign.rl.advantages import Advantages, mix_advantages
from elign.rl.quality import evaluate_policy, evaluation_due, rollout_quality
from elign.rl.rewards import Penalties, Rewards, compute_rewards, reward_channels
from elign.rl.rollout import Rollouts, choose_trained_steps, make_prompts, rollout
from elign.rl.schedule import learning_rate
from elign.rl.update import update_policy
from elign.training import checkpointing as ckpt_io
from elign.training.determinism import derive_seed
from elign.training.evaluation import empty_evaluation
from elign.training.optim import EMA, make_optimizer

log = logging.getLogger("elign.finetune")

__all__ = ["FinetuneResult", "FinetuneTrainer", "finetune"]


@dataclass(frozen=True)
class FinetuneResult:
    out: Path
    history: Path | None
    iteration: int
    resumed_from: int | None
    seconds: float
    last: dict[str, Any] | None


def _nanstat(fn, values: np.ndarray) -> float:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(fn(v)) if v.size else float("nan")


def iteration_row(ro: Rollouts, rw: Rewards, adv: Advantages, upd: dict) -> dict[str, Any]:
    """The history row of one iteration (without iteration number, lr and timings)."""
    a = adv.advantage[adv.in_loss & ro.finite.cpu().numpy()[:, None]]
    c = {**rw.counts, **adv.counts}
    return {
        "num_rollouts": ro.num_rollouts,
        "mean_num_atoms": float(ro.sizes.double().mean()),
        "force_rms_mean_ev_per_ang": _nanstat(np.mean, rw.force_rms),
        "force_rms_median_ev_per_ang": _nanstat(np.median, rw.force_rms),
        "formation_energy_mean_ev_per_atom": _nanstat(np.mean, rw.formation_final),
        "force_reward_mean": _nanstat(np.mean, rw.force_reward),
        "energy_return_mean_ev_per_atom": _nanstat(np.mean, rw.energy_return),
        "advantage_mean": _nanstat(np.mean, a),
        "advantage_std": _nanstat(np.std, a),
        "advantage_min": _nanstat(np.min, a),
        "advantage_max": _nanstat(np.max, a),
        **{
            k: upd[k]
            for k in (
                "ratio_mean",
                "ratio_min",
                "ratio_max",
                "clip_fraction",
                "kl_ref",
                "approx_kl_old",
                "surrogate",
                "loss",
                "grad_norm",
                "trained_pairs",
            )
        },
        "mlff_failures": c["mlff_failures"],
        "mlff_unknown_element": c["unknown_element"],
        "excluded": c["force_excluded"],
        "unstable_excluded": c["unstable_excluded"],
        "invalid_penalized": c["invalid_penalized"],
        "novelty_penalized": c["novelty_penalized"],
        "unstable_penalized": c["unstable_penalized"],
        "nonfinite_rollouts": c["nonfinite_rollouts"],
        "energy_failures": c["energy_failures"],
        "energy_excluded_steps": c["energy_excluded_steps"],
        "degenerate_force_groups": c["degenerate_force_groups"],
        "degenerate_energy_group_steps": c["degenerate_energy_group_steps"],
    }


# ----------------------------------------------------------------------------------------- trainer
class FinetuneTrainer:
    """One FED-GRPO run: load (or resume), iterate to ``finetune.iterations``, write checkpoints."""

    def __init__(
        self,
        config: ElignConfig,
        model_path: str | Path,
        out: str | Path,
        history: str | Path | None = None,
        *,
        histogram: Mapping[int, int] | None = None,
        backend: MLFFBackend | None = None,
        dtype: torch.dtype = torch.float32,
        progress: bool = True,
        callback: Callable[[int], None] | None = None,
        input_checkpoint: LoadedCheckpoint | None = None,
        training_keys: set[str] | frozenset[str] | None = None,
        time_limit_s: float | None = None,
        stop_after_iteration: int | None = None,
    ):
        self.config, self.fc = config, config.finetune
        self.model_path, self.out = Path(model_path), Path(out)
        self.history_path = None if history is None else Path(history)
        self.histogram = None if histogram is None else {int(k): int(v) for k, v in histogram.items()}
        self.dtype, self.progress, self.callback = dtype, progress, callback
        self.device = resolve_device(self.fc.device, "finetune.device")
        if self.fc.sizes == "histogram" and self.histogram is None:
            raise ConfigError("finetune.sizes is 'histogram': pass the training size histogram (--stats)")
        if self.fc.novelty_penalty is not None and training_keys is None:
            raise ConfigError("finetune.novelty_penalty needs the training split's SMILES: pass --train")
        self.training_keys = None if training_keys is None else frozenset(training_keys)
        self.time_limit_s, self.stop_after_iteration = time_limit_s, stop_after_iteration
        self.config_dump = config.model_dump(mode="json")
        # the input is read once: its weights and its identity (sha256) come from the same read
        loaded = input_checkpoint if input_checkpoint is not None else read_checkpoint(self.model_path)
        self.input_id = {"path": str(self.model_path), "sha256": loaded.sha256}
        self._setup(loaded.checkpoint)
        self.backend = backend if backend is not None else backend_from_config(self.fc.mlff)

    def _setup(self, input_checkpoint: dict[str, Any]) -> None:
        use_ema = self.config.sample.use_ema
        reference = model_from_checkpoint(input_checkpoint, use_ema=use_ema, dtype=self.dtype).to(self.device)
        if not 0 <= self.fc.shared_prefix_steps < reference.T:
            raise ConfigError(
                f"finetune.shared_prefix_steps={self.fc.shared_prefix_steps} must be smaller "
                f"than the model's T = {reference.T}"
            )
        for p in reference.parameters():
            p.requires_grad_(False)
        self.reference = reference.eval()
        resume = st.find_resume(self.out)
        ckpt = resume.checkpoint if resume is not None else None
        if ckpt is not None:
            st.check_resume_compatible(ckpt["extra"], self.config_dump, self.input_id, self.histogram, resume.path)
            policy = build_model(ckpt["model_config"], dtype=self.dtype)
            policy.load_state_dict(ckpt["state_dict"], strict=True)
        else:
            policy = copy.deepcopy(reference)
            for p in policy.parameters():
                p.requires_grad_(True)
            if self.fc.reference_prefix and self.fc.shared_prefix_steps > 0:
                # the branched steps have t = (s + 1)/T <= (T - prefix)/T; half a step of margin against round-off
                gate_t = (reference.T - self.fc.shared_prefix_steps + 0.5) / reference.T
                policy.set_time_gate(copy.deepcopy(reference.dynamics), gate_t)
        self.policy = policy.to(self.device).eval()
        self.model_config = model_config_of(self.policy)
        self.optimizer = make_optimizer(self.policy, self.fc.lr, self.fc.weight_decay, amsgrad=self.fc.amsgrad)
        ema_weights = ckpt.get("ema_state_dict") if ckpt is not None else None
        self.ema = EMA(self.policy, self.fc.ema_decay, ema_weights) if self.fc.ema_decay > 0 else None
        self.iteration, self.seconds, self.history, self.resumed_from = 0, 0.0, st.empty_history(), None
        self.optimizer_steps = 0
        if ckpt is not None:
            extra = ckpt["extra"]
            self.optimizer.load_state_dict(extra["optimizer"])
            ckpt_io.restore_rng(extra["rng"])
            self.iteration, self.seconds = int(extra["iteration"]), float(extra["seconds"])
            # checkpoints written before micro-batches took one step per pass
            self.optimizer_steps = int(extra.get("optimizer_steps", self.iteration * self.fc.update_epochs))
            self.history = st.restore_history(extra["history"])
            self.resumed_from = self.iteration
        log.info(
            "finetune: %s from %s, T = %d, %s on %s",
            f"resumed at iteration {self.iteration}" if ckpt else "fresh",
            self.model_path,
            reference.T,
            str(self.dtype).replace("torch.", ""),
            self.device,
        )

    # ------------------------------------------------------------------------------ one iteration
    def prompt_sizes(self, it: int) -> list[int]:
        seed = derive_seed(self.config.seed, "finetune/sizes", it)
        try:
            return resolve_sizes(self.fc.sizes, self.fc.prompts_per_iteration, seed, self.histogram)
        except ValueError as exc:
            raise ConfigError(f"finetune.sizes: {exc}") from None

    def penalties(self) -> Penalties:
        fc = self.fc
        return Penalties(
            stable_only=fc.stable_only,
            invalid_penalty=fc.invalid_penalty,
            unstable_penalty=fc.unstable_penalty,
            novelty_penalty=fc.novelty_penalty,
            training_keys=self.training_keys,
            in_energy=fc.penalties_in_energy,
        )

    def run_iteration(self, it: int) -> dict[str, Any]:
        """Rollout → rewards → advantages → update for 0-based iteration ``it``; returns its history row."""
        fc, seed = self.fc, self.config.seed
        t0 = time.perf_counter()
        gen = torch.Generator(device=self.device).manual_seed(derive_seed(seed, "finetune/rollout", it))
        with torch.no_grad():
            ro = rollout(
                self.policy,
                make_prompts(self.prompt_sizes(it)),
                fc.rollouts_per_prompt,
                fc.shared_prefix_steps,
                gen,
                max_edges=fc.max_batch_edges,
            )
        t1 = time.perf_counter()
        rng = np.random.default_rng(derive_seed(seed, "finetune/steps", it))
        group = ro.group.cpu().numpy()
        trained = choose_trained_steps(ro.num_steps, len(ro.prompts), fc.train_steps_per_rollout, rng)[group]
        extra = [spec.name for spec in fc.extra_rewards]
        rw = compute_rewards(
            ro, trained, self.backend, energy_every=fc.energy_every, penalties=self.penalties(), extra=extra
        )
        channels = reward_channels(rw, fc)
        adv = mix_advantages(channels, group, trained.shape[1], clip=fc.advantage_clip, std_mode=fc.group_std)
        t2 = time.perf_counter()
        lr_at = lambda k: learning_rate(k, fc.lr, fc.lr_schedule)  # noqa: E731
        upd = update_policy(
            self.policy, self.reference, self.optimizer, ro, trained, adv, fc, self.ema, self.optimizer_steps, lr_at
        )
        self.optimizer_steps += upd["optimizer_steps"]
        t3 = time.perf_counter()
        row = {
            "iteration": it + 1,
            **iteration_row(ro, rw, adv, upd),
            "lr": float(self.optimizer.param_groups[0]["lr"]),
            "optimizer_steps": self.optimizer_steps,
            **rollout_quality(ro),
            "rollout_seconds": t1 - t0,
            "reward_seconds": t2 - t1,
            "update_seconds": t3 - t2,
        }
        return row

    def run(self) -> FinetuneResult:
        total = self.fc.iterations
        bar = tqdm(
            total=total,
            initial=min(self.iteration, total),
            desc="finetune",
            file=sys.stderr,
            disable=not self.progress,
            dynamic_ncols=True,
        )
        row = None
        stop_at = None if self.time_limit_s is None else time.perf_counter() + float(self.time_limit_s)
        while self.iteration < total:
            reason = self._stop_reason(stop_at)
            if reason is not None:
                bar.close()
                self.save(final=False)
                log.info("finetune: stopped after iteration %d by %s; rerun to go on", self.iteration, reason)
                return FinetuneResult(
                    ckpt_io.partial_path(self.out),
                    self.history_path,
                    self.iteration,
                    self.resumed_from,
                    self.seconds,
                    row,
                )
            t0 = time.perf_counter()
            row = self.run_iteration(self.iteration)
            self.iteration += 1
            self.seconds += time.perf_counter() - t0
            row["seconds"] = self.seconds
            row.update(
                self.evaluate()
                if evaluation_due(self.iteration, total, self.fc.eval_every)
                else {**empty_evaluation(), **{c: None for c in st.EVAL_MLFF_COLUMNS}}
            )
            for key in st.HISTORY_COLUMNS:
                self.history[key].append(row[key])
            bar.update(1)
            bar.set_postfix(
                force_rms=f"{row['force_rms_mean_ev_per_ang']:.3f}",
                kl=f"{row['kl_ref']:.3g}",
                s=f"{row['rollout_seconds']:.0f}/{row['reward_seconds']:.0f}/{row['update_seconds']:.0f}",
                refresh=False,
            )
            if self.iteration % self.fc.checkpoint_every == 0 and self.iteration < total:
                self.save(final=False)
            if self.callback is not None:
                self.callback(self.iteration)
        bar.close()
        self.save(final=True)
        return FinetuneResult(self.out, self.history_path, self.iteration, self.resumed_from, self.seconds, row)

    def _stop_reason(self, stop_at: float | None) -> str | None:
        """Why this sitting ends before the next iteration (None: it goes on). Both stops leave the run exactly
        where an uninterrupted run would be (the partial checkpoint; resuming reaches the same bits)."""
        if self.stop_after_iteration is not None and self.iteration >= self.stop_after_iteration:
            return f"the requested stop after iteration {self.stop_after_iteration}"
        if stop_at is not None and time.perf_counter() >= stop_at:
            return "the time limit"
        return None

    def evaluate(self) -> dict[str, Any]:
        """Fresh samples of the current policy (its EMA when it has one): the eval columns (elign.rl.quality)."""
        weights = self.ema.state_dict(self.policy) if self.ema is not None else self.policy.state_dict()
        row = evaluate_policy(self.config, self.model_config, weights, self.histogram, self.device, self.backend)
        log.info(
            "finetune eval after iteration %d: %s",
            self.iteration,
            ", ".join(f"{k.removeprefix('eval_')} {v:.3g}" for k, v in row.items() if v is not None),
        )
        return row

    # ------------------------------------------------------------------------------------ saving
    def _provenance(self) -> dict[str, str]:
        return provenance(
            self.config_dump, seed=self.config.seed, stage="finetune", iteration=self.iteration, model=self.model_path
        )

    def extra(self, final: bool) -> dict[str, Any]:
        return {
            "stage": "finetune",
            "finished": final,
            "iteration": self.iteration,
            "seconds": self.seconds,
            "optimizer": self.optimizer.state_dict(),
            "optimizer_steps": self.optimizer_steps,
            "rng": ckpt_io.rng_state(),
            "history": {c: list(v) for c, v in self.history.items()},
            "config": self.config_dump,
            "seed": self.config.seed,
            "input": dict(self.input_id),
            "size_histogram": self.histogram,
            "provenance": self._provenance(),
        }

    def save(self, final: bool) -> None:
        """Checkpoint (``<out>.partial``, or ``<out>`` when final) and the history Parquet."""
        history = self.history_path
        write = None if history is None else lambda: st.write_history(history, self.history, self._provenance())
        ckpt_io.save_run_state(self.out, final, self.model_config, self.policy, self.ema, self.extra(final), write)
        if final:
            log.info("finetune: wrote %s after %d iterations (%.1f s)", self.out, self.iteration, self.seconds)


def finetune(
    config: ElignConfig, model_path: str | Path, out: str | Path, history: str | Path | None = None, **kwargs
) -> FinetuneResult:
    """Run (or resume) FED-GRPO from ``model_path``; keyword arguments as :class:`FinetuneTrainer`."""
    return FinetuneTrainer(config, model_path, out, history, **kwargs).run()
