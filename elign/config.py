"""The typed configuration of elign: one pydantic model per stage; unknown keys are errors.

This module is the single source of truth. ``elign config-schema`` writes the JSON schema the Snakefile
validates against (``workflow/schemas/config.schema.yaml``); a test keeps the two identical.
Experiments are small YAML override files deep-merged onto ``config/config.yaml``.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from elign.config_checks import (  # noqa: F401 (callers import ConfigError and read_yaml from here)
    ConfigError,
    ConfigMapping,
    Origins,
    fractions_leave_training,
    integral_floats_as_ints,
    key_loc,
    known_elements,
    no_final_newline,
    origin_note,
    read_yaml,
    schema_problems,
    short_repr,
    surprise_lines,
    trusted,
    without_keys,
    yaml_scalars,
)
from elign.config_rules import WORKFLOW_MODELS, semantic_problems  # noqa: F401 (common.smk reads WORKFLOW_MODELS)
from elign.registries import ALL as REGISTRIES
from elign.registries import DATA_SOURCES, METRICS, MLFF_BACKENDS, REWARDS, names_key

SEED_MAX = 2**32 - 1  # numpy's legacy seeding range; seed + any offset stays far inside torch's and Parquet's int64


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, values are checked strictly.

    Floats must be finite (``.inf``/``.nan`` in YAML are errors); the JSON types of the values are checked
    against the generated schema too (:func:`validate_config`), so ``seed: '0'`` or ``seed: true`` is an
    error here exactly as in the Snakefile's schema validation.
    """

    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)


# ----------------------------------------------------------------------------------------- data sources
class FigshareFiles(Section):
    """The three original QM9 files on figshare (Ramakrishnan et al., Sci. Data 1, 140022, 2014)."""

    xyz_archive: str = Field("3195389", description="figshare file id of dsgdb9nsd.xyz.tar.bz2")
    uncharacterized: str = Field("3195404", description="figshare file id of uncharacterized.txt")
    atomref: str = Field("3195395", description="figshare file id of atomref.txt")


class FigshareSha256(Section):
    """Expected sha256 of each downloaded file (the published originals by default)."""

    xyz_archive: str = "3a63848ac80691bdb8d41834b575afad345b9300d7a2db0c38adb7f6eaa8360c"
    uncharacterized: str = "3aa5115d540b356de94791d4a74c3bf1ed91c469ecf52a4f5d7cc0506fe02e24"
    atomref: str = "af739d4a0fbe894a56f346ad6045ee1b74c58f8a8c9ef3fbfed920c9ad8b00f9"


class FigshareSource(Section):
    """QM9 from the original figshare archive, downloaded (or read from ``local_dir``) and sha256-checked."""

    base_url: str = Field(
        "https://ndownloader.figshare.com/files",
        description="download URL prefix; a file is fetched from {base_url}/{file id}",
    )
    file_ids: FigshareFiles = FigshareFiles()
    sha256: FigshareSha256 = FigshareSha256()
    cache_dir: str = Field("resources/qm9/figshare", description="where downloads are kept")
    local_dir: str | None = Field(None, description="read the three files from this folder instead of downloading")
    retries: int = Field(3, ge=1, le=20)
    timeout_s: float = Field(60.0, gt=0)


class GeomDrugsSource(Section):
    """GEOM-Drugs (Axelrod & Gomez-Bombarelli, Sci. Data 9, 185, 2022) from ``drugs_crude.msgpack``.

    Download: Harvard Dataverse, doi:10.7910/DVN/JNGTDF, file 4360331 (drugs_crude.msgpack.tar.gz, ~43 GB; the
    URL EDM's README gives), then extract ``drugs_crude.msgpack``. Its MD5 (the checksum Dataverse lists; no
    sha256 is published) is pinned below.
    """

    path: str = "resources/geom/drugs_crude.msgpack"
    download_url: str = Field(
        "https://dataverse.harvard.edu/api/access/datafile/4360331",
        description="drugs_crude.msgpack.tar.gz; the workflow fetches it (rule geom_drugs_download) only when path "
        "is missing",
    )
    md5: str | None = Field(
        "7778e84c50b7cde755cca670d1f75091",
        pattern=r"^[0-9a-f]{32}$",
        description="expected MD5 of the downloaded archive (Dataverse's checksum of file 4360331, GEOM release v4 "
        "of 2022-02-11): a mismatch stops the download before anything is extracted; null = not checked",
    )
    sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="expected sha256 of the downloaded archive (none is published): a mismatch stops the download; "
        "null = not checked, the hash is written beside the archive (<archive>.sha256) to pin here",
    )
    conformers_per_molecule: int = Field(30, ge=1, description="lowest-energy conformers kept (EDM: 30)")
    valid_fraction: float = Field(0.1, ge=0, lt=1)
    test_fraction: float = Field(0.1, ge=0, lt=1)

    @model_validator(mode="after")
    def _split_leaves_training(self) -> GeomDrugsSource:
        return fractions_leave_training(self, "data.geom_drugs")


