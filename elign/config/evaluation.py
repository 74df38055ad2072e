"""The sections after training: ``sample``, ``evaluate`` (with the relaxation), ``dft`` and ``report``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from elign.config.base import SEED_MAX, Section
from elign.config.mlff import MLFFConfig
from elign.registries import METRICS


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
