"""elign.dft: DFT validation of samples with PySCF (gpu4pyscf with ``device: cuda``).

level.py         DftLevel (functional, basis and Gaussian's basis convention, grid, tolerances), units
pyscf_runner.py  one molecule -> single point + analytic forces as a row (RKS/UKS by electron parity)
atoms.py         isolated-atom references (ground-state multiplicities), cached on disk per level
worker.py        child process per shard with a per-molecule time limit (timeout rows)
pairing.py       the paired selection: mol_ids chosen once from the baseline, the same ones for its noise
select.py        the size-matched draw underneath (and per model without a selection), contiguous shards
relax.py         DFT relaxation: geomeTRIC geometry optimization at the single point's level
jobs.py          the shard loop with a resumable checkpoint
results.py       the Parquet schema of the DFT artifact, gather, summary

Nothing here imports PySCF at module import time except inside the functions that run it.
"""
