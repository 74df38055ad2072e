"""elign.dft: DFT validation of samples with PySCF (gpu4pyscf with ``device: cuda``).

level.py         DftLevel (functional, basis and Gaussian's basis convention, grid, tolerances), units
pyscf_runner.py  one molecule -> single point + analytic forces as a row (RKS/UKS by electron parity)
atoms.py         isolated-atom references (ground-state multiplicities), cached on disk per level
worker.py        child process per shard with a per-molecule time limit (timeout rows)
select.py        paired selection of k molecules per model (same size mix) and contiguous shards
jobs.py          the shard loop with a resumable checkpoint
results.py       the Parquet schema of the DFT artifact, gather, summary

Nothing here imports PySCF at module import time except inside the functions that run it.
"""