class FilesSource(Section):
    """The user's own molecules: SDF, multi-frame XYZ/extxyz, or Parquet (our molecule schema)."""

    paths: list[str] = Field(default_factory=list, description="input files; format from the extension")
    format: Literal["auto", "sdf", "xyz", "extxyz", "parquet"] = "auto"
    split_column: str | None = Field(None, description="SDF property / Parquet column holding train|valid|test")
    valid_fraction: float = Field(0.1, ge=0, lt=1)
    test_fraction: float = Field(0.1, ge=0, lt=1)
    max_abs_coordinate_ang: float = Field(
        1000.0,
        gt=0,
        le=1e6,
        description="a record with a coordinate beyond this (Å, any axis) is bad: float32 "
        "storage keeps ~1e-4 Å only up to ~1000 Å; beyond, a wrong unit or a corrupt file",
    )
    min_distance_ang: float = Field(
        0.5,
        ge=0,
        description="a record with two atoms closer than this (Å) is bad (the shortest bond, H2, is "
        "0.74 Å): duplicated atoms, all atoms at the origin, a collapse; 0 turns the check off",
    )

    @model_validator(mode="after")
    def _split_leaves_training(self) -> FilesSource:
        return fractions_leave_training(self, "data.files")


class DataFilters(Section):
    """Molecules outside these limits are dropped and counted in stats.json."""

    allowed_elements: list[str] | None = Field(
        None, description="element symbols to keep, e.g. what the force field can score; null keeps all"
    )
    max_atoms: int | None = Field(None, ge=1, description="drop molecules with more atoms; null keeps all")

    @field_validator("allowed_elements")
    @classmethod
    def _known_elements(cls, value: list[str] | None) -> list[str] | None:
        return known_elements(value)


class DataSubset(Section):
    """Keep only the first N molecules of each split after splitting (smoke tests); null keeps all."""

    train: int | None = Field(None, ge=1)
    valid: int | None = Field(None, ge=1)
    test: int | None = Field(None, ge=1)


class DataConfig(Section):
    """The data stage: where molecules come from, how they are split, filtered and checked."""

    dataset: str = Field("qm9", pattern=r"^[A-Za-z0-9_\-]+$", description="name used in results/ paths")
    source: str = Field(
        "qm9pack", description="a registered data source (elign.registries)", json_schema_extra=DATA_SOURCES.schema_enum
    )
    on_error: Literal["raise", "skip"] = Field(
        "raise", description="bad input record: stop with file/record/problem, or skip and count it"
    )
    filters: DataFilters = DataFilters()
    subset: DataSubset = DataSubset()
    figshare: FigshareSource = FigshareSource()
    geom_drugs: GeomDrugsSource = GeomDrugsSource()
    files: FilesSource = FilesSource()

    @field_validator("source")
    @classmethod
    def _registered_source(cls, value: str) -> str:
        return DATA_SOURCES.check(value)


# ------------------------------------------------------------------------------- later stages (shape)
class ModelArchitecture(Section):
    """Overrides of the backbone preset's architecture; null keeps the preset's value."""

    hidden_nf: int | None = Field(None, ge=1)
    n_layers: int | None = Field(None, ge=1)
    inv_sublayers: int | None = Field(None, ge=1)
    attention: bool | None = None


