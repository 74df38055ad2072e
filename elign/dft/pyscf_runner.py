"""One molecule -> PySCF single point + analytic gradient, as one result row (in this process).

Spin: the electron count is sum(Z) - charge. Even -> RKS, spin 0 (closed-shell singlet); odd -> UKS,
spin = 2S = 1 (doublet). That is the lowest spin state of the right parity, never a silent guess: the
row records ``method``, ``spin`` and, for UKS, ``s2`` (<S^2>, 0.75 for a clean doublet). A molecule whose
ground state is a triplet (O2, a carbene) is computed as a singlet; the columns say so.

Status: ``ok`` (converged SCF + gradient), ``scf_not_converged`` (no gradient, energies NaN, the reason
gives the cycles and the last energy), ``error`` (bad input or a PySCF exception; the reason says which).
``timeout`` rows come from :mod:`elign.dft.worker`, which runs this module in a child process.

Effective core potentials: an element whose basis is defined with one (def2: Z > 36, e.g. I, Hg, Bi) gets it
(:func:`ecp_spec`); H-Kr stay all-electron and their molecules are built exactly as without ECP handling.

Density fitting: ``mf.density_fit()`` with PySCF's default auxiliary basis for the orbital basis
(def2-universal-jkfit for Pople bases); the DF error on the total energy is ~1e-5 Ha.
Device ``cuda``: the same SCF object is moved to gpu4pyscf with ``mf.to_gpu()`` (see :func:`check_cuda`).
CPU and GPU agree to 1e-10 Ha with spherical functions or without density fitting; with the Gaussian
convention *and* density fitting, to ~1e-5 Ha on 12-18 atoms, because PySCF's auxiliary basis is then
Cartesian too and its near-singular metric amplifies round-off (measured: bench/dft_gpu.py).
"""

from __future__ import annotations

import math
import types
import warnings

import numpy as np

from elign.constants import HA_PER_BOHR_TO_EV_PER_ANG, HARTREE_TO_EV
from elign.dft.level import GAUSSIAN_2D_SCALE, GAUSSIAN_BASES, DftLevel, normalize_basis

MIN_DISTANCE_ANG = 0.1  # closer atoms are a broken geometry (shortest real bond: H2, 0.74 Å), not a DFT job
MAX_ATOMIC_NUMBER = 118


class DftDeviceError(RuntimeError):
    """``device: cuda`` was asked for, but CUDA or gpu4pyscf is missing (never a silent CPU fallback)."""


def check_cuda() -> None:
    """Raise :class:`DftDeviceError` naming what is missing unless gpu4pyscf and a CUDA device are usable."""
    try:
        import gpu4pyscf  # noqa: F401
    except ImportError as exc:
        raise DftDeviceError(
            f"dft.device is 'cuda' but gpu4pyscf is not importable ({exc}); install it "
            "(pip install gpu4pyscf-cuda12x cupy-cuda12x) or set dft.device: cpu"
        ) from None
    try:
        import cupy

        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # cupy raises its own CUDA errors when there is no driver/device
        raise DftDeviceError(
            f"dft.device is 'cuda' but CUDA is not usable ({type(exc).__name__}: {exc}); "
            "run on a GPU node or set dft.device: cpu"
        ) from None
    if count < 1:
        raise DftDeviceError("dft.device is 'cuda' but no CUDA device is visible; set dft.device: cpu")


def electron_spin(atomic_numbers: np.ndarray, charge: int = 0) -> tuple[int, int]:
    """(number of electrons, spin = 2S): 0 for an even count, 1 for an odd one."""
    n = int(np.sum(atomic_numbers)) - int(charge)
    return n, n % 2


def check_geometry(atomic_numbers: np.ndarray, positions_ang: np.ndarray, charge: int = 0) -> str | None:
    """Why this input cannot be a DFT job (a sentence), or None. atomic_numbers (N,), positions_ang (N, 3)."""
    z = np.asarray(atomic_numbers)
    x = np.asarray(positions_ang, dtype=np.float64)
    if z.ndim != 1 or len(z) == 0:
        return "no atoms"
    if x.shape != (len(z), 3):
        return f"positions have shape {x.shape}, expected ({len(z)}, 3)"
    if not np.isfinite(x).all():
        return f"non-finite coordinate (NaN/inf) at atom {int(np.flatnonzero(~np.isfinite(x).all(1))[0])}"
    bad = np.flatnonzero((z < 1) | (z > MAX_ATOMIC_NUMBER))
    if bad.size:
        return f"unknown atomic number {int(z[bad[0]])} at atom {int(bad[0])}"
    if int(z.sum()) - charge <= 0:
        return f"no electrons (sum Z = {int(z.sum())}, charge {charge})"
    if len(z) > 1:
        d = np.linalg.norm(x[:, None] - x[None], axis=-1) + np.eye(len(z)) * 1e9
        i, j = np.unravel_index(np.argmin(d), d.shape)
        if d[i, j] < MIN_DISTANCE_ANG:
            return f"atoms {min(i, j)} and {max(i, j)} are {d[i, j]:.3g} Å apart (< {MIN_DISTANCE_ANG} Å)"
    return None


