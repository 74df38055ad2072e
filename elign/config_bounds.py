"""Absurd magnitudes: the largest value each count, size and loop bound of the config may take.

A batch of 10^30 molecules or a run of 10^12 would allocate or loop until the job is killed, hours in. Each
bound below is what one machine (or the data) can hold, with the reason, which the error message names.
None of them is near a real setting: EDM's largest runs use batches of 64, 1,000 diffusion steps and
about 3 million optimizer steps; QM9 has 130,831 molecules of at most 29 atoms, GEOM-Drugs ~37 million
conformers of at most 181 atoms.
"""

from __future__ import annotations

MAX_MOLECULES = 10_000_000
MAX_BATCH_MOLECULES = 2**20
MAX_ATOMS = 1_000
MAX_DIFFUSION_STEPS = 100_000
MAX_OPTIMIZER_STEPS = 10**9
MAX_LOOP = 10**6

_MOLECULES = (
    f"{MAX_MOLECULES:,} molecules (76x QM9): sampling them at 1,000 steps takes months on a CPU and "
    "the per-model tables would outgrow a disk"
)
_BATCH = (
    f"{MAX_BATCH_MOLECULES:,} molecules per batch: 2^20 QM9-size molecules (29 atoms) hold 8.8e8 atom pairs, "
    "225 GB of float32 edge features per layer at 64 hidden channels, beyond any one machine's memory"
)
_STEPS = f"{MAX_OPTIMIZER_STEPS:,} optimizer steps (EDM trained ~3 million): the run would never finish"
_LOOP = f"{MAX_LOOP:,}: a loop this long never finishes within a job's time limit"

#: key path -> (largest allowed value, why). A key whose value is null or a text is not bounded here.
BOUNDS: dict[str, tuple[int, str]] = {
    "data.filters.max_atoms": (MAX_ATOMS, f"{MAX_ATOMS:,} atoms (GEOM-Drugs' largest has 181)"),
    "pretrain.architecture.hidden_nf": (8_192, "8,192 channels: the EGNN's weights grow with its square"),
    "pretrain.architecture.n_layers": (256, "256 layers (EDM: 9)"),
    "pretrain.architecture.inv_sublayers": (64, "64 sublayers per layer (EDM: 1)"),
    "pretrain.diffusion_steps": (MAX_DIFFUSION_STEPS, f"{MAX_DIFFUSION_STEPS:,} diffusion steps (EDM: 1,000)"),
    "pretrain.batch_size": (MAX_BATCH_MOLECULES, _BATCH),
    "pretrain.max_steps": (MAX_OPTIMIZER_STEPS, _STEPS),
    "pretrain.eval_molecules": (MAX_MOLECULES, _MOLECULES),
    "pretrain.gpus": (1_024, "1,024 GPUs in one torchrun job"),
    "finetune.iterations": (MAX_LOOP, _LOOP),
    "finetune.prompts_per_iteration": (MAX_BATCH_MOLECULES, _BATCH),
    "finetune.rollouts_per_prompt": (MAX_BATCH_MOLECULES, _BATCH),
    "finetune.update_epochs": (1_000, "1,000 passes over one iteration's rollouts"),
    "finetune.eval_molecules": (MAX_MOLECULES, _MOLECULES),
    "sample.num_molecules": (MAX_MOLECULES, _MOLECULES),
    "sample.guidance_num_molecules": (MAX_MOLECULES, _MOLECULES),
    "sample.batch_size": (MAX_BATCH_MOLECULES, _BATCH),
    "sample.timing.molecules": (MAX_BATCH_MOLECULES, _BATCH),
    "sample.timing.steps": (MAX_DIFFUSION_STEPS, f"{MAX_DIFFUSION_STEPS:,} diffusion steps (EDM: 1,000)"),
    "sample.timing.reps": (1_000, "1,000 timing rounds"),
    "evaluate.relax.max_steps": (MAX_LOOP, _LOOP),
    "dft.molecules_per_model": (100_000, "100,000 DFT molecules per model: ~1 CPU-hour each at QM9's level"),
    "dft.guided_molecules": (100_000, "100,000 DFT molecules per model: ~1 CPU-hour each at QM9's level"),
    "dft.shards": (10_000, "10,000 jobs per model"),
    "dft.max_cycles": (10_000, "10,000 SCF cycles (DIIS converges in tens or never)"),
    "dft.newton_cycles": (10_000, "10,000 Newton macro cycles"),
    "dft.safety_time_limit_s": (7 * 86_400, "a week per molecule"),
    "dft.threads": (4_096, "4,096 threads"),
    "report.n_bootstrap": (10**7, "10^7 resamples: the resample matrix of 256 molecules would need 20 GB"),
    "report.example_molecules": (10_000, "10,000 depictions per model"),
    "report.histogram_bins": (100_000, "100,000 bins"),
}
for _section in ("finetune.mlff", "sample.guidance_mlff", "evaluate.mlff"):
    BOUNDS[f"{_section}.batch_size"] = (MAX_BATCH_MOLECULES, _BATCH)
    BOUNDS[f"{_section}.workers"] = (4_096, "4,096 worker processes")
    BOUNDS[f"{_section}.time_limit_s"] = (86_400, "a day per molecule")
