"""The paired DFT selection: molecules chosen once, by mol_id, from the baseline's sample alone.

Paired means the same mol_id and the same sampling noise, nothing else. The sample stage draws molecule i of
every model sampled with the same seed, batch size and molecule count from the same noise
(:mod:`elign.stats.paired`), so for such a model the DFT stage computes the *same mol_ids* as for the
baseline, and the statistics compare molecule i with molecule i.

The choice looks only at the baseline (a pre-treatment criterion, so it cannot favour either model):
:func:`choose` runs :func:`elign.dft.select.select_molecules` on the baseline's samples, with its eligibility
(sample status evaluable; with ``dft.valid_only`` RDKit-valid; with ``dft.mlff_scored_only`` scored by the
evaluate stage's MLFF, ``mlff_status`` ok) and its size targets (drawn from the training histogram, seed =
config seed + 3000). The other models' molecules with those mol_ids are computed whatever they turned into:
an invalid molecule or a failed SCF is a row with its status, and the statistics drop that pair and count it.

The selection file (``results/dft/{dataset}/selection.parquet``): selection_index, mol_id, num_atoms (the
baseline's), target_num_atoms; schema metadata ``elign`` = provenance plus ``baseline`` and ``design`` (the
baseline's sample seed, batch size and molecule count: :data:`elign.stats.paired.DESIGN_KEYS`).

A model whose sample summary has another design (the guided baseline draws fewer molecules, so other batches
and other noise) is not paired: it gets the first k of the selection's *sizes*, each filled with an eligible
molecule of its own (:func:`elign.dft.select.pick_for_targets`), and is compared with unpaired tests.
"""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from elign.dft.select import Selection, eligible_mask, pick_for_targets, select_molecules
from elign.io.atomic import atomic_path
from elign.io.molecules import METADATA_KEY, read_tagged_parquet
from elign.io.table import MoleculeTable
from elign.stats.paired import DESIGN_KEYS

log = logging.getLogger("elign.dft")

SELECTION_SCHEMA = pa.schema(
    [
        ("selection_index", pa.int32()),
        ("mol_id", pa.int64()),
        ("num_atoms", pa.int16()),
        ("target_num_atoms", pa.int16()),
    ]
)


def mlff_scored_mask(samples: MoleculeTable, metrics: pd.DataFrame | None) -> np.ndarray:
    """(M,) bool: the evaluate stage's MLFF scored the molecule (``mlff_status`` ok in ``metrics``, by mol_id)."""
    if metrics is None or "mlff_status" not in metrics or "mol_id" not in metrics:
        raise ValueError("dft.mlff_scored_only needs the baseline's metrics table with an mlff_status column")
    scored = metrics.loc[metrics["mlff_status"] == "ok", "mol_id"].astype(np.int64).to_numpy()
    return np.isin(samples.mol_id, scored)


def choose(
    samples: MoleculeTable,
    metrics: pd.DataFrame | None,
    k: int,
    seed: int,
    valid_only: bool,
    mlff_scored_only: bool,
    histogram=None,
) -> pd.DataFrame:
    """The selection frame (module doc) of k baseline molecules."""
    extra = mlff_scored_mask(samples, metrics) if mlff_scored_only else None
    sel = select_molecules(samples, metrics, k, seed, valid_only, histogram, extra)
    return pd.DataFrame(
        {
            "selection_index": sel.selection_index.astype(np.int32),
            "mol_id": samples.mol_id[sel.index].astype(np.int64),
            "num_atoms": samples.num_atoms[sel.index].astype(np.int16),
            "target_num_atoms": sel.target_num_atoms.astype(np.int16),
        }
    )


def sample_design(summary: dict | None) -> dict | None:
    """The keys of a sample summary that fix molecule i's noise (None when there is no summary)."""
    return None if summary is None else {k: summary.get(k) for k in DESIGN_KEYS}


def write_selection(path: str | os.PathLike, frame: pd.DataFrame, meta: dict) -> None:
    table = pa.Table.from_pandas(frame, schema=SELECTION_SCHEMA, preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table.replace_schema_metadata({METADATA_KEY: json.dumps(meta).encode()}), tmp)


def read_selection(path: str | os.PathLike) -> tuple[pd.DataFrame, dict]:
    """(frame, metadata) of a selection file; a missing file or column is one clear error."""
    hint = " (rule dft_select / elign dft-select)"
    return read_tagged_parquet(path, SELECTION_SCHEMA.names, "DFT selection file", hint)


def same_noise(selection_meta: dict, model_summary: dict | None) -> tuple[bool, str]:
    """(paired?, why): whether the model was sampled with the baseline's noise (same design keys)."""
    design = selection_meta.get("design")
    mine = sample_design(model_summary)
    if not design or mine is None:
        return False, "no sample summary for the baseline or this model"
    for key in DESIGN_KEYS:
        if design.get(key) is None or design.get(key) != mine.get(key):
            return False, f"sample {key} differs from the baseline's ({mine.get(key)} vs {design.get(key)})"
    return True, "sampled with the baseline's noise"


def by_mol_id(samples: MoleculeTable, selection: pd.DataFrame, k: int) -> Selection:
    """The model's rows of the first k selected mol_ids, in selection order. A mol_id the model lacks, or of
    another size, means it was not sampled with the baseline's noise: a ValueError naming it."""
    sel = selection.iloc[: int(k)]
    row_of = {int(m): i for i, m in enumerate(samples.mol_id)}
    index = []
    for mol_id, n in zip(sel["mol_id"], sel["num_atoms"]):
        i = row_of.get(int(mol_id))
        if i is None:
            raise ValueError(f"mol_id {int(mol_id)} of the DFT selection is not among these samples")
        if int(samples.num_atoms[i]) != int(n):
            raise ValueError(
                f"mol_id {int(mol_id)} has {int(samples.num_atoms[i])} atoms here but {int(n)} in the baseline: "
                "not sampled with the baseline's noise"
            )
        index.append(i)
    return Selection(
        np.array(index, dtype=np.int64),
        sel["target_num_atoms"].to_numpy(np.int64),
        sel["selection_index"].to_numpy(np.int64),
    )


def by_size(
    samples: MoleculeTable, metrics: pd.DataFrame | None, selection: pd.DataFrame, k: int, seed: int, valid_only: bool
) -> Selection:
    """Unpaired: for the first k selected molecules' sizes, an eligible molecule of this model each (nearest
    size; :func:`elign.dft.select.pick_for_targets`)."""
    targets = selection["num_atoms"].to_numpy(np.int64)[: int(k)]
    return pick_for_targets(samples.num_atoms, eligible_mask(samples, metrics, valid_only), targets, seed)
