"""EDM backbone pretraining (Hoogeboom et al. 2022), resumable and data-parallel.

Follows EDM's ``main_qm9.py`` / ``train_test.py::train_epoch``: per optimizer step, a batch of molecules
padded to its largest one and centred; loss = mean over molecules of the model's l2 training loss (EDM also
subtracts log p(N), a data constant without gradient, which we leave out of the logged loss);
AdamW(amsgrad, weight decay 1e-12) at a constant learning rate; EDM's adaptive gradient clipping; EMA of
the weights after each step (:mod:`elign.training.optim`).

Determinism. Step k (0-based) trains on global batch k: epoch e = k // S (S = ⌊M / batch_size⌋ steps per
epoch; the last incomplete batch of an epoch is dropped), rows e·S… of a permutation drawn from a NumPy
generator seeded by (seed, epoch). The diffusion times t and noise ε of the whole global batch come from one
``torch.Generator`` (seeded from ``seed``) whose state is checkpointed, so a run killed at any time and
restarted from its last checkpoint reaches bit-identical weights on CPU (on CUDA up to the GPU kernels'
own non-determinism). Checkpoint layout and the resume-file convention: :mod:`elign.training.pretrain_state`;
the seeds, the batch order and the noise draw: :mod:`elign.training.determinism`.

Data parallel (``torchrun``): see :mod:`elign.training.distributed`; only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from elign.config import ConfigError, ElignConfig, PretrainConfig
from elign.data.batching import MoleculeBatcher, plan_batches
from elign.diffusion.checkpoint import load_checkpoint, save_checkpoint
from elign.diffusion.en_diffusion import EnVariationalDiffusion
from elign.diffusion.factory import build_model, model_config_of
from elign.io.provenance import provenance
from elign.io.table import MoleculeTable
from elign.model.dynamics import count_parameters
from elign.model.presets import make_model_config
from elign.training import checkpointing as ckpt_io
from elign.training import distributed as ddp
from elign.training import evaluation as train_eval
from elign.training import pretrain_state as ts
from elign.training.determinism import derive_seed, draw_training_noise, global_batch
from elign.training.optim import (
    EMA,
    GradNormQueue,
    clip_gradients,
    grad_norm,
    learning_rate,
    make_optimizer,
    set_learning_rate,
)

log = logging.getLogger("elign.pretrain")


@dataclass(frozen=True)
class PretrainResult:
    """What a pretraining run ended with. loss: mean training loss of the last history row."""

    out: Path
    history: Path | None
    step: int
    loss: float | None
    resumed_from: int | None
    seconds: float


# ------------------------------------------------------------------------------------------- model
def model_config_from(pc: PretrainConfig) -> dict[str, Any]:
    """The model-config dict a pretraining config asks for (preset + overrides + diffusion settings)."""
    arch = {k: v for k, v in pc.architecture.model_dump().items() if v is not None}
    return make_model_config(
        pc.preset,
        atom_decoder=pc.atom_decoder,
        include_charges=pc.include_charges,
        diffusion={"timesteps": pc.diffusion_steps, "noise_precision": pc.noise_precision},
        **arch,
    )


def _init_model(config: ElignConfig, dtype: torch.dtype) -> tuple[EnVariationalDiffusion, dict | None]:
    """Fresh model (seeded EDM init) or ``init_from``'s weights; returns (model, its EMA weights or None)."""
    pc = config.pretrain
    if pc.init_from is None:
        torch.manual_seed(derive_seed(config.seed, "pretrain/init"))
        return build_model(model_config_from(pc), dtype=dtype), None
    ckpt = load_checkpoint(pc.init_from)
    wanted, found = model_config_from(pc), ckpt["model_config"]
    diffs = ckpt_io.diff_configs(wanted, found)
    log.warning(
        "init_from %s: the checkpoint's architecture wins%s",
        pc.init_from,
        f" (config asked otherwise: {'; '.join(diffs)})" if diffs else "",
    )
    model = build_model(found, dtype=dtype)
    model.load_state_dict(ckpt["state_dict"], strict=True)
    return model, ckpt.get("ema_state_dict")


