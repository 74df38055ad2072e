"""DFT relaxation: a geometry optimization of one molecule at the single point's level (geomeTRIC + PySCF).

The optimizer is geomeTRIC (Wang & Song, J. Chem. Phys. 144, 214108 (2016); PyPI ``geometric``), driven
through its custom-engine interface: every step calls :func:`energy_gradient`, which builds the SCF exactly as
:func:`elign.dft.pyscf_runner.single_point` does (Gaussian's basis convention with its 6D7F subspace, density
fitting, grid, DIIS then the Newton rescue, ``mf.to_gpu()`` for ``device: cuda``, i.e. gpu4pyscf), starting
from the previous step's density. PySCF's own ``geometric_solver`` reuses one SCF scanner instead, whose basis
restriction would be computed at the first geometry only; ours is rebuilt at every geometry.

Convergence: geomeTRIC's default criteria (``GAU``: energy change 1e-6 Ha, RMS / max gradient 3e-4 / 4.5e-4
Ha/Bohr, RMS / max displacement 1.2e-3 / 1.8e-3 Å). ``max_steps`` caps the optimization cycles; a molecule
that has not converged by then is a row with status ``not_converged`` (its lowest-energy geometry kept, the
relaxation energy then a lower bound). An SCF that fails at some step ends the optimization as
``scf_not_converged``; a geomeTRIC or PySCF exception is ``error``. Never a silent value.

Row (:func:`relax`): relax_status (ok / not_converged / scf_not_converged / error / skipped), relax_reason,
relax_steps (geomeTRIC's optimization steps: energy + gradient evaluations after the start geometry's; 0 = the
start was already a minimum), relax_energy_ha (the converged energy, else the lowest one evaluated),
relaxation_energy_kcal_mol (E(start) - E(last)), relax_heavy_rmsd_ang (Kabsch-superposed RMSD of the heavy
atoms between the start and the last geometry), relaxed_positions_ang ((N, 3) Å), relax_seconds (set by
the worker).
"""

from __future__ import annotations

import math
import os
import tempfile

import numpy as np

from elign.constants import BOHR_TO_ANG, HARTREE_TO_EV
from elign.dft.level import DftLevel

HARTREE_TO_KCAL_PER_MOL = HARTREE_TO_EV * 96485.33212 / 4184.0  # eV -> kJ/mol (Faraday) -> kcal/mol
_QUIET_LOG_INI = """[loggers]
keys=root
[handlers]
keys=null
[formatters]
keys=plain
[logger_root]
level=WARNING
handlers=null
[handler_null]
class=logging.NullHandler
level=WARNING
formatter=plain
args=()
[formatter_plain]
format=%(message)s
"""


class ScfFailed(RuntimeError):
    """The SCF of one optimization step did not converge (the optimization stops; the row says which step)."""


def empty_relax_row(status: str = "skipped", reason: str = "") -> dict:
    nan = math.nan
    return {
        "relax_status": status,
        "relax_reason": reason,
        "relax_steps": 0,
        "relax_energy_ha": nan,
        "relaxation_energy_kcal_mol": nan,
        "relax_heavy_rmsd_ang": nan,
        "relaxed_positions_ang": None,
        "relax_seconds": nan,
    }


def energy_gradient(mol, level: DftLevel, dm0=None):
    """(energy Ha, gradient (N, 3) Ha/Bohr, density matrix) of ``mol`` at ``level``; :class:`ScfFailed` if the
    SCF (DIIS, then Newton) does not converge."""
    from elign.dft.pyscf_runner import _host, _newton_rescue, check_in_subspace, make_scf, pure_f_subspace

    mf = make_scf(mol, level, unrestricted=mol.spin != 0)
    energy = float(mf.kernel(dm0=dm0))
    if not mf.converged and level.newton_cycles > 0:
        mf, energy = _newton_rescue(mf, level)
    if not mf.converged:
        raise ScfFailed(f"SCF not converged (max_cycles {level.max_cycles}, newton_cycles {level.newton_cycles})")
    transform = pure_f_subspace(mol, level)
    leak = check_in_subspace(mf, transform) if transform is not None else None
    if leak is not None:
        raise RuntimeError(leak)
    return energy, _host(mf.nuc_grad_method().kernel()), mf.make_rdm1()