def require_for_kind(source: Any, need: dict[str, tuple[str, ...]], where: str) -> Any:
    """``source`` after checking that the keys its ``kind`` needs are set (an experiment may switch the kind
    of a merged config: keys another kind uses are ignored)."""
    missing = [k for k in need[source.kind] if getattr(source, k) is None]
    if missing:
        raise ValueError(f"{where}.kind {source.kind!r} needs {' and '.join(missing)}")
    return source


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


class MLFFConfig(Section):
    """Which force field scores molecules (elign.mlff registry); energies in eV, forces in eV/Å."""

    backend: str = Field(
        "ani2x",
        description="a registered backend (elign.registries); default ANI-2x (torchani; H C N O F S Cl); "
        "gfn2-xtb: GFN2-xTB (tblite; H-Rn)",
        json_schema_extra=MLFF_BACKENDS.schema_enum,
    )
    model_path: str | None = Field(None, description="weights file for aimnet2 / mace-off / uma")
    model: str | None = Field(None, description="mace-off size: small | medium | large")
    model_index: int | None = Field(None, ge=0, description="ANI: one ensemble member instead of the ensemble")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["float32", "float64"] = "float32"
    batch_size: int = Field(256, ge=1, description="molecules per MLFF call")
    workers: int | None = Field(
        None, ge=1, description="gfn2-xtb only: worker processes, one thread each; null = the job's threads"
    )
    time_limit_s: float | None = Field(
        None,
        gt=0,
        description="gfn2-xtb only: seconds per molecule before a timeout row; null = the backend's "
        "default (elign.mlff.xtb.DEFAULT_TIME_LIMIT_S)",
    )
    electronic_temperature_k: float | None = Field(
        None,
        gt=0,
        description="gfn2-xtb only: Fermi smearing temperature; null = tblite's 300 K. Higher (e.g. "
        "3000) lets SCFs of far-from-equilibrium geometries converge, with smeared energies",
    )

    @field_validator("backend")
    @classmethod
    def _registered_backend(cls, value: str) -> str:
        return MLFF_BACKENDS.check(value)

    @field_validator("workers", "time_limit_s", "electronic_temperature_k")
    @classmethod
    def _xtb_only(cls, value, info):
        if value is not None and info.data.get("backend") != "gfn2-xtb":
            raise ValueError(f"{info.field_name} applies to backend gfn2-xtb only, not {info.data.get('backend')!r}")
        return value


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


class SamplingTiming(Section):
    """The sampling-time comparison (elign time-sampling): one batch, every model, interleaved repeats."""

    molecules: int = Field(64, ge=1, description="one batch of this many molecules (sizes from the histogram)")
    steps: int = Field(30, ge=1, description="reverse steps timed per repeat, extrapolated to T")
    reps: int = Field(3, ge=1, description="interleaved rounds (model A, B, C, A, B, C, ...); the median is kept")


class SampleConfig(Section):
    """Sampling molecules from a model with the reverse diffusion chain."""

    num_molecules: int = Field(256, ge=1)
    batch_size: int = Field(64, ge=1)
    max_batch_edges: int | None = Field(
        None,
        ge=2,
        description="cap on the directed edges (sum of n(n-1)) of one batch: molecules sorted by size are cut into "
        "batches of at most batch_size molecules and this many edges (a molecule over the cap gets a batch of its "
        "own); the EGNN's memory grows with edges (a 181-atom GEOM molecule has 32,580); null = batch_size alone",
    )
    sizes: Literal["histogram"] | int | list[int] = Field(
        "histogram", description="atom counts: 'histogram' (training split, stats.json), one size, or a list"
    )
    seed_offset: int = Field(1000, ge=0, le=SEED_MAX, description="sampling seed = seed + seed_offset (fresh noise)")
    use_ema: bool = True
    device: Literal["auto", "cpu", "cuda"] = "auto"
    max_abs_position_ang: float = Field(
        100.0, gt=0, description="a sample with |x| beyond this (or NaN) is kept with status 'exploded'"
    )
    guidance_scale: float = Field(
        1.0, ge=0, description="MLFF-guided baseline: mean += scale * sigma_t^2 * F(x0_hat) per reverse step"
    )
    guidance_max_step_sigma: float | None = Field(
        1.0,
        gt=0,
        description="MLFF-guided baseline trust region: a molecule's guidance shift is scaled so no atom "
        "moves more than this many reverse-step noise stds per step (elign.diffusion.guidance); null = no cap",
    )
    guidance_max_t: float | None = Field(
        0.2,
        gt=0,
        le=1,
        description="MLFF-guided baseline: guide only reverse steps with t <= this (t in [0, 1]; "
        "the low-noise end of the chain); null = every step",
    )
    guidance_mlff: MLFFConfig = MLFFConfig()
    guidance_num_molecules: int | None = Field(
        None, ge=1, description="molecules of the MLFF-guided baseline (costs more per step); null = num_molecules"
    )
    timing: SamplingTiming = SamplingTiming()


