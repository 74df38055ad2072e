"""The ``finetune`` section: FED-GRPO (Elign, arXiv 2601.21985), or where a run's aligned model comes from."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from elign.config.base import Section, require_for_kind
from elign.config.mlff import MLFFConfig
from elign.registries import REWARDS


class AlignedSource(Section):
    """Where the aligned model of a run comes from (elign.rl.aligned_source).

    train: FED-GRPO here with the settings of ``finetune``; shipped: an aligned model elign ships in
    ``models_dir/<name>/`` (weights checked against the sha256 in its card); file: one of our FED-GRPO
    checkpoints. A shipped or file model must have been aligned from this run's pretrained model (the sha256 of
    the backbone's weights is compared), or the comparison with "pretrained" would compare two unrelated models.
    Keys that the chosen kind does not use are ignored.
    """

    kind: Literal["train", "shipped", "file"] = Field("train", description="train | shipped | file")
    name: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_.\-]+$", description="shipped: the aligned model's folder under models_dir"
    )
    models_dir: str = Field("models", description="shipped: the folder of shipped models")
    path: str | None = Field(None, description="file: a FED-GRPO checkpoint (elign finetune's --out)")

    @model_validator(mode="after")
    def _what_each_kind_needs(self) -> AlignedSource:
        return require_for_kind(self, {"train": (), "shipped": ("name",), "file": ("path",)}, "finetune.source")


class FinetuneLrSchedule(Section):
    """FED-GRPO learning-rate schedule over optimizer steps (one per micro-batch; elign.rl.schedule).

    ``cosine`` is the official Elign code's schedule (``get_cosine_schedule_with_warmup`` with a floor): a
    linear warm-up from 0 over ``warmup_steps``, then lr·(r + (1 − r)·½(1 + cos(2π·c·p))) with
    p = (step − warmup)/(total − warmup), r = ``min_lr_ratio``, c = ``num_cycles``. Like that code it is not
    clamped at p = 1: past ``total_steps`` the cosine rises again.
    """

    kind: Literal["constant", "cosine"] = Field("constant", description="constant lr, or warm-up + cosine")
    warmup_steps: int = Field(0, ge=0, description="optimizer steps of linear warm-up from 0 (cosine only)")
    total_steps: int = Field(1, ge=1, description="optimizer steps of the cosine's first half-period (+ warm-up)")
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="floor of the cosine, as a fraction of lr")
    num_cycles: float = Field(0.5, gt=0, description="cosine periods over total_steps (0.5 = one decay)")

    @model_validator(mode="after")
    def _ordered(self) -> FinetuneLrSchedule:
        if self.kind == "cosine" and self.total_steps <= self.warmup_steps:
            raise ValueError(
                f"lr_schedule.total_steps ({self.total_steps}) must exceed warmup_steps ({self.warmup_steps})"
            )
        return self


class RewardSpec(Section):
    """A reward beyond force and energy: one more advantage channel (elign.rl.reward_registry)."""

    name: str = Field(description="a reward registered with elign.rl.reward_registry.register_reward")
    weight: float = Field(1.0, ge=0, description="its weight w in A = clip(sum of w * A_channel)")
    normalize: Literal["zscore", "center", "none"] = Field(
        "zscore",
        description="within each group: zscore (as force and energy, with group_std), center (minus the group "
        "mean) or none (the values as they are)",
    )

    @field_validator("name")
    @classmethod
    def _registered_reward(cls, value: str) -> str:
        if value in REWARDS.builtin_names():
            raise ValueError(f"{value!r} is a FED-GRPO channel: set finetune.weight_{value} instead")
        return REWARDS.check(value)


class FinetuneConfig(Section):
    """FED-GRPO post-training (Elign, arXiv 2601.21985; docs/design.md, "Science, pinned down").

    The defaults are the default run's (config/config.yaml), tuned for a CPU; the paper's values are in the
    descriptions, and config/experiments/qm9_paper.yaml sets them all (docs/paper_config.md)."""

    source: AlignedSource = Field(
        AlignedSource(), description="where the aligned model comes from; the other keys apply to 'train'"
    )
    iterations: int = Field(40, ge=1, description="rollout + update iterations (official config: 100)")
    prompts_per_iteration: int = Field(4, ge=1, description="prompts (molecule sizes) per iteration (paper: 4)")
    rollouts_per_prompt: int = Field(8, ge=2, description="K rollouts per prompt = group size (paper: 24)")
    sizes: Literal["histogram"] | int | list[int] = Field(
        "histogram", description="prompt sizes: drawn from the training histogram, one size, or a list"
    )
    shared_prefix_steps: int = Field(980, ge=0, description="reverse steps shared by a group (paper: 600-700 of 1000)")
    reference_prefix: bool = Field(
        True,
        description="the aligned model runs the frozen reference network on the shared-prefix steps, where "
        "FED-GRPO gives no training signal, and the fine-tuned one on the branched steps (same sampling cost); "
        "false = the fine-tuned network at every step (the paper)",
    )
    train_steps_per_rollout: int | None = Field(
        None, ge=1, description="branched steps trained per update, a random subset; null = all (official config)"
    )
    energy_every: int = Field(10, ge=1, description="PBRS potential evaluated every k-th trained step")
    weight_force: float = Field(1.0, ge=0, description="w_F (paper: 1)")
    weight_energy: float = Field(0.1, ge=0, description="w_E (paper: 0.05 or 0.1)")
    extra_rewards: list[RewardSpec] = Field(
        [], description="registered rewards mixed into the advantage beside force and energy: {name, weight, normalize}"
    )
    advantage_clip: float = Field(5.0, gt=0, description="advantages clipped to +-this (paper: 5)")
    clip_range: float = Field(2e-3, gt=0, description="PPO ratio clip epsilon (paper: 2e-3)")
    kl_weight: float = Field(0.04, ge=0, description="weight of KL to the frozen pretrained policy (paper: 0.04)")
    policy_features: bool = Field(
        True,
        description="the PPO ratio covers the atom-type and charge dimensions of each reverse step as well as "
        "the positions (the paper); false = positions only: the reward grades the geometry, and the atom types "
        "get no policy gradient, only the KL to the reference",
    )
    feature_kl_weight: float = Field(
        1.0, ge=0, description="multiplier of kl_weight on the atom-type and charge part of the KL (1 = one KL)"
    )
    lr: float = Field(1.2e-4, gt=0, description="AdamW learning rate (paper: 4e-6)")
    lr_schedule: FinetuneLrSchedule = Field(
        FinetuneLrSchedule(), description="lr over optimizer steps (official config: cosine, 60 warm-up, 1500)"
    )
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay (official config: 1e-4)")
    amsgrad: bool = Field(True, description="AdamW's amsgrad variant (EDM's optimizer); the official code: false")
    micro_batch_rollouts: int | None = Field(
        None,
        ge=1,
        description="rollouts per optimizer step: the iteration's rollouts in order, chunked; each chunk is one "
        "AdamW step on its mean per-pair loss (official config: 4); null = one step on all rollouts",
    )
    group_std: Literal["sample", "population"] = Field(
        "sample",
        description="group z-score denominator: sample std (ddof 1), or population std (ddof 0) + 1e-8 as in "
        "the official code",
    )
    grad_clip: float = Field(1.0, gt=0, description="max gradient norm")
    update_epochs: int = Field(2, ge=1, description="passes over the iteration's rollouts (official config: 1)")
    minibatch_steps: int = Field(16, ge=1, description="trained steps per gradient accumulation chunk")
    max_batch_edges: int | None = Field(
        None,
        ge=2,
        description="cap on the directed edges (sum of n(n-1)) of one network pass: rollout steps run in row chunks "
        "and accumulation chunks end early under it (same gradients, same random stream; GEOM's 181-atom molecules "
        "have 32,580 edges each); null = whole rollout batches and minibatch_steps alone",
    )
    ema_decay: float = Field(0.95, ge=0, lt=1, description="EMA of the aligned weights; 0 disables (official: none)")
    stable_only: bool = Field(False, description="gate: only chemically stable molecules get the force reward")
    invalid_penalty: float | None = Field(
        None, description="explicit penalty (reward units) for an RDKit-invalid molecule; null = none"
    )
    unstable_penalty: float | None = Field(
        None,
        ge=0,
        description="explicit penalty (reward units, eV/A) for a final molecule that is not EDM-stable; null = none",
    )
    novelty_penalty: float | None = Field(
        None,
        ge=0,
        description="penalty for a final molecule that is RDKit-invalid or whose SMILES is in the training split "
        "(official config: 0.5); needs the training split (elign finetune --train); null = none",
    )
    penalties_in_energy: bool = Field(
        False,
        description="the terminal penalties (invalid, unstable, novelty) also enter Psi_0, so every energy return "
        "G_t carries them (the official code adds them to every reward channel); false = force channel only",
    )
    checkpoint_every: int = Field(1, ge=1, description="atomic checkpoint every N iterations (resume after a kill)")
    eval_every: int | None = Field(
        20,
        ge=1,
        description="every N iterations (and after the last) sample eval_molecules fresh molecules "
        "with the policy (full chain) and record stability, validity and uniqueness in the history; null = never "
        "(the rollouts' own validity and uniqueness are recorded every iteration)",
    )
    eval_molecules: int = Field(32, ge=1, description="molecules per evaluation (same sizes and noise every time)")
    eval_relax_steps: int = Field(
        100, ge=0, description="FIRE steps of each evaluation's MLFF relaxation (evaluate.relax's default); 0 = none"
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    mlff: MLFFConfig = MLFFConfig()

    @field_validator("extra_rewards")
    @classmethod
    def _once_each(cls, value: list[RewardSpec]) -> list[RewardSpec]:
        names = [spec.name for spec in value]
        if len(set(names)) < len(names):
            raise ValueError(f"a reward may appear once, got {names}")
        return value
