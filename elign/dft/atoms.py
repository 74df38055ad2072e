"""Isolated-atom reference energies (for formation energies), computed once per element and level.

Each atom is a UKS calculation at the molecule's level with its ground-state multiplicity 2S+1
(Hund's rules; NIST atomic spectra database ground terms): H 2, He 1, Li 2, Be 1, B 2, C 3, N 4, O 3,
F 2, Ne 1, Na 2, Mg 1, Al 2, Si 3, P 4, S 3, Cl 2, Ar 1, Br 2, I 2. Other elements have no reference here:
their molecules keep energy and forces, with a NaN formation energy and a reason.

Cache: ``<cache_dir>/<DftLevel.reference_key()>.json`` = {"level": ..., "energies_ha": {"6": ..., ...}}.
The key hashes the level and the pyscf version, so a changed level never reads stale numbers. Writes
are atomic (temp file + rename); two jobs that add elements at once may drop each other's addition,
which only costs a recomputation.

Formation energy per atom (eV/atom) = (E_mol - sum_i E_atom(Z_i)) * 27.211386245988 / N.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from elign.constants import HARTREE_TO_EV
from elign.dft.level import DftLevel
from elign.elements import GROUND_STATE_MULTIPLICITY
from elign.io.atomic import write_json_atomic

log = logging.getLogger("elign.dft")

DEFAULT_CACHE_DIR = Path("resources/dft_atoms")

AtomSolver = Callable[[int, int], dict]  # (Z, spin = 2S) -> {"status", "reason", "energy_ha", ...}


class AtomReferences:
    """Energies of isolated atoms at one level, from the disk cache or computed with ``solve``."""

    def __init__(self, level: DftLevel, solve: AtomSolver, cache_dir: str | Path = DEFAULT_CACHE_DIR):
        self.level = level
        self.solve = solve
        self.path = Path(cache_dir) / f"{level.reference_key()}.json"
        self.failures: dict[int, str] = {}
        self.energies_ha: dict[int, float] = self._read()

    def _read(self) -> dict[int, float]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text())
            return {int(k): float(v) for k, v in data["energies_ha"].items()}
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable atom cache %s (%s); recomputing", self.path, exc)
            return {}

    def _write(self) -> None:
        on_disk = self._read()  # keep what another job added meanwhile
        on_disk.update(self.energies_ha)
        self.energies_ha = on_disk
        write_json_atomic(
            self.path,
            {
                "level": self.level.describe(),
                "pyscf_key": self.path.stem,
                "multiplicity": {str(z): GROUND_STATE_MULTIPLICITY[z] for z in on_disk},
                "energies_ha": {str(z): e for z, e in sorted(on_disk.items())},
            },
        )

    def energy_ha(self, z: int) -> float:
        """E(Z) in Ha; NaN (with ``failures[z]`` saying why) if there is no reference or its SCF failed."""
        z = int(z)
        if z in self.energies_ha:
            return self.energies_ha[z]
        if z in self.failures:
            return math.nan
        if z not in GROUND_STATE_MULTIPLICITY:
            self.failures[z] = f"no ground-state multiplicity tabulated for Z={z}"
            return math.nan
        result = self.solve(z, GROUND_STATE_MULTIPLICITY[z] - 1)
        if result.get("status") != "ok":
            self.failures[z] = f"isolated atom Z={z}: {result.get('status')}: {result.get('reason')}"
            return math.nan
        self.energies_ha[z] = float(result["energy_ha"])
        self._write()
        log.info(
            "isolated atom Z=%d (2S+1=%d): %.8f Ha -> %s",
            z,
            GROUND_STATE_MULTIPLICITY[z],
            self.energies_ha[z],
            self.path,
        )
        return self.energies_ha[z]

    def formation_energy_per_atom_ev(self, energy_ha: float, atomic_numbers: np.ndarray) -> tuple[float, str]:
        """(formation energy per atom in eV/atom, "" or why it is NaN). atomic_numbers (N,)."""
        z = np.asarray(atomic_numbers, dtype=np.int64)
        refs = {int(e): self.energy_ha(int(e)) for e in np.unique(z)}
        missing = [self.failures[e] for e, v in refs.items() if math.isnan(v)]
        if missing:
            return math.nan, "formation energy unavailable: " + "; ".join(missing)
        total_ref = sum(refs[int(e)] for e in z)
        return (energy_ha - total_ref) * HARTREE_TO_EV / len(z), ""