class RelaxConfig(Section):
    """Relaxation of every evaluated molecule with the evaluation MLFF (``elign.mlff.relax``: FIRE, batched).

    Reported per molecule: E(sample) - E(relaxed) in kcal/mol and the heavy-atom RMSD to the relaxed geometry.
    The FIRE parameters are ASE 3.29's ``ase.optimize.FIRE`` defaults (Bitzek et al., PRL 97, 170201, 2006),
    and the tolerance ASE's default ``fmax`` (also GFN2-xTB's "normal" gradient threshold, 1e-3 Eh/bohr);
    ``elign.mlff.relax.FireSettings`` has the same defaults (a test keeps them equal).
    """

    enabled: bool = Field(True, description="relax every scorable molecule; false leaves the relax_* columns out")
    max_steps: int = Field(
        100,
        ge=0,
        description="FIRE steps at most; a molecule still above fmax keeps its last geometry with "
        "relax_converged false (its relaxation energy is then a lower bound). 100, measured here (ANI-2x, float32, "
        "one busy core): QM9 test minima take 26 steps on average and 99 % converge (0.12-0.18 s/molecule); samples "
        "of the shipped backbone reach 99 % (median) of their 500-step relaxation energy at 0.39 s/molecule",
    )
    fmax_ev_per_ang: float = Field(
        0.05, gt=0, description="converged when the largest atomic force is below this (ASE's default fmax)"
    )
    max_step_ang: float = Field(0.2, gt=0, description="largest displacement of a molecule per step (ASE: maxstep)")
    dt: float = Field(0.1, gt=0, description="initial FIRE time step (ASE units, unit masses)")
    dt_max: float = Field(1.0, gt=0, description="largest FIRE time step (ASE: dtmax)")
    n_min: int = Field(5, ge=0, description="downhill steps before the time step grows (ASE: Nmin)")
    f_inc: float = Field(1.1, gt=1, description="time-step growth factor (ASE: finc)")
    f_dec: float = Field(0.5, gt=0, lt=1, description="time-step cut after an uphill step (ASE: fdec)")
    alpha_start: float = Field(0.1, gt=0, lt=1, description="initial velocity-force mixing (ASE: astart)")
    f_alpha: float = Field(0.99, gt=0, le=1, description="decay of the mixing factor (ASE: fa)")


class EvaluateConfig(Section):
    """Per-molecule metrics: EDM stability, RDKit validity/uniqueness/novelty, MLFF energy and forces, and how far
    each molecule is from an MLFF minimum (relaxation energy and heavy-atom RMSD)."""

    mlff: MLFFConfig = MLFFConfig()
    relax: RelaxConfig = RelaxConfig()
    reference_split: Literal["train", "valid", "test"] = Field(
        "test", description="the data split evaluated as the reference row"
    )
    reference_max_molecules: int | None = Field(
        1000,
        ge=1,
        description="evaluate a random subset of N reference molecules (seeded: seed + reference_seed_offset; kept "
        "in file order); null = all. The split is in QM9-index order, small molecules first: its first N rows "
        "would not be representative",
    )
    reference_seed_offset: int = Field(
        4000, ge=0, le=SEED_MAX, description="reference subset seed = seed + reference_seed_offset"
    )
    bond_rules: Literal["qm9", "geom"] = Field(
        "qm9",
        description="EDM's bond rules for validity: qm9 = bond orders 1-3 from the distance tables; geom = EDM's "
        "GEOM-Drugs variant (limit_bonds_to_one: every inferred bond single, so RDKit fills under-bonded atoms with "
        "hydrogens and only over-bonded ones fail). Stability uses the same tables and orders for both, as EDM's",
    )
    novelty_reference: Literal["smiles", "geometry"] = Field(
        "smiles", description="training set for novelty: its SMILES column, or SMILES rebuilt from its geometries"
    )
    metrics: list[str] = Field(
        [], description="registered metrics (elign.metrics.registry) whose columns are added to the built-in ones"
    )

    @field_validator("metrics")
    @classmethod
    def _registered_metrics(cls, value: list[str]) -> list[str]:
        if len(set(value)) < len(value):
            raise ValueError(f"a metric may appear once, got {value}")
        return [METRICS.check(name) for name in value]


