"""Batched geometry relaxation with any MLFF backend: FIRE, a fixed step cap and a force tolerance.

FIRE (fast inertial relaxation engine; Bitzek et al., Phys. Rev. Lett. 97, 170201, 2006) as ASE implements
it (``ase.optimize.FIRE``, ASE 3.29, without ``downhill_check``), applied to B molecules at once: each
molecule keeps its own velocity, time step, mixing factor and counter, and leaves the batch when it has
converged (the largest atomic force norm below ``fmax_ev_per_ang``, ASE's criterion) or failed. The update
of one molecule only reads that molecule's forces, so a molecule relaxes the same alone or in a batch, and a
rigid rotation or translation of the input rotates or translates its whole path (FIRE uses only dot
products and norms; the MLFF is invariant). Nothing is random: the same input gives the same output.

Per step, with F the forces of one molecule (all its atoms as one 3N vector) and v its velocity::

    if v has been set:                    # every step but the first
        if F.v > 0:   v = (1 - a) v + a |v| F / |F|
                      and once more than n_min such steps in a row: dt = min(dt f_inc, dt_max), a *= f_alpha
        else:         v = 0;  a = alpha_start;  dt *= f_dec;  (restart the counter)
    v += dt F;  dr = dt v, scaled down to |dr| = max_step_ang if longer;  x += dr

The defaults are ASE's FIRE defaults (dt 0.1, max step 0.2 Å, dt_max 1.0, n_min 5, f_inc 1.1, f_dec 0.5,
alpha 0.1, f_alpha 0.99) and ASE's default convergence (fmax 0.05 eV/Å, which is also GFN2-xTB's "normal"
gradient threshold, 1e-3 Eh/bohr = 0.051 eV/Å). ``max_steps`` caps the work; a molecule still above the
tolerance then keeps its last geometry with ``converged = False``.

A molecule the backend cannot score (an element it lacks, a NaN, a model error) at any step gets the
backend's status and a reason naming the step; its energies and positions are NaN. Never a made-up number.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from elign.mlff.base import STATUS_OK, MLFFBackend

# CODATA 2018 (NIST): e * N_A = 96485.33212 J/mol per volt, and the thermochemical calorie is 4.184 J
EV_TO_KCAL_PER_MOL = 96485.33212 / 4184.0  # = 23.0605478...


@dataclass(frozen=True)
class FireSettings:
    """FIRE parameters and stopping rule (defaults: ASE 3.29 ``FIRE`` and ``Optimizer.run(fmax=0.05)``).

    max_steps: optimizer steps at most (force evaluations = steps + 1); 100, the evaluate stage's default,
    chosen from a measurement of the cost (``elign.config.RelaxConfig``, ``bench/relax.py``). fmax_ev_per_ang: converged
    when max_i |F_i| < this. max_step_ang: the largest displacement of a molecule per step (the norm of its
    whole 3N step, as in ASE). dt / dt_max: initial and largest time step (ASE units, unit masses).
    n_min: steps downhill before dt grows. f_inc / f_dec: dt growth / cut. alpha_start / f_alpha: the
    velocity-force mixing factor and its decay.
    """

    max_steps: int = 100
    fmax_ev_per_ang: float = 0.05
    max_step_ang: float = 0.2
    dt: float = 0.1
    dt_max: float = 1.0
    n_min: int = 5
    f_inc: float = 1.1
    f_dec: float = 0.5
    alpha_start: float = 0.1
    f_alpha: float = 0.99

    def __post_init__(self) -> None:
        if self.max_steps < 0 or self.n_min < 0:
            raise ValueError(f"max_steps and n_min must be >= 0, got {self.max_steps}, {self.n_min}")
        positive = {
            "fmax_ev_per_ang": self.fmax_ev_per_ang,
            "max_step_ang": self.max_step_ang,
            "dt": self.dt,
            "dt_max": self.dt_max,
            "f_inc": self.f_inc,
            "f_dec": self.f_dec,
            "alpha_start": self.alpha_start,
            "f_alpha": self.f_alpha,
        }
        bad = {k: v for k, v in positive.items() if not (np.isfinite(v) and v > 0)}
        if bad:
            raise ValueError(f"FIRE settings must be finite and > 0: {bad}")


@dataclass
class RelaxResult:
    """B molecules padded to N atoms, after relaxation.

    energy_initial_ev / energy_final_ev: (B,) eV at the input and at the last geometry (NaN on failure).
    positions_ang: (B, N, 3) Å, the last geometry (0 at padding, NaN on failure). steps: (B,) int optimizer
    steps taken. converged: (B,) bool, max |F_i| < fmax at the last geometry. fmax_final_ev_per_ang: (B,)
    eV/Å at the last geometry (NaN on failure). status: (B,) "ok" or the backend's failure class;
    reason: (B,) str, "" when ok.
    """

    energy_initial_ev: np.ndarray
    energy_final_ev: np.ndarray
    positions_ang: np.ndarray
    steps: np.ndarray
    converged: np.ndarray
    fmax_final_ev_per_ang: np.ndarray
    status: np.ndarray
    reason: np.ndarray

    @property
    def relaxation_energy_kcal_mol(self) -> np.ndarray:
        """(B,) E(input) - E(relaxed) in kcal/mol (NaN on failure)."""
        return (self.energy_initial_ev - self.energy_final_ev) * EV_TO_KCAL_PER_MOL


@dataclass
class _Fire:
    """Optimizer state of B molecules (float64, numpy)."""

    velocity: np.ndarray  # (B, N, 3)
    dt: np.ndarray  # (B,)
    alpha: np.ndarray  # (B,)
    downhill: np.ndarray  # (B,) int: steps with F.v > 0 in a row
    started: np.ndarray  # (B,) bool: the velocity has been set (ASE: vel is not None)

    @classmethod
    def start(cls, shape: tuple[int, int], s: FireSettings) -> _Fire:
        b = shape[0]
        return cls(
            np.zeros((*shape, 3)), np.full(b, s.dt), np.full(b, s.alpha_start), np.zeros(b, np.int64), np.zeros(b, bool)
        )

    def step(self, idx: np.ndarray, forces: np.ndarray, s: FireSettings) -> np.ndarray:
        """Update molecules ``idx`` (M,) with their forces (M, N, 3), eV/Å; returns their displacements, Å."""
        v, dt, alpha, n = self.velocity[idx], self.dt[idx], self.alpha[idx], self.downhill[idx]
        power = (forces * v).sum(axis=(1, 2))
        up = self.started[idx] & (power > 0.0)
        down = self.started[idx] & ~(power > 0.0)
        f_norm = np.sqrt((forces**2).sum(axis=(1, 2)))
        v_norm = np.sqrt((v**2).sum(axis=(1, 2)))
        with np.errstate(invalid="ignore", divide="ignore"):
            mixed = (1.0 - alpha)[:, None, None] * v + (alpha * v_norm / f_norm)[:, None, None] * forces
        v = np.where(up[:, None, None], mixed, v)
        grow = up & (n > s.n_min)
        dt = np.where(grow, np.minimum(dt * s.f_inc, s.dt_max), dt)
        alpha = np.where(grow, alpha * s.f_alpha, alpha)
        n = np.where(up, n + 1, n)
        v = np.where(down[:, None, None], 0.0, v)
        alpha = np.where(down, s.alpha_start, alpha)
        dt = np.where(down, dt * s.f_dec, dt)
        n = np.where(down, 0, n)
        v = v + dt[:, None, None] * forces
        dr = dt[:, None, None] * v
        norm = np.sqrt((dr**2).sum(axis=(1, 2)))
        dr *= np.where(norm > s.max_step_ang, s.max_step_ang / np.maximum(norm, 1e-300), 1.0)[:, None, None]
        self.velocity[idx], self.dt[idx], self.alpha[idx], self.downhill[idx] = v, dt, alpha, n
        self.started[idx] = True
        return dr


def relax(
    backend: MLFFBackend, atomic_numbers, positions_ang, settings: FireSettings = FireSettings(), charge=None
) -> RelaxResult:
    """Relax a padded batch with FIRE on ``backend``'s forces.

    atomic_numbers: (B, N) int, 0 = padding (anywhere in the row); positions_ang: (B, N, 3) Å; charge: (B,)
    int or None. Each step scores only the molecules still running, ``backend.batch_size`` at a time.
    """
    z = np.asarray(atomic_numbers, dtype=np.int64)
    x = np.array(positions_ang, dtype=np.float64)
    q = np.zeros(len(z), np.int64) if charge is None else np.asarray(charge, dtype=np.int64).reshape(-1)
    b = len(z)
    x[z == 0] = 0.0
    out = RelaxResult(
        np.full(b, np.nan),
        np.full(b, np.nan),
        x,
        np.zeros(b, np.int64),
        np.zeros(b, bool),
        np.full(b, np.nan),
        np.full(b, STATUS_OK, dtype=object),
        np.full(b, "", dtype=object),
    )
    fire = _Fire.start(z.shape, settings)
    running = np.ones(b, bool)
    for k in range(settings.max_steps + 1):
        idx = np.flatnonzero(running)
        if len(idx) == 0:
            break
        res = backend.evaluate(z[idx], x[idx], q[idx])
        failed = res.status != STATUS_OK
        for i, st, why in zip(idx[failed], res.status[failed], res.reason[failed]):
            out.status[i], out.reason[i] = st, f"step {k}: {why}"
        running[idx[failed]] = False
        idx, energy, forces = idx[~failed], res.energy_ev[~failed], res.forces_ev_per_ang[~failed]
        if k == 0:
            out.energy_initial_ev[idx] = energy
        out.energy_final_ev[idx] = energy
        fmax = np.sqrt((forces**2).sum(axis=-1)).max(axis=1, initial=0.0)
        out.fmax_final_ev_per_ang[idx] = fmax
        done = fmax < settings.fmax_ev_per_ang
        out.converged[idx[done]] = True
        running[idx[done]] = False
        if k == settings.max_steps:
            break
        move = idx[~done]
        x[move] += fire.step(move, forces[~done], settings)
        x[z == 0] = 0.0
        out.steps[move] += 1
    bad = out.status != STATUS_OK
    for name in ("energy_initial_ev", "energy_final_ev", "fmax_final_ev_per_ang"):
        getattr(out, name)[bad] = np.nan
    out.positions_ang[bad] = np.nan
    out.converged[bad] = False
    return out