def basis_spec(level: DftLevel, symbols: list[str]) -> tuple[dict | str, bool]:
    """(PySCF basis per element symbol, Cartesian d?) for ``level`` (see :mod:`elign.dft.level`)."""
    if level.basis_convention == "pyscf":
        return level.basis, False
    from pyscf import gto

    name = normalize_basis(level.basis)
    cart_d, n_scaled = GAUSSIAN_BASES[name]
    if n_scaled < 2:  # one d set: PySCF's exponents are Gaussian's; only 6D differs
        return level.basis, cart_d
    spec = {}
    for sym in sorted(set(symbols)):
        shells = gto.basis.load(name, sym)
        d_sets = [s for s in shells if s[0] == 2]
        if not d_sets:  # H, He: no d in (2df,p)
            spec[sym] = shells
            continue
        alpha = [s for s in gto.basis.load("6-31g*", sym) if s[0] == 2][0][1][0]
        scaled = [[2, [alpha * f, 1.0]] for f in GAUSSIAN_2D_SCALE]
        spec[sym] = [s for s in shells if s[0] < 2] + scaled + [s for s in shells if s[0] > 2]
    return spec, cart_d


def ecp_spec(basis_name: str, symbols: list[str]) -> dict[str, str]:
    """{element symbol: basis_name} for each element whose basis comes with an effective core potential.

    The def2 bases (Weigend & Ahlrichs, PCCP 7, 3297 (2005)) are defined with the Stuttgart-Cologne ECPs for
    Z > 36 (Rb-Rn: ECP28 for I, ECP60 for Hg and Bi): their valence basis for those elements is meaningless
    without the ECP (PySCF would put all 53 electrons of I into a basis made for 25). PySCF ships each ECP under
    its basis name; an element without one (H-Kr in def2, everything in sto-3g or 6-31G) is all-electron and
    gets no entry, so a molecule of only such elements is built exactly as without this function.
    """
    return {s: basis_name for s in sorted(set(symbols)) if _has_ecp(basis_name, s)}


def _has_ecp(basis_name: str, symbol: str) -> bool:
    from pyscf import gto

    try:
        with warnings.catch_warnings():  # PySCF suggests basis-set-exchange for names it has no file for
            warnings.simplefilter("ignore", UserWarning)
            return bool(gto.basis.load_ecp(basis_name, symbol))
    except (RuntimeError, KeyError):  # a name PySCF has no ECP file for at all (e.g. 6-31g(2df,p)): none
        return False


def build_mole(atomic_numbers: np.ndarray, positions_ang: np.ndarray, level: DftLevel, spin: int):
    """PySCF ``Mole`` (unit Angstrom, charge = level.charge, the basis's ECPs where it has them: :func:`ecp_spec`).
    atomic_numbers (N,), positions_ang (N, 3)."""
    from pyscf import gto

    symbols = [gto.mole._symbol(int(z)) for z in atomic_numbers]
    basis, cart = basis_spec(level, symbols)
    ecp = ecp_spec(level.basis, symbols)
    extra = {"ecp": ecp} if ecp else {}  # no ECP: the Mole is built exactly as before ECPs were handled
    atoms = [(s, tuple(float(v) for v in p)) for s, p in zip(symbols, np.asarray(positions_ang, np.float64))]
    return gto.M(
        atom=atoms, basis=basis, unit="Angstrom", charge=level.charge, spin=spin, cart=cart, verbose=0, **extra
    )


