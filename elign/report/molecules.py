"""A grid of example molecules of one model: RDKit 2D depictions of its samples, valid ones first.

Bonds come from EDM's distance rule (:func:`elign.metrics.chemistry.to_rdkit_mol`, as in the SDF export);
an invalid molecule is drawn unsanitized, labelled with its reason. Without the samples file, the valid
SMILES of the metrics file are drawn instead; with neither, the PNG says so.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from elign.io.atomic import atomic_path

log = logging.getLogger("elign.report")
PER_ROW = 4
CELL_PX = 260


def pick_examples(num_molecules: int, metrics: pd.DataFrame | None, n: int) -> list[int]:
    """Row indices of up to ``n`` molecules: valid ones first, each group in file order.

    The metrics rows are matched to the samples by position (the evaluate stage keeps the order); when the
    lengths differ the validity is unknown and the first ``n`` rows are taken.
    """
    idx = np.arange(num_molecules)
    if metrics is not None and len(metrics) == num_molecules and "valid" in metrics:
        valid = metrics["valid"].fillna(False).astype(bool).to_numpy()
        idx = np.concatenate([idx[valid], idx[~valid]])
    return idx[:n].tolist()


def _label(metrics: pd.DataFrame | None, i: int, num_atoms: int, drawn) -> str:
    """Heavy-atom SMILES of a valid molecule; 'invalid (reason)' otherwise; the atom count when unknown."""
    from rdkit import Chem

    if metrics is None or i >= len(metrics) or "valid" not in metrics:
        return f"{num_atoms} atoms"
    row = metrics.iloc[i]
    if bool(row.get("valid")):
        try:
            smiles = Chem.MolToSmiles(drawn)
        except Exception:
            smiles = str(row.get("smiles") or "")
        return smiles if len(smiles) <= 32 else smiles[:30] + "…"
    return f"invalid ({row.get('invalid_reason') or row.get('sample_status') or '?'}), {num_atoms} atoms"


def _depiction(mol):
    """A 2D copy of ``mol`` without explicit hydrogens (kept when they cannot be removed)."""
    from rdkit import Chem
    from rdkit.Chem import rdDepictor

    from elign.metrics.chemistry import quiet_rdkit

    with quiet_rdkit():
        try:
            flat = Chem.RemoveHs(mol, sanitize=not mol.HasProp("invalid_reason"))
        except Exception:
            flat = Chem.Mol(mol)
        flat.RemoveAllConformers()
        rdDepictor.Compute2DCoords(flat)
    return flat


def sample_mols(samples, metrics: pd.DataFrame | None, n: int) -> tuple[list, list[str]]:
    """(2D molecules, legends) of up to ``n`` examples from a samples :class:`MoleculeTable`."""
    from elign.metrics.chemistry import to_rdkit_mol

    mols, legends = [], []
    for i in pick_examples(len(samples), metrics, n):
        rec = samples.molecule(i)
        if len(rec.atomic_numbers) == 0 or not np.isfinite(rec.positions_ang).all():
            continue
        try:
            drawn = _depiction(to_rdkit_mol(rec.atomic_numbers, rec.positions_ang))
        except Exception as exc:  # one odd molecule must not sink the grid
            log.warning("molecule %d not drawn: %s", i, exc)
            continue
        mols.append(drawn)
        legends.append(_label(metrics, i, len(rec.atomic_numbers), drawn))
    return mols, legends


def smiles_mols(metrics: pd.DataFrame, n: int) -> tuple[list, list[str]]:
    """(2D molecules, legends) from the valid SMILES of a metrics frame (no samples file)."""
    from rdkit import Chem

    mols, legends = [], []
    if "valid" not in metrics or "smiles" not in metrics:
        return mols, legends
    for smiles in metrics.loc[metrics["valid"].fillna(False).astype(bool), "smiles"].head(n):
        mol = Chem.MolFromSmiles(str(smiles))
        if mol is not None:
            mols.append(_depiction(mol))
            legends.append(str(smiles))
    return mols, legends


def draw_grid(mols: list, legends: list[str], path: str | Path) -> bool:
    """Write the grid PNG; False (nothing written) when RDKit cannot draw it."""
    from rdkit.Chem import Draw

    if not mols:
        return False
    try:
        image = Draw.MolsToGridImage(
            mols, molsPerRow=min(PER_ROW, len(mols)), subImgSize=(CELL_PX, CELL_PX), legends=legends, returnPNG=False
        )
    except Exception as exc:
        log.warning("RDKit could not draw the grid: %s", exc)
        return False
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return True


def example_grid(name: str, samples, metrics: pd.DataFrame | None, n: int, path: str | Path, dpi: int) -> str:
    """The grid PNG of one model; returns a one-line description (what was drawn, or why nothing was)."""
    from elign.report.plots import figure, placeholder

    if n <= 0:
        why = "report.example_molecules is 0"
        mols, legends = [], []
    elif samples is not None:
        mols, legends = sample_mols(samples, metrics, n)
        why = "no drawable molecules among the samples"
    elif metrics is not None:
        mols, legends = smiles_mols(metrics, n)
        why = "no samples file and no valid SMILES in the metrics"
    else:
        mols, legends, why = [], [], "no samples and no metrics input"
    if draw_grid(mols, legends, path):
        return f"{name}: {len(mols)} molecules drawn, valid ones first"
    with figure(path, dpi) as axes:
        axes[0, 0].set_title(f"Example molecules: {name}")
        placeholder(axes[0, 0], why)
    return f"{name}: {why}"
