"""GFN2-xTB through tblite (``pip install tblite==0.8.0``): semi-empirical, no weights to download.

GFN2-xTB (Bannwarth, Ehlert & Grimme, J. Chem. Theory Comput. 15, 1652, 2019) is a self-consistent
tight-binding method parametrised for H-Rn (Z = 1-86). tblite ships it as a compiled library.

* Units: tblite works in atomic units. Positions go in as Å / :data:`~elign.constants.BOHR_TO_ANG`; the energy
  comes back in Hartree (x :data:`~elign.constants.HARTREE_TO_EV`) and the gradient in Hartree/Bohr
  (forces = -gradient x HARTREE_TO_EV / BOHR_TO_ANG, eV/Å). Both constants are CODATA 2018.
* Charge and spin: the total charge is the molecule's (``charge``, default 0); the electron count is
  sum(Z) - charge. Even -> singlet (no unpaired electron), odd -> doublet (one unpaired electron, tblite's
  ``uhf=1``): the lowest spin state of the right parity, the same rule as the DFT stage. GFN2-xTB is
  spin-restricted here (no spin-polarisation term), so the spin only sets the alpha/beta occupations.
* Formation energy: isolated neutral atoms computed with GFN2-xTB in their ground-state multiplicity, the
  table the DFT stage uses (:data:`elign.elements.GROUND_STATE_MULTIPLICITY`, H-Ar, Br, I); molecules with
  another element keep energy and forces with a NaN formation energy, as in the DFT stage.
* Failures are rows: an SCF that does not converge within ``max_iterations`` gives status
  ``scf_not_converged``; no result within ``time_limit_s`` gives ``timeout`` (the worker is stopped and
  replaced); any other tblite error gives ``backend_error`` with tblite's message. Never a made-up number.
* SCF: tblite's defaults (accuracy 1, at most 250 iterations, Fermi smearing at 300 K). Geometries far from
  any molecule (e.g. atoms scattered by an untrained model) often do not converge at 300 K; a higher
  ``electronic_temperature_k`` (xtb's ``--etemp``, e.g. 3000) makes them converge, at the price of a
  different (smeared) energy: a run-wide setting, never a per-molecule retry.
* Throughput: tblite does one molecule per call; molecules run in ``workers`` child processes with one
  OpenMP thread each (:mod:`elign.mlff.xtb_pool`). Default ``workers``: torch's thread count, which the
  ``elign`` stages set from their ``--threads`` (the Snakemake rule's threads). Children live as long as the
  backend, so tblite's start-up is paid once per process. Always CPU and float64: the ``device`` and
  ``dtype`` options are accepted (the config passes them to every backend) and do not change the numbers.
"""

from __future__ import annotations

import math
from importlib import metadata

import numpy as np
import torch

from elign.constants import BOHR_TO_ANG, BOLTZMANN_EV_PER_K, HA_PER_BOHR_TO_EV_PER_ANG, HARTREE_TO_EV
from elign.mlff.base import (
    STATUS_BACKEND_ERROR,
    STATUS_NON_FINITE,
    STATUS_OK,
    STATUS_SCF_NOT_CONVERGED,
    STATUS_TIMEOUT,
    MLFFBackend,
)
from elign.mlff.registry import register_backend, require
from elign.mlff.xtb_pool import XTBPool

TBLITE_PIP = "tblite==0.8.0"
GFN2_ELEMENTS = frozenset(range(1, 87))  # GFN2-xTB is parametrised for H-Rn
# tblite's defaults (tblite.interface.Calculator.set): SCC accuracy 1.0, at most 250 SCC iterations.
DEFAULT_ACCURACY = 1.0
DEFAULT_MAX_ITERATIONS = 250
# Measured: ~6 ms per QM9 molecule (18 atoms on average) on one core; 60 s leaves room for
# GEOM-Drugs-sized molecules (up to ~180 atoms) and slow SCFs on a loaded node.
DEFAULT_TIME_LIMIT_S = 60.0


def unpaired_electrons(atomic_numbers: np.ndarray, charge: int = 0) -> int:
    """tblite's ``uhf``: 0 for an even electron count (singlet), 1 for an odd one (doublet)."""
    return (int(np.sum(atomic_numbers)) - int(charge)) % 2