class DftConfig(Section):
    """PySCF single point + analytic gradient of the paired DFT molecules (QM9's level by default), and an
    optional DFT relaxation of the first of them."""

    molecules_per_model: int = Field(
        36,
        ge=1,
        description="k molecules, chosen once from the baseline's sample by mol_id (report.baseline_model; "
        "valid_only / mlff_scored_only look at the baseline only) and computed for every model sampled with "
        "its noise (the same mol_ids: paired); a model sampled with other noise gets k of its own molecules of "
        "the same sizes (unpaired)",
    )
    guided_molecules: int | None = Field(
        10,
        ge=1,
        description="molecules of the MLFF-guided baseline (null = molecules_per_model): the first ones of the "
        "selection (by mol_id if it shares the baseline's noise, else by size)",
    )
    valid_only: bool = Field(
        True, description="select only molecules that are RDKit-valid and sample-ok in the baseline"
    )
    mlff_scored_only: bool = Field(
        True, description="select only molecules the evaluate stage's MLFF scored (mlff_status ok) in the baseline"
    )
    shards: int = Field(4, ge=1, description="jobs per model (Snakemake scatter); a rerun reuses finished shards")
    max_atoms: int | None = Field(
        None,
        ge=1,
        description="DFT only molecules of at most this many atoms: the target sizes are drawn from the part of the "
        "histogram at or below it (the same for every model, so pairs stay paired) and larger samples are not "
        "eligible; the shard log and the parquet metadata say how many were skipped. null = no cap",
    )
    functional: str = Field("b3lypg", description="PySCF xc; b3lypg = Gaussian's B3LYP (QM9's level)")
    basis: str = Field("6-31g(2df,p)", description="QM9: 6-31G(2df,p)")
    density_fit: bool = Field(True, description="density fitting (RI-J) for speed")
    grid_level: int = Field(3, ge=0, le=9, description="PySCF DFT grid level")
    conv_tol: float = Field(1e-9, gt=0, description="SCF energy convergence (Ha)")
    max_cycles: int = Field(100, ge=1, description="DIIS SCF cycles")
    newton_cycles: int = Field(
        30,
        ge=0,
        description="if DIIS has not converged: second-order (Newton) SCF from its last density, at most "
        "this many macro cycles; 0 = none (sampled geometries far from minima need it)",
    )
    safety_time_limit_s: float = Field(
        900.0,
        gt=0,
        description="wall-clock safety net per molecule, not a budget: max_cycles and newton_cycles "
        "bound the work, so the same config gives the same rows on any machine; a row stopped by this net has "
        "status timeout and depends on the machine's speed and load",
    )
    device: Literal["cpu", "cuda"] = Field("cpu", description="cuda uses gpu4pyscf (must be installed)")
    threads: int | None = Field(None, ge=1, description="OpenMP threads for PySCF; null = the job's cores")
    relax_molecules: int = Field(
        0,
        ge=0,
        description="DFT relaxation (geomeTRIC geometry optimization at this level) of the first this many "
        "molecules of the selection, after their single point; 0 = none",
    )
    relax_max_steps: int = Field(
        100,
        ge=1,
        description="optimization steps per DFT relaxation; a molecule not converged by then is a row "
        "with relax_status not_converged",
    )


