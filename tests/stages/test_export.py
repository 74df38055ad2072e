"""XYZ and SDF export round trips, read back with RDKit: elements and positions as sampled."""

from __future__ import annotations

import numpy as np
import pytest
from rdkit import Chem

from elign.io.table import MoleculeTable
from elign.stages.export import write_sdf, write_xyz

METHANE = (
    [6, 1, 1, 1, 1],
    [
        [0, 0, 0],
        [0.6291, 0.6291, 0.6291],
        [-0.6291, -0.6291, 0.6291],
        [-0.6291, 0.6291, -0.6291],
        [0.6291, -0.6291, -0.6291],
    ],
)
WATER = ([8, 1, 1], [[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]])
FIVE_BONDED_C = ([6, 1, 1, 1, 1, 1], [[0, 0, 0], [1.0, 0, 0], [-1.0, 0, 0], [0, 1.0, 0], [0, -1.0, 0], [0, 0, 1.0]])
BROKEN = ([7, 7], [[np.nan, 0, 0], [1.0, 0, 0]])


@pytest.fixture
def table() -> MoleculeTable:
    mols = [METHANE, WATER, FIVE_BONDED_C, BROKEN]
    rng = np.random.default_rng(0)
    z = np.concatenate([m[0] for m in mols])
    pos = np.concatenate([np.asarray(m[1], dtype=np.float64) for m in mols])
    pos = (pos + rng.normal(scale=1e-3, size=pos.shape)).astype(np.float32)  # "sampled": many digits
    status = np.array(["ok", "ok", "bad_charge", "nan"], dtype=object)
    reason = np.array(["", "", 'charge "7" on a carbon', "non-finite values"], dtype=object)
    return MoleculeTable(
        np.array([10, 11, 12, 13]),
        [len(m[0]) for m in mols],
        z,
        pos,
        np.full(4, None, dtype=object),
        {"status": status, "reason": reason},
    )


def _frames(text: str) -> list[str]:
    lines, frames, i = text.splitlines(), [], 0
    while i < len(lines):
        n = int(lines[i])
        frames.append("\n".join(lines[i : i + n + 2]) + "\n")
        i += n + 2
    return frames


def test_xyz_round_trip_is_exact(tmp_path, table):
    path = tmp_path / "out" / "samples.xyz"
    write_xyz(path, table)
    assert [p.name for p in path.parent.iterdir()] == ["samples.xyz"]  # no temp file left
    frames = _frames(path.read_text())
    assert len(frames) == 4
    assert frames[0].splitlines()[1] == "mol_id=10 status=ok"
    assert frames[2].splitlines()[1] == "mol_id=12 status=bad_charge reason=\"charge '7' on a carbon\""
    o = table.offsets
    for k in range(3):  # RDKit cannot parse 'nan' coordinates; the fourth frame is checked as text
        mol = Chem.MolFromXYZBlock(frames[k])
        assert [a.GetAtomicNum() for a in mol.GetAtoms()] == table.atomic_numbers[o[k] : o[k + 1]].tolist()
        pos = mol.GetConformer().GetPositions().astype(np.float32)
        assert np.array_equal(pos, table.positions_ang[o[k] : o[k + 1]])  # float32-exact
    assert frames[3].splitlines()[2].split()[:2] == ["N", "nan"]


def _read_sdf(path):
    return list(Chem.SDMolSupplier(str(path), sanitize=False, removeHs=False))


@pytest.mark.parametrize("v3000,tol", [(False, 5.01e-5), (True, 5.01e-7)])
def test_sdf_round_trip(tmp_path, table, v3000, tol):
    path = tmp_path / "samples.sdf"
    write_sdf(path, table, v3000=v3000)
    mols = _read_sdf(path)
    assert len(mols) == 4 and all(m is not None for m in mols)
    o = table.offsets
    for k, mol in enumerate(mols):
        assert mol.GetProp("mol_id") == str(table.mol_id[k]) and mol.GetProp("_Name") == str(table.mol_id[k])
        assert mol.GetProp("status") == table.columns["status"][k]
        assert [a.GetAtomicNum() for a in mol.GetAtoms()] == table.atomic_numbers[o[k] : o[k + 1]].tolist()
        want = table.positions_ang[o[k] : o[k + 1]].astype(np.float64)
        got = mol.GetConformer().GetPositions()
        finite = np.isfinite(want).all(axis=1)
        assert np.abs(got[finite] - want[finite]).max() <= tol
    # bonds by EDM's distance rule; the valid ones sanitize
    assert mols[0].GetNumBonds() == 4 and mols[1].GetNumBonds() == 2
    for m in mols[:2]:
        Chem.SanitizeMol(m)
    assert Chem.MolToSmiles(Chem.RemoveHs(mols[0])) == "C" and Chem.MolToSmiles(Chem.RemoveHs(mols[1])) == "O"
    # a five-bonded carbon is written unsanitized, with why
    assert mols[2].GetNumBonds() == 5 and mols[2].GetProp("invalid_reason") == "valence"
    assert mols[2].GetProp("reason") == "charge '7' on a carbon"
    # non-finite positions: kept as a record (record k = molecule k), no bonds, flagged
    assert mols[3].GetProp("nonfinite_positions") == "1" and mols[3].GetNumBonds() == 0
    assert not mols[0].HasProp("nonfinite_positions")


def test_sampled_table_exports(tmp_path):
    import torch

    from elign.diffusion.factory import build_model
    from elign.diffusion.sampler import sample_molecules
    from elign.model.presets import make_model_config

    torch.manual_seed(0)
    model = build_model(make_model_config("small_cpu", hidden_nf=8, n_layers=1, diffusion={"timesteps": 10}))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        res = sample_molecules(model, [3, 6, 4], batch_size=2, seed=1)
    finally:
        torch.set_num_threads(threads)
    write_xyz(tmp_path / "s.xyz", res.table)
    write_sdf(tmp_path / "s.sdf", res.table)
    frames = _frames((tmp_path / "s.xyz").read_text())
    o = res.table.offsets
    for k, frame in enumerate(frames):
        pos = Chem.MolFromXYZBlock(frame).GetConformer().GetPositions().astype(np.float32)
        assert np.array_equal(pos, res.table.positions_ang[o[k] : o[k + 1]])
    mols = _read_sdf(tmp_path / "s.sdf")
    assert [m.GetProp("status") for m in mols] == res.table.columns["status"].tolist()
    assert [m.GetNumAtoms() for m in mols] == [3, 6, 4]