@register_backend("gfn2-xtb")
class GFN2XTBBackend(MLFFBackend):
    """GFN2-xTB single points with tblite in worker processes; options: workers, time_limit_s, accuracy,
    max_iterations, electronic_temperature_k (None = tblite's 300 K), batch_size (molecules handed to the pool
    at once), device/dtype (ignored: CPU, float64)."""

    name = "gfn2-xtb"
    supports_charge = True
    default_reject_odd_electrons = False  # odd electron counts run as doublets

    def __init__(
        self,
        workers: int | None = None,
        time_limit_s: float = DEFAULT_TIME_LIMIT_S,
        accuracy: float = DEFAULT_ACCURACY,
        max_iterations: int = DEFAULT_MAX_ITERATIONS,
        electronic_temperature_k: float | None = None,
        **options,
    ) -> None:
        super().__init__(**options)
        require("tblite", TBLITE_PIP, "MLFF backend 'gfn2-xtb'")  # the package only; the workers load the library
        self.requested_device = str(self.device)
        self.device, self.dtype = torch.device("cpu"), torch.float64
        if max_iterations < 1:
            raise ValueError(f"max_iterations must be >= 1, got {max_iterations}")
        if not accuracy > 0:
            raise ValueError(f"accuracy must be > 0, got {accuracy}")
        if electronic_temperature_k is not None and not electronic_temperature_k > 0:
            raise ValueError(f"electronic_temperature_k must be > 0, got {electronic_temperature_k}")
        workers = torch.get_num_threads() if workers is None else int(workers)
        self.electronic_temperature_k = electronic_temperature_k
        temperature_ha = (
            None
            if electronic_temperature_k is None
            else float(electronic_temperature_k) * BOLTZMANN_EV_PER_K / HARTREE_TO_EV
        )
        self.settings = {
            "method": "GFN2-xTB",
            "accuracy": float(accuracy),
            "max_iterations": int(max_iterations),
            "temperature_ha": temperature_ha,
        }
        self.pool = XTBPool(workers, time_limit_s, self.settings)
        self._references: dict[int, float] | None = None

    @property
    def elements(self) -> frozenset[int]:
        return GFN2_ELEMENTS

    def close(self) -> None:
        """Stop the worker processes (a later evaluate starts them again)."""
        self.pool.close()

    def __enter__(self) -> GFN2XTBBackend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def reference_energies_ev(self) -> dict[int, float]:
        """Isolated neutral atoms in their ground-state multiplicity (the DFT stage's table), eV; computed once.

        An atom whose calculation fails is left out: its molecules get a NaN formation energy, not a made-up one.
        """
        if self._references is None:
            from elign.elements import GROUND_STATE_MULTIPLICITY  # the table the DFT references use

            elements = sorted(GROUND_STATE_MULTIPLICITY)
            jobs = [(np.array([z]), np.zeros((1, 3)), 0, GROUND_STATE_MULTIPLICITY[z] - 1) for z in elements]
            results = self.pool.run(jobs)
            self._references = {
                z: r[1] * HARTREE_TO_EV for z, r in zip(elements, results) if r[0] == "ok" and math.isfinite(r[1])
            }
        return dict(self._references)

    def _score_chunk(self, idx, z, x, q, energy, forces, status, reason, energy_only: bool = False) -> None:
        """Score molecules ``idx`` through the worker pool; fill energy (eV), forces (eV/Å) and statuses.
        tblite returns the gradient with the energy, so ``energy_only`` changes nothing here."""
        real = [z[i] > 0 for i in idx]
        jobs = [
            (z[i][m], x[i][m] / BOHR_TO_ANG, int(q[i]), unpaired_electrons(z[i][m], int(q[i])))
            for i, m in zip(idx, real)
        ]
        for i, m, (kind, energy_ha, gradient, message, _) in zip(idx, real, self.pool.run(jobs)):
            status[i], reason[i] = _classify(kind, message)
            if status[i] != STATUS_OK:
                continue
            if not (math.isfinite(energy_ha) and np.isfinite(gradient).all()):
                status[i], reason[i] = STATUS_NON_FINITE, "tblite returned a non-finite energy or gradient"
                continue
            energy[i] = energy_ha * HARTREE_TO_EV
            forces[i][m] = -gradient * HA_PER_BOHR_TO_EV_PER_ANG

    def describe(self) -> dict:
        return {
            **super().describe(),
            "method": "GFN2-xTB",
            "tblite": metadata.version("tblite"),
            "workers": self.pool.workers,
            "time_limit_s": self.pool.time_limit_s,
            "accuracy": self.settings["accuracy"],
            "max_iterations": self.settings["max_iterations"],
            "electronic_temperature_k": self.electronic_temperature_k,
            "requested_device": self.requested_device,
        }


def _classify(kind: str, message: str) -> tuple[str, str]:
    """A worker result kind -> (status, reason)."""
    if kind == "ok":
        return STATUS_OK, ""
    if kind == "timeout":
        return STATUS_TIMEOUT, message
    if "SCF not converged" in message:  # tblite: TBLiteRuntimeError('SCF not converged in N cycles')
        return STATUS_SCF_NOT_CONVERGED, f"tblite: {message}"
    if kind == "died":
        return STATUS_BACKEND_ERROR, message
    return STATUS_BACKEND_ERROR, f"tblite {kind}: {message}"