class ReportConfig(Section):
    """Statistics (``elign stats``) and the report folder (``elign report``): tables, plots, example molecules."""

    baseline_model: str = Field("pretrained", description="every other model is compared against this one")
    n_bootstrap: int = Field(10000, ge=100, description="bootstrap resamples per interval")
    confidence: float = Field(0.95, gt=0, lt=1, description="confidence level of the bootstrap intervals")
    power: float = Field(
        0.8,
        gt=0,
        lt=1,
        description="power of the detectable difference the report states for each paired test (two-sided, "
        "alpha = 1 - confidence)",
    )
    ci_method: Literal["percentile", "basic", "BCa"] = Field(
        "percentile", description="scipy.stats.bootstrap method of the intervals"
    )
    seed_offset: int = Field(
        5000, ge=0, le=SEED_MAX, description="bootstrap seed = seed + seed_offset (one stream per metric)"
    )
    example_molecules: int = Field(12, ge=0, description="RDKit 2D depictions per model (valid ones first)")
    histogram_bins: int = Field(40, ge=2, description="bins of the distribution plots")
    dpi: int = Field(120, ge=50, le=600, description="resolution of the PNG figures")
    embed_images: bool = Field(True, description="index.html embeds the PNGs as base64 (else links them)")


class ElignConfig(Section):
    """The whole run. Every section has defaults; ``config/config.yaml`` is the embedded default run."""

    seed: int = Field(0, ge=0, le=SEED_MAX, description="master seed; each stage derives its own from it")
    data: DataConfig = DataConfig()
    pretrain: PretrainConfig = PretrainConfig()
    finetune: FinetuneConfig = FinetuneConfig()
    sample: SampleConfig = SampleConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    dft: DftConfig = DftConfig()
    report: ReportConfig = ReportConfig()