# ----------------------------------------------------------------------------------------- trainer
class Pretrainer:
    """One pretraining run: build or resume the state, train to ``max_steps``, write checkpoints."""

    def __init__(
        self,
        config: ElignConfig,
        train: MoleculeTable,
        out: str | Path,
        history: str | Path | None,
        dtype: torch.dtype = torch.float32,
        progress: bool = True,
        callback: Callable[[int], None] | None = None,
        source: str = "train",
    ):
        self.config, self.pc = config, config.pretrain
        self.out, self.history_path = Path(out), None if history is None else Path(history)
        self.dtype, self.progress, self.callback = dtype, progress, callback
        self.info = ddp.current(self.pc.device)
        ddp.check_divisible(self.pc.batch_size, self.info.world_size)
        if len(train) < self.pc.batch_size:
            raise ConfigError(f"pretrain.batch_size={self.pc.batch_size} exceeds the {len(train)} training molecules")
        self.train, self.source = train, source
        self.config_dump = config.model_dump(mode="json")
        self.data_id = ts.data_fingerprint(train)
        self.steps_per_epoch = len(train) // self.pc.batch_size
        self._setup()

    # -------------------------------------------------------------------------------- setup
    def _setup(self) -> None:
        resume = ts.find_resume(self.out)
        ckpt = resume.checkpoint if resume is not None else None
        if ckpt is not None:
            ts.check_resume_compatible(ckpt["extra"], self.config_dump, self.data_id, resume.path)
            model = build_model(ckpt["model_config"], dtype=self.dtype)
            model.load_state_dict(ckpt["state_dict"], strict=True)
            ema_weights = ckpt.get("ema_state_dict")
        else:
            model, ema_weights = _init_model(self.config, self.dtype)
        self.model = model.to(self.info.device).train()
        self.model_config = model_config_of(self.model)
        self.batcher = MoleculeBatcher(self.train, self.model.atom_decoder, self.source)
        self.optimizer = make_optimizer(self.model, self.pc.lr, self.pc.weight_decay)
        self.ema = EMA(self.model, self.pc.ema_decay, ema_weights) if self.pc.ema_decay > 0 else None
        self.queue = GradNormQueue.seeded()
        self.generator = torch.Generator().manual_seed(derive_seed(self.config.seed, "pretrain/noise"))
        self.step, self.seconds, self.history = 0, 0.0, ts.empty_history()
        self.window = {"n": 0, "loss_sum": 0.0, "grad_norm_sum": 0.0, "clipped": False}
        self.resumed_from, self.segments = None, []
        if ckpt is not None:
            self._restore(ckpt["extra"])
            self.resumed_from = self.step
        self.segment = ts.new_segment(self.step, self.seconds, self.info.device, self.pc.compile, self.info.world_size)
        self.eval_seconds, self.wall0 = 0.0, time.perf_counter()
        if self.pc.compile:
            self.model.dynamics.egnn.compile(dynamic=True)  # state-dict keys unchanged (Module.compile)
        self.net = self.model
        if self.info.enabled:
            dev = [self.info.device.index] if self.info.device.type == "cuda" else None
            # the only buffer (the γ table) is constant: no buffer sync in forward
            self.net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=dev, forward_sync_buffers=False)
        log.info(
            "pretrain: %s, %d parameters, %s, %d process(es) on %s, %d molecules, %d steps/epoch%s",
            f"resumed at step {self.step} from {resume.path}" if ckpt is not None else "fresh",
            count_parameters(self.model),
            str(self.dtype).replace("torch.", ""),
            self.info.world_size,
            self.info.device,
            len(self.train),
            self.steps_per_epoch,
            "" if self.pc.init_from is None or ckpt is not None else f", init_from {self.pc.init_from}",
        )

    def _restore(self, extra: dict) -> None:
        self.optimizer.load_state_dict(extra["optimizer"])
        self.queue = GradNormQueue([float(v) for v in extra["grad_norm_queue"]])
        self.generator.set_state(extra["rng"]["noise"])
        ckpt_io.restore_rng(extra["rng"])
        self.step, self.seconds = int(extra["step"]), float(extra["seconds"])
        self.history = ts.restore_history(extra["history"])
        self.window = dict(extra["log_window"])
        self.segments = ts.restore_segments(extra)

    # -------------------------------------------------------------------------------- training
    def train_step(self, index: np.ndarray) -> tuple[float, float, bool]:
        """One optimizer step on global batch ``index`` (this rank trains on its shard).

        Returns (mean loss over the global batch, pre-clipping gradient L2 norm, clipped?).
        """
        sizes = self.batcher.num_atoms[index]
        n_slots = int(sizes.max())
        t_int, eps = draw_training_noise(self.model, sizes, n_slots, self.generator, self.dtype)
        shard, dev = self.info.shard(len(index)), self.info.device
        rows = np.arange(len(index))[shard]
        cap = self.pc.max_batch_edges  # micro-batches under the edge budget (by size); no cap: one pass, as EDM
        micro = [rows] if cap is None else [rows[m] for m in plan_batches(sizes[rows], len(rows), cap)]
        self.optimizer.zero_grad(set_to_none=True)
        loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
        for k, part in enumerate(micro):  # gradients of the micro-batches add up to the step's (loss = mean)
            sync = k == len(micro) - 1 or not isinstance(self.net, torch.nn.parallel.DistributedDataParallel)
            with contextlib.nullcontext() if sync else self.net.no_sync():
                batch = self.batcher.batch(index[part], pad_to=n_slots, dtype=self.dtype).to(dev)
                charges = batch.charges if self.model.include_charges else batch.charges[..., :0]
                per_molecule = self.net(
                    batch.x,
                    batch.one_hot,
                    charges,
                    batch.node_mask,
                    graph=self.model.make_graph(batch.node_mask),
                    t_int=t_int[part].to(dev),
                    eps=eps[part].to(dev),
                )
                (per_molecule.sum() / len(rows)).backward()
            loss_sum += per_molecule.detach().sum().double()
        loss_value = float(ddp.mean_over_ranks((loss_sum / len(rows)).to(self.dtype), self.info))
        if not math.isfinite(loss_value):
            raise FloatingPointError(
                f"non-finite training loss at step {self.step + 1}; last good checkpoint: "
                f"{ckpt_io.partial_path(self.out)}"
            )
        if self.pc.clip_grad:
            norm, _, clipped = clip_gradients(self.model.parameters(), self.queue)
        else:
            norm, clipped = grad_norm(self.model.parameters()), False
        set_learning_rate(self.optimizer, learning_rate(self.step, self.pc.lr, self.pc.lr_decay))
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update(self.model)
        return loss_value, norm, clipped

    def run(self, time_limit_s: float | None = None) -> PretrainResult:
        """Train from the current step to ``max_steps``; write the final checkpoint and history.

        time_limit_s: stop after this many seconds of this sitting (a segment of a longer run, e.g. on a lent
        GPU): the resume file ``<out>.partial`` is written at the step reached and ``<out>`` is not.
        """
        total = self.pc.max_steps
        if self.step >= total:
            log.info("checkpoint is at step %d >= max_steps %d: nothing to train", self.step, total)
        bar = tqdm(
            total=total,
            initial=min(self.step, total),
            desc="pretrain",
            file=sys.stderr,
            disable=not (self.progress and self.info.is_main),
            dynamic_ncols=True,
        )
        t0, seconds0 = time.perf_counter(), self.seconds
        n = len(self.train)
        stop_at = None if time_limit_s is None else time.perf_counter() + float(time_limit_s)
        while self.step < total:
            epoch, _, index = global_batch(self.step, n, self.pc.batch_size, self.config.seed)
            loss, norm, clipped = self.train_step(index)
            self.step += 1
            self.seconds = seconds0 + time.perf_counter() - t0
            evaluation = self.evaluate() if self._eval_due() else None
            if evaluation is not None:
                t0 += evaluation["eval_seconds"]  # training time excludes evaluations
                self.eval_seconds += evaluation["eval_seconds"]
            self._record(epoch, loss, norm, clipped, bar, evaluation)
            bar.update(1)
            if self.step % self.pc.checkpoint_every == 0 and self.step < total:
                self.save(final=False)
            if self.callback is not None:
                self.callback(self.step)
            if stop_at is not None and time.perf_counter() > stop_at and self.step < total:
                bar.close()
                self.save(final=False)
                log.info(
                    "pretrain: time limit reached at step %d; resume file %s", self.step, ckpt_io.partial_path(self.out)
                )
                last = self.history["loss"][-1] if self.history["loss"] else None
                return PretrainResult(
                    ckpt_io.partial_path(self.out), self.history_path, self.step, last, self.resumed_from, self.seconds
                )
        bar.close()
        self.save(final=True)
        last = self.history["loss"][-1] if self.history["loss"] else None
        return PretrainResult(self.out, self.history_path, self.step, last, self.resumed_from, self.seconds)

    # -------------------------------------------------------------------------------- evaluation
    def _eval_due(self) -> bool:
        return self.pc.eval_every is not None and self.step % self.pc.eval_every == 0 and self.info.is_main

    def evaluate(self) -> dict[str, Any]:
        """Sample quality of the current EMA (or raw) weights; see :mod:`elign.training.evaluation`."""
        weights = self.ema.state_dict(self.model) if self.ema is not None else self.model.state_dict()
        sizes = train_eval.eval_sizes(
            self.train.num_atoms, self.pc.eval_molecules, derive_seed(self.config.seed, "pretrain/eval-sizes")
        )  # same every time
        row = train_eval.evaluate_weights(
            self.model_config,
            weights,
            sizes,
            derive_seed(self.config.seed, "pretrain/eval-noise"),
            compile=False,
            device=self.info.device,
        )
        log.info(
            "pretrain eval at step %d: %s",
            self.step,
            ", ".join(f"{k[5:]} {v:.4g}" for k, v in row.items() if v is not None),
        )
        if self.pc.eval_keep_weights:
            path = self.out.with_name(self.out.name + ".evals") / f"step_{self.step:08d}.pt"
            save_checkpoint(
                path,
                self.model_config,
                weights,
                None,
                {
                    "stage": "pretrain-eval",
                    "step": self.step,
                    "seconds": self.seconds,
                    "ema": self.ema is not None,
                    "evaluation": row,
                    "seed": self.config.seed,
                },
            )
        return row

    def _record(
        self, epoch: int, loss: float, norm: float, clipped: bool, bar: tqdm, evaluation: dict[str, Any] | None = None
    ) -> None:
        w = self.window
        w["n"] += 1
        w["loss_sum"] += loss
        w["grad_norm_sum"] += norm
        w["clipped"] = bool(w["clipped"] or clipped)
        if self.step % self.pc.log_every and self.step != self.pc.max_steps:
            return
        row = {
            "step": self.step,
            "epoch": epoch,
            "loss": w["loss_sum"] / w["n"],
            "grad_norm": w["grad_norm_sum"] / w["n"],
            "clipped": w["clipped"],
            "lr": float(self.optimizer.param_groups[0]["lr"]),
            "seconds": self.seconds,
            **(evaluation or train_eval.empty_evaluation()),
        }
        for key, value in row.items():
            self.history[key].append(value)
        self.window = {"n": 0, "loss_sum": 0.0, "grad_norm_sum": 0.0, "clipped": False}
        bar.set_postfix(loss=f"{row['loss']:.4f}", grad=f"{row['grad_norm']:.2f}", refresh=False)

    # -------------------------------------------------------------------------------- saving
    def extra(self, final: bool) -> dict[str, Any]:
        """The resumable state (layout in :mod:`elign.training.pretrain_state`)."""
        epoch, epoch_step = divmod(self.step, self.steps_per_epoch)
        rng = {"noise": self.generator.get_state(), **ckpt_io.rng_state()}
        return {
            "stage": "pretrain",
            "finished": final,
            "step": self.step,
            "epoch": epoch,
            "epoch_step": epoch_step,
            "steps_per_epoch": self.steps_per_epoch,
            "world_size": self.info.world_size,
            "seconds": self.seconds,
            "optimizer": self.optimizer.state_dict(),
            "grad_norm_queue": list(self.queue.items),
            "rng": rng,
            "log_window": dict(self.window),
            "history": {c: list(v) for c, v in self.history.items()},
            "config": self.config_dump,
            "seed": self.config.seed,
            "data": self.data_id,
            "init_from": self.pc.init_from,
            "provenance": self._provenance(),
            "segments": self.segments
            + [
                ts.close_segment(
                    self.segment, self.step, self.seconds, self.eval_seconds, time.perf_counter() - self.wall0
                )
            ],
        }

    def _provenance(self) -> dict[str, str]:
        return provenance(self.config_dump, seed=self.config.seed, stage="pretrain", step=self.step)

    def save(self, final: bool) -> None:
        """Rank 0: checkpoint (``<out>.partial`` or, when final, ``<out>``) and history.parquet."""
        if not self.info.is_main:
            return
        history = self.history_path
        write = None if history is None else lambda: ts.write_history(history, self.history, self._provenance())
        ckpt_io.save_run_state(self.out, final, self.model_config, self.model, self.ema, self.extra(final), write)
        if final:
            log.info("pretrain: wrote %s at step %d (%.1f s of training)", self.out, self.step, self.seconds)


def pretrain(
    config: ElignConfig,
    train: MoleculeTable,
    out: str | Path,
    history: str | Path | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    progress: bool = True,
    callback: Callable[[int], None] | None = None,
    source: str = "train",
    time_limit_s: float | None = None,
) -> PretrainResult:
    """Pretrain (or resume pretraining) an EDM backbone on ``train``; see the module doc.

    Args:
        config: the resolved run config (``config.pretrain`` and ``config.seed`` are used).
        train: training molecules; out: final checkpoint path (resume file ``<out>.partial``);
        history: history.parquet path or None; dtype: model/compute dtype (float64 for exact tests);
        callback: called with the step count after every step (and its checkpoint) on every rank;
        time_limit_s: end this sitting after so many seconds, with a resume file (see :meth:`Pretrainer.run`).
    Under ``torchrun`` the process group must already be initialised (``distributed.init_from_env``).
    """
    return Pretrainer(
        config, train, out, history, dtype=dtype, progress=progress, callback=callback, source=source
    ).run(time_limit_s)