def pure_f_transform(mol) -> np.ndarray | None:
    """(nao_cart, nao_6d7f) map from a ``cart=True`` Mole's functions to 6D7F: identity for s, p, d shells,
    PySCF's Cartesian->spherical block for l >= 3. None if the molecule has no shell with l >= 3."""
    from pyscf import gto
    from scipy.linalg import block_diag

    ls = [mol.bas_angular(i) for i in range(mol.nbas)]
    if max(ls) < 3:
        return None
    blocks = []
    for i, ang in enumerate(ls):
        block = np.eye((ang + 1) * (ang + 2) // 2) if ang <= 2 else gto.cart2sph(ang, normalized="sp")
        blocks.extend([block] * mol.bas_nctr(i))
    return block_diag(*blocks)


def pure_f_orthogonalizer(mf, transform: np.ndarray):
    """Restrict ``mf``'s SCF to the span of ``transform``'s columns (6D7F) with X = T (T^T S T)^(-1/2),
    X^T S X = 1, handed to the SCF the way each backend takes an orthogonalizer: PySCF's
    ``check_linear_dependency(s)`` hook (eig, DIIS and the gradient all work from it) and gpu4pyscf's
    ``overlap_canonical_decomposed_x``. :func:`check_in_subspace` verifies afterwards that it was honoured."""
    s = mf.mol.intor_symmetric("int1e_ovlp")
    e, v = np.linalg.eigh(transform.T @ s @ transform)
    x_host = transform @ (v / np.sqrt(e))

    def check_linear_dependency(self, s, verbose=None):
        xp = _array_module(s)
        return xp.asarray(x_host)

    mf.check_linear_dependency = types.MethodType(check_linear_dependency, mf)
    if hasattr(mf, "overlap_canonical_decomposed_x"):  # gpu4pyscf
        mf.overlap_canonical_decomposed_x = _array_module_of(mf).asarray(x_host)
    return mf


def check_in_subspace(mf, transform: np.ndarray, tol: float = 1e-6) -> str | None:
    """Why the occupied orbitals leave the span of ``transform`` (a backend ignored the 6D7F restriction),
    or None. mo_coeff (nao, nmo) or (2, nao, nmo)."""
    coeff, occ = _host(mf.mo_coeff), _host(mf.mo_occ)
    if coeff.ndim == 2:
        coeff, occ = coeff[None], occ[None]
    for c, o in zip(coeff, occ):
        c_occ = c[:, o > 0]
        fit = transform @ np.linalg.lstsq(transform, c_occ, rcond=None)[0]
        residual = np.abs(c_occ - fit).max() / max(np.abs(c_occ).max(), 1e-300)
        if residual > tol:
            return (
                f"occupied orbitals leave the 6D7F space (relative residual {residual:.1e}): this PySCF "
                "backend ignored the basis restriction; use basis_convention 'pyscf' with it"
            )
    return None


def make_scf(mol, level: DftLevel, unrestricted: bool, init_guess: str = "minao"):
    """The RKS/UKS object of ``level`` (density fitting, grid, tolerances; moved to GPU for cuda)."""
    from pyscf import dft

    mf = (dft.UKS if unrestricted else dft.RKS)(mol, xc=level.functional)
    if level.density_fit:
        mf = mf.density_fit()
    mf.grids.level = level.grid_level
    mf.conv_tol = level.conv_tol
    mf.max_cycle = level.max_cycles
    mf.init_guess = init_guess
    if level.device == "cuda":
        mf = mf.to_gpu()
    transform = pure_f_subspace(mol, level)
    if transform is not None:
        pure_f_orthogonalizer(mf, transform)
    return mf


def pure_f_subspace(mol, level: DftLevel) -> np.ndarray | None:
    """The 6D7F map of a Gaussian-convention molecule with f shells (see :func:`pure_f_transform`), else None."""
    return pure_f_transform(mol) if mol.cart and level.basis_convention == "gaussian" else None


def single_point(
    atomic_numbers: np.ndarray, positions_ang: np.ndarray, level: DftLevel, init_guess: str = "minao"
) -> dict:
    """Energy and forces of one molecule; always a row dict (status ok / scf_not_converged / error).

    atomic_numbers (N,), positions_ang (N, 3) Å. Keys: status, reason, method, spin, s2, scf_converged,
    cycles, num_basis, energy_ha, energy_ev, forces_ev_per_ang ((N, 3) nested list or None),
    force_rms_ev_per_ang, force_max_ev_per_ang.
    """
    z = np.asarray(atomic_numbers, dtype=np.int64)
    row = empty_row()
    problem = check_geometry(z, positions_ang, level.charge)
    if problem is not None:
        return {**row, "status": "error", "reason": f"bad input: {problem}"}
    _, spin = electron_spin(z, level.charge)
    row.update(method="UKS" if spin else "RKS", spin=spin)
    try:
        mol = build_mole(z, positions_ang, level, spin)
        row["num_basis"] = int(mol.nao)
        mf = make_scf(mol, level, unrestricted=bool(spin), init_guess=init_guess)
        energy = float(mf.kernel())
        row.update(scf_converged=bool(mf.converged), cycles=int(getattr(mf, "cycles", -1)))
        if not mf.converged and level.newton_cycles > 0:
            mf, energy = _newton_rescue(mf, level)
            row.update(
                scf_converged=bool(mf.converged),
                cycles=row["cycles"] + int(getattr(mf, "cycles", 0)),
                scf_solver="diis+newton",
            )
        if spin:
            row["s2"] = _spin_square(mf)
        transform = pure_f_subspace(mol, level)
        leak = check_in_subspace(mf, transform) if transform is not None else None
        if leak is not None:
            return {**row, "status": "error", "reason": leak}
        if not mf.converged:
            return {
                **row,
                "status": "scf_not_converged",
                "reason": f"SCF not converged in {row['cycles']} cycles (max_cycles {level.max_cycles}, "
                f"newton_cycles {level.newton_cycles}, conv_tol {level.conv_tol:g} Ha); "
                f"last energy {energy:.8f} Ha",
            }
        grad_ha_bohr = _host(mf.nuc_grad_method().kernel())
    except Exception as exc:  # PySCF raises many types (KeyError for a missing basis, RuntimeError, ...)
        return {**row, "status": "error", "reason": f"{type(exc).__name__}: {exc}"}
    forces = -grad_ha_bohr * HA_PER_BOHR_TO_EV_PER_ANG
    norms = np.linalg.norm(forces, axis=1)
    row.update(
        status="ok",
        energy_ha=energy,
        energy_ev=energy * HARTREE_TO_EV,
        forces_ev_per_ang=forces.tolist(),
        force_rms_ev_per_ang=float(np.sqrt(np.mean(norms**2))),
        force_max_ev_per_ang=float(norms.max()),
    )
    return row


def _newton_rescue(mf, level: DftLevel):
    """Second-order SCF (PySCF's ``newton()``: augmented-Hessian steps) from DIIS's last density.

    DIIS oscillates on many sampled geometries (atoms too close, near-degenerate orbitals, radicals); the
    Newton solver converges where DIIS does not, at a higher cost per cycle. Same functional, grid and
    tolerance, so a converged energy is the same SCF solution. Returns (the solver, its energy).
    """
    dm = mf.make_rdm1()
    newton = mf.newton()
    newton.max_cycle = level.newton_cycles
    energy = float(newton.kernel(dm0=dm))
    return newton, energy


def atom_energy(atomic_number: int, spin: int, level: DftLevel, init_guess: str = "minao") -> dict:
    """Isolated atom at ``level``: UKS with ``spin`` = 2S (always UKS, also for singlets, as references).
    Returns {status, reason, energy_ha, s2, cycles}."""
    try:
        mol = build_mole(np.array([atomic_number]), np.zeros((1, 3)), _neutral(level), spin)
        mf = make_scf(mol, _neutral(level), unrestricted=True, init_guess=init_guess)
        energy = float(mf.kernel())
        transform = pure_f_subspace(mol, level)
        leak = check_in_subspace(mf, transform) if transform is not None else None
    except Exception as exc:
        return {"status": "error", "reason": f"{type(exc).__name__}: {exc}", "energy_ha": math.nan}
    if leak is not None:
        return {"status": "error", "reason": leak, "energy_ha": math.nan}
    out = {"energy_ha": energy, "s2": _spin_square(mf), "cycles": int(getattr(mf, "cycles", -1))}
    if not mf.converged:
        return {
            **out,
            "status": "scf_not_converged",
            "reason": f"atom Z={atomic_number} SCF not converged",
            "energy_ha": math.nan,
        }
    return {**out, "status": "ok", "reason": ""}


def empty_row() -> dict:
    nan = math.nan
    return {
        "status": "error",
        "reason": "",
        "method": "",
        "spin": -1,
        "s2": nan,
        "scf_converged": False,
        "cycles": 0,
        "scf_solver": "diis",
        "num_basis": 0,
        "energy_ha": nan,
        "energy_ev": nan,
        "forces_ev_per_ang": None,
        "force_rms_ev_per_ang": nan,
        "force_max_ev_per_ang": nan,
    }


def _neutral(level: DftLevel) -> DftLevel:
    from dataclasses import replace

    return replace(level, charge=0)


def _spin_square(mf) -> float:
    try:
        return float(_host(mf.spin_square()[0]))
    except Exception:  # not every backend has spin_square; <S^2> is informative, not essential
        return math.nan


def _array_module(a):
    if type(a).__module__.split(".")[0] == "cupy":
        import cupy

        return cupy
    return np


def _array_module_of(mf):
    """cupy for a gpu4pyscf object, numpy otherwise."""
    return _array_module(mf.get_ovlp()) if type(mf).__module__.startswith("gpu4pyscf") else np


def _host(a) -> np.ndarray:
    """A numpy copy of a numpy or cupy array."""
    return np.asarray(a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else a, dtype=np.float64)