# ---------------------------------------------------------------------------------------- loading
def deep_merge(base: dict, override: dict) -> dict:
    """Recursively merge ``override`` onto a copy of ``base`` (dicts merge, everything else replaces)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_config(*paths: str | Path) -> ElignConfig:
    """Read and deep-merge YAML files in order (later ones override), then validate."""
    files = [(str(path), read_yaml(path)) for path in paths]
    merged: dict = {}
    for _, data in files:
        merged = deep_merge(merged, data)
    return validate_config(merged, source=" + ".join(str(p) for p in paths) or "config", origins=files)


def validate_config(
    data: dict[str, Any], source: str = "config", origins: Origins | None = None, whole: bool = True
) -> ElignConfig:
    """The typed config of ``data``: the pydantic model, the JSON schema's types (they must agree), YAML 1.1
    readings and the semantic rules (:mod:`elign.config_rules`); every problem in one :class:`ConfigError`.

    origins: ``(file name, its mapping)`` in merge order, so that each message says which file set the key.
    whole: ``data`` is the run's whole config; false for a stage's slice (``--config-json``), where a rule
    runs only if each key it reads is set in ``origins`` (the defaults of the rest are not the run's values).
    """
    if not isinstance(data, dict):
        raise ConfigError(
            f"invalid config ({source}): the top level must be a mapping of sections, got {type(data).__name__}"
        )
    plain = integral_floats_as_ints(data)
    try:
        config, model_errors = ElignConfig.model_validate(plain), None
    except ValidationError as exc:
        config, model_errors = None, exc
    lines = _model_lines(model_errors, origins) if model_errors else []
    reported = [loc for loc, _ in lines]
    lines += [
        (loc, f"  {'.'.join(map(str, loc)) or '<top level>'}: {msg}{origin_note(loc, origins)}")
        for loc, msg in schema_problems(data, _schema_validator())
        if not any(seen[: len(loc)] == loc for seen in reported)
    ]  # the model said it already, at or below
    lines += surprise_lines(lines, origins)
    skipped = [loc for loc, _ in lines]
    if config is None:
        config = _best_effort(plain, reported)
    if config is not None:
        for keys, message in semantic_problems(config, lambda key: trusted(key, skipped, origins, whole)):
            lines.append((key_loc(keys[0]), f"  {', '.join(keys)}: {message}{origin_note(key_loc(keys[0]), origins)}"))
    if lines:
        raise ConfigError("\n".join([f"invalid config ({source}):"] + [line for _, line in lines]))
    return config


def _best_effort(data: dict, bad: list[tuple]) -> ElignConfig | None:
    """The config without the rejected keys (their defaults instead), so that the semantic rules can still
    report on the rest in the same message; None when that does not validate either."""
    for _ in range(3):
        data = without_keys(data, bad)
        try:
            return ElignConfig.model_validate(data)
        except ValidationError as exc:
            bad = [tuple(err["loc"]) for err in exc.errors()]
    return None


def snakemake_overrides(overrides: dict) -> ConfigMapping:
    """Snakemake's ``--config`` overrides read the way the user typed them (:func:`yaml_scalars`)."""
    validator = _schema_validator()

    def accepts(loc: tuple, value: Any) -> bool:
        probe = tuple(0 if isinstance(part, int) else part for part in loc)
        node = value
        for part in reversed(probe):
            node = [node] if isinstance(part, int) else {part: node}
        return not any(tuple(e.absolute_path)[: len(probe)] == probe for e in validator.iter_errors(node))

    data, notes = yaml_scalars(overrides, accepts)
    return ConfigMapping(data, notes)


def format_validation_error(exc: ValidationError, source: str, origins: Origins | None = None) -> str:
    """One line per problem: ``key.path: problem (allowed: ...) [in the file that set it]``."""
    return "\n".join([f"invalid config ({source}):"] + [line for _, line in _model_lines(exc, origins)])


def _model_lines(exc: ValidationError, origins: Origins | None) -> list[tuple[tuple, str]]:
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        path = ".".join(str(p) for p in loc) or "<top level>"
        where = origin_note(loc, origins)
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(_allowed_keys(err["loc"][:-1]))
            lines.append((loc, f"  {path}: unknown key (allowed here: {allowed}){where}"))
        else:
            lines.append((loc, f"  {path}: {err['msg']} (got {short_repr(err.get('input'))}){where}"))
    return lines


def _allowed_keys(loc: tuple) -> list[str]:
    model: type[BaseModel] = ElignConfig
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return []
        model = field.annotation
    return list(model.model_fields)


def _schema_validator():
    """The validator of the config's JSON schema, with the names registered at run time (plug-ins, tests) added to
    the registries' enums (the schema file lists the built-in names only)."""
    return _schema_validator_for(names_key())


@functools.lru_cache(maxsize=4)
def _schema_validator_for(_names: tuple) -> Any:
    import jsonschema

    return jsonschema.Draft202012Validator(_widen_registry_enums(json_schema()))


def _widen_registry_enums(node: Any) -> Any:
    """Every ``enum`` that lists a registry's built-in names lists all its registered names instead."""
    if isinstance(node, list):
        return [_widen_registry_enums(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _widen_registry_enums(v) for k, v in node.items()}
    for registry in REGISTRIES:
        if out.get("enum") == registry.builtin_names() and out["enum"]:
            out["enum"] = registry.names()
    return out


def json_schema() -> dict:
    """The JSON schema of :class:`ElignConfig` (what the Snakefile validates against)."""
    schema = _null_first(no_final_newline(ElignConfig.model_json_schema()))
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def _null_first(node: Any) -> Any:
    """Every ``anyOf`` that allows null tries null first.

    Snakemake fills schema defaults while it validates (``validate(config, set_default=True)``): it would
    descend into an optional section's ``$ref`` with the value None and fail on ``None.setdefault``
    (e.g. ``pretrain.lr_decay: null``). ``anyOf`` stops at the first branch that holds, so null goes first.
    """
    if isinstance(node, list):
        return [_null_first(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _null_first(v) for k, v in node.items()}
    if "anyOf" in out:
        out["anyOf"] = sorted(out["anyOf"], key=lambda branch: branch != {"type": "null"})
    return out


def schema_yaml() -> str:
    header = "# Generated by `elign config-schema` from elign/config.py. Do not edit by hand.\n"
    return header + yaml.safe_dump(json_schema(), sort_keys=False, width=100)