def _engine(mol, level: DftLevel):
    """A geomeTRIC engine whose every step is :func:`energy_gradient` at ``level``, from the last density."""
    import geometric.engine
    import geometric.molecule

    class PyscfLevelEngine(geometric.engine.Engine):
        def __init__(self):
            molecule = geometric.molecule.Molecule()
            molecule.elem = [mol.atom_pure_symbol(i) for i in range(mol.natm)]
            molecule.xyzs = [mol.atom_coords() * BOHR_TO_ANG]
            super().__init__(molecule)
            self.mol, self.dm, self.energies_ha, self.coords_ang = mol.copy(), None, [], []

        def calc_new(self, coords, dirname):
            bohr = np.asarray(coords, dtype=np.float64).reshape(-1, 3)
            self.mol.set_geom_(bohr, unit="Bohr")
            try:
                energy, grad, dm = energy_gradient(self.mol, level, self.dm)
            except ScfFailed as exc:
                raise ScfFailed(f"step {len(self.energies_ha) + 1}: {exc}") from None
            self.dm = dm
            self.energies_ha.append(energy)
            self.coords_ang.append(bohr * BOHR_TO_ANG)
            return {"energy": energy, "gradient": grad.ravel()}

    return PyscfLevelEngine()


def relax(atomic_numbers: np.ndarray, positions_ang: np.ndarray, level: DftLevel, max_steps: int) -> dict:
    """Optimize one molecule's geometry at ``level`` (module doc); always a row dict (see :func:`empty_relax_row`).

    atomic_numbers (N,), positions_ang (N, 3) Å."""
    from geometric.errors import GeomOptNotConvergedError
    from geometric.optimize import run_optimizer

    from elign.dft.pyscf_runner import build_mole, check_geometry, electron_spin

    z = np.asarray(atomic_numbers, dtype=np.int64)
    problem = check_geometry(z, positions_ang, level.charge)
    if problem is not None:
        return empty_relax_row("error", f"bad input: {problem}")
    engine = None
    try:
        engine = _engine(build_mole(z, positions_ang, level, electron_spin(z, level.charge)[1]), level)
        with tempfile.TemporaryDirectory(prefix="elign_relax_") as tmp:
            log_ini = os.path.join(tmp, "log.ini")
            with open(log_ini, "w") as fh:
                fh.write(_QUIET_LOG_INI)
            progress = run_optimizer(
                customengine=engine, input=os.path.join(tmp, "opt"), maxiter=int(max_steps), logIni=log_ini
            )
        engine.final = (np.asarray(progress.xyzs[-1], dtype=np.float64), float(progress.qm_energies[-1]))
        status, reason = "ok", ""
    except GeomOptNotConvergedError:
        status, reason = "not_converged", f"not converged within relax_max_steps = {max_steps} optimization cycles"
    except ScfFailed as exc:
        status, reason = "scf_not_converged", str(exc)
    except Exception as exc:  # geomeTRIC and PySCF raise many types: a row, never a dead shard
        status, reason = "error", f"{type(exc).__name__}: {exc}"
    return _row(z, positions_ang, engine, status, reason)


def _row(z: np.ndarray, start_ang, engine, status: str, reason: str) -> dict:
    from elign.metrics.relaxation import heavy_atom_rmsd

    row = empty_relax_row(status, reason)
    if engine is None or not engine.energies_ha:
        return row
    # converged: geomeTRIC's last accepted geometry; otherwise the lowest-energy one evaluated (a rejected trial
    # step can lie far above the start), so the relaxation energy is a lower bound, never below zero
    best = int(np.argmin(engine.energies_ha))
    last, energy = getattr(engine, "final", None) or (engine.coords_ang[best], engine.energies_ha[best])
    start = np.asarray(start_ang, dtype=np.float64)
    row.update(
        relax_steps=len(engine.energies_ha) - 1,
        relax_energy_ha=energy,
        relaxation_energy_kcal_mol=(engine.energies_ha[0] - energy) * HARTREE_TO_KCAL_PER_MOL,
        relax_heavy_rmsd_ang=heavy_atom_rmsd(z, start, last) if (z > 1).any() else math.nan,
        relaxed_positions_ang=last.tolist(),
    )
    return row
