"""The ``pretrain`` section: the backbone (trained here, shipped, a file or EDM's own), its architecture and
training."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from elign.config.base import Section, require_for_kind
from elign.config_checks import known_elements


class ModelArchitecture(Section):
    """Overrides of the backbone preset's architecture; null keeps the preset's value."""

    hidden_nf: int | None = Field(None, ge=1)
    n_layers: int | None = Field(None, ge=1)
    inv_sublayers: int | None = Field(None, ge=1)
    attention: bool | None = None


class PretrainedSource(Section):
    """Where the pretrained backbone of a run comes from (the paper post-trains an existing EDM checkpoint).

    train: pretrain here with the settings of ``pretrain``; shipped: a backbone elign ships in
    ``models_dir/<name>/`` (weights checked against the sha256 in its card); file: one of our checkpoints;
    edm: an EDM checkpoint (``args.pickle`` + ``generative_model_ema.npy``), converted on the fly.
    Keys that the chosen kind does not use are ignored (``{kind: train}`` in an experiment overrides a
    default ``{kind: shipped, name: ...}``).
    """

    kind: Literal["train", "shipped", "file", "edm"] = Field("train", description="train | shipped | file | edm")
    name: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.\-]+$",
        description="shipped: the backbone's folder name under models_dir (`elign models`)",
    )
    models_dir: str = Field("models", description="shipped: the folder of shipped backbones")
    path: str | None = Field(None, description="file: our checkpoint; edm: EDM's weights (.npy)")
    edm_args: str | None = Field(None, description="edm: EDM's args.pickle of those weights")

    @model_validator(mode="after")
    def _what_each_kind_needs(self) -> PretrainedSource:
        need = {"train": (), "shipped": ("name",), "file": ("path",), "edm": ("path", "edm_args")}
        return require_for_kind(self, need, "pretrain.source")  # keys another kind uses are ignored


class LrDecay(Section):
    """Learning rate decay at the end of training (warmup-free "stable, then decay"): the rate stays at
    ``pretrain.lr`` before ``start_step``, falls to ``final_lr`` at ``end_step`` and stays there.

    Decaying a constant-rate run at its end is the trapezoidal / WSD schedule (Hägele et al. 2024,
    arXiv 2405.18392); a run resumed from before ``start_step`` follows the same trajectory as one trained
    from scratch with the schedule.
    """

    start_step: int = Field(ge=0, description="first optimizer step (0-based) with a decayed rate")
    end_step: int = Field(ge=1, description="the step from which the rate is final_lr")
    final_lr: float = Field(gt=0, description="learning rate from end_step on")
    shape: Literal["cosine", "linear"] = Field("cosine", description="how the rate falls from lr to final_lr")

    @model_validator(mode="after")
    def _ordered(self) -> LrDecay:
        if self.end_step <= self.start_step:
            raise ValueError(f"lr_decay.end_step ({self.end_step}) must exceed start_step ({self.start_step})")
        return self


class PretrainConfig(Section):
    """EDM backbone pretraining (Hoogeboom et al. 2022): AdamW(amsgrad), EMA, EDM's gradient clipping."""

    source: PretrainedSource = Field(
        PretrainedSource(), description="where the pretrained model comes from; the other keys apply to 'train'"
    )

    preset: Literal["small_cpu", "edm_qm9", "edm_geom"] = Field(
        "small_cpu", description="backbone size (elign.model.presets); edm_qm9 = the paper's 9 x 256"
    )
    architecture: ModelArchitecture = ModelArchitecture()
    atom_decoder: list[str] | None = Field(
        None, min_length=1, description="one-hot atom types in order; null = the preset's (QM9: H C N O F)"
    )

    @field_validator("atom_decoder")
    @classmethod
    def _decoder_elements(cls, value: list[str] | None) -> list[str] | None:
        return known_elements(value)

    include_charges: bool | None = Field(None, description="atomic number as an extra feature; null = preset's")
    diffusion_steps: int = Field(1000, ge=10, description="T (EDM: 1000)")
    noise_precision: float = Field(1e-5, gt=0, lt=0.5, description="polynomial_2 clipping (EDM: 1e-5)")
    batch_size: int = Field(64, ge=1, description="molecules per optimizer step, over all processes (EDM: 64)")
    max_batch_edges: int | None = Field(
        None,
        ge=2,
        description="cap on the directed edges (sum of n(n-1)) of one forward/backward pass: a step's batch_size "
        "molecules are cut, by size, into micro-batches under the cap whose gradients add up to the step's (same "
        "optimizer step, same loss); memory grows with edges (a 181-atom GEOM molecule has 32,580); null = one pass",
    )
    lr: float = Field(1e-4, gt=0, description="AdamW learning rate (EDM: 1e-4)")
    lr_decay: LrDecay | None = Field(
        None, description="decay the rate at the end of training; null = constant lr (EDM)"
    )
    weight_decay: float = Field(1e-12, ge=0, description="AdamW weight decay (EDM: 1e-12, amsgrad)")
    ema_decay: float = Field(0.9999, ge=0, lt=1, description="EMA of weights (EDM: 0.9999); 0 disables")
    clip_grad: bool = Field(True, description="EDM's adaptive clipping: 1.5 x mean + 2 x std of recent norms")
    max_steps: int = Field(1200, ge=1, description="optimizer steps (an epoch of QM9 = 100000 / batch_size)")
    checkpoint_every: int = Field(100, ge=1, description="atomic checkpoint every N steps (resume after a kill)")
    log_every: int = Field(10, ge=1, description="history.parquet row every N steps")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    gpus: int = Field(
        0,
        ge=0,
        description="GPUs of the pretrain job (Snakemake resource gpu); > 1 launches "
        "torchrun with one data-parallel process per GPU",
    )
    init_from: str | None = Field(None, description="start from this checkpoint (e.g. an imported EDM model)")
    compile: bool = Field(
        False,
        description="torch.compile the EGNN for training (dynamic shapes; ~1.5x faster "
        "steps on CPU; round-off differs from eager)",
    )
    eval_every: int | None = Field(
        None,
        ge=1,
        description="every N steps sample eval_molecules with the EMA weights (T steps) and record "
        "atom/molecule stability and validity in history.parquet (EDM does this); null = never",
    )
    eval_molecules: int = Field(
        64,
        ge=1,
        description="molecules per in-training evaluation (same sizes and "
        "noise every time, so evaluations compare checkpoints)",
    )
    eval_keep_weights: bool = Field(
        True,
        description="keep the EMA weights of every evaluation in <out>.evals/ (to select a checkpoint "
        "by stability, not by the loss)",
    )

    @model_validator(mode="after")
    def _eval_on_log_rows(self) -> PretrainConfig:
        if self.eval_every is not None and self.eval_every % self.log_every:
            raise ValueError(
                f"pretrain.eval_every ({self.eval_every}) must be a multiple of pretrain.log_every "
                f"({self.log_every}): evaluations are recorded on history rows"
            )
        return self
