"""GEOM-Drugs source: a small drugs_crude.msgpack fixture in the real layout (a stream of SMILES maps)."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from elign.config import DataConfig
from elign.data.errors import ErrorPolicy
from elign.data.geom import load_geom_drugs
from elign.data.registry import get_source
from elign.io.errors import DataFormatError

# Maps of 1-3 SMILES each, like GEOM's file (there: ~1000 per map).
MAPS = [["CCO", "c1ccccc1"], ["CC(=O)O"], ["CCN", "CCCl", "O=C=O"], ["C[NH3+]", "CC#N"], ["CS", "COC"]]
SMILES = [s for group in MAPS for s in group]
N_CONFS = {"CCN": 5, "O=C=O": 1}  # the others have 35


def _molecule(rng: np.random.Generator, n_conf: int, charge: int) -> dict:
    n_atoms = int(rng.integers(3, 9))
    z = rng.choice([1, 6, 7, 8, 16, 17], size=n_atoms)
    conformers = []
    for j in range(n_conf):
        xyz = rng.normal(scale=2.0, size=(n_atoms, 3))
        conformers.append(
            {
                "geom_id": 1000 + j,
                "totalenergy": float(-100 + rng.normal()),
                "relativeenergy": 0.0,
                "boltzmannweight": float(rng.random()),
                "degeneracy": 1,
                "set": 1,
                "xyz": [[int(zz), *map(float, row)] for zz, row in zip(z, xyz)],
            }
        )
    return {
        "conformers": conformers,
        "charge": charge,
        "uniqueconfs": n_conf,
        "totalconfs": n_conf,
        "lowestenergy": min(c["totalenergy"] for c in conformers),
    }


@pytest.fixture(scope="module")
def molecules() -> dict[str, dict]:
    rng = np.random.default_rng(7)
    return {s: _molecule(rng, N_CONFS.get(s, 35), charge=1 if "+" in s else 0) for s in SMILES}


def write_geom(path, molecules: dict[str, dict]) -> None:
    with open(path, "wb") as fh:
        for group in MAPS:
            fh.write(msgpack.packb({s: molecules[s] for s in group if s in molecules}))


def data_cfg(path, **kw) -> DataConfig:
    return DataConfig(source="geom_drugs", geom_drugs={"path": str(path), **kw})


@pytest.fixture(scope="module")
def geom_file(tmp_path_factory, molecules):
    path = tmp_path_factory.mktemp("geom") / "drugs_crude.msgpack"
    write_geom(path, molecules)
    return path


@pytest.fixture(scope="module")
def result(geom_file):
    return load_geom_drugs(data_cfg(geom_file, valid_fraction=0.2, test_fraction=0.1), ErrorPolicy())


def test_registered_under_geom_drugs():
    assert get_source("geom_drugs") is load_geom_drugs


def test_keeps_lowest_energy_conformers_in_order(result, molecules):
    t = result.table
    mol_index = t.columns["molecule_index"]
    expected_rows = sum(min(30, N_CONFS.get(s, 35)) for s in SMILES)
    assert len(t) == expected_rows
    np.testing.assert_array_equal(t.mol_id, np.arange(expected_rows))  # running conformer index, as EDM
    for i, smiles in enumerate(SMILES):
        rows = np.flatnonzero(mol_index == i)
        energies = np.array([c["totalenergy"] for c in molecules[smiles]["conformers"]])
        order = np.argsort(energies)[:30]
        assert len(rows) == min(30, len(energies))
        np.testing.assert_array_equal(t.columns["conformer_index"][rows], order)
        np.testing.assert_array_equal(t.columns["conformer_rank"][rows], np.arange(len(rows)))
        np.testing.assert_array_equal(t.columns["total_energy_ha"][rows], energies[order])
        assert np.all(np.diff(t.columns["total_energy_ha"][rows]) >= 0)
        assert set(t.smiles[rows]) == {smiles}


def test_coordinates_and_metadata_exact(result, molecules):
    t = result.table
    for row in (0, 31, len(t) - 1):
        rec = t.molecule(row)
        smiles = SMILES[int(rec.props["molecule_index"])]
        conf = molecules[smiles]["conformers"][int(rec.props["conformer_index"])]
        xyz = np.array(conf["xyz"])
        np.testing.assert_array_equal(rec.atomic_numbers, xyz[:, 0].astype(int))
        np.testing.assert_array_equal(rec.positions_ang, xyz[:, 1:].astype(np.float32))
        assert rec.props["boltzmann_weight"] == conf["boltzmannweight"]
        assert rec.props["geom_id"] == conf["geom_id"]
        assert rec.props["charge_e"] == molecules[smiles]["charge"]


def test_split_is_by_molecule(result):
    mol_index = result.table.columns["molecule_index"]
    per_molecule = {}
    for i, label in zip(mol_index, result.split):
        per_molecule.setdefault(int(i), set()).add(label)
    assert all(len(labels) == 1 for labels in per_molecule.values())
    counts = {s: sum(labels == {s} for labels in per_molecule.values()) for s in ("train", "valid", "test")}
    n = len(SMILES)  # 11 molecules: valid int(11 * 0.2) = 2, test int(11 * 0.1) = 1
    assert counts == {"train": n - 3, "valid": 2, "test": 1}
    assert result.info["molecules_per_split"] == counts
    assert result.info["molecules_in_file"] == n and result.info["split_seed"] == 0


def test_split_is_deterministic(geom_file, result):
    again = load_geom_drugs(data_cfg(geom_file, valid_fraction=0.2, test_fraction=0.1), ErrorPolicy())
    np.testing.assert_array_equal(again.split, result.split)


def test_conformers_per_molecule_setting(geom_file):
    out = load_geom_drugs(data_cfg(geom_file, conformers_per_molecule=2), ErrorPolicy())
    counts = np.bincount(out.table.columns["molecule_index"])
    assert counts.tolist() == [min(2, N_CONFS.get(s, 35)) for s in SMILES]


def _corrupt(molecules, smiles, how):
    mols = {s: {**m, "conformers": [dict(c) for c in m["conformers"]]} for s, m in molecules.items()}
    confs = mols[smiles]["conformers"]
    lowest = int(np.argmin([c["totalenergy"] for c in confs]))
    if how == "nan":
        confs[lowest]["xyz"] = [list(r) for r in confs[lowest]["xyz"]]
        confs[lowest]["xyz"][1][2] = float("nan")
    elif how == "missing_xyz":
        del confs[lowest]["xyz"]
    elif how == "bad_z":
        confs[lowest]["xyz"] = [list(r) for r in confs[lowest]["xyz"]]
        confs[lowest]["xyz"][2][0] = 0
    elif how == "short_row":
        confs[lowest]["xyz"] = [list(r) for r in confs[lowest]["xyz"]]
        confs[lowest]["xyz"][0] = confs[lowest]["xyz"][0][:3]
    return mols, lowest


@pytest.mark.parametrize(
    "how, kind, text",
    [
        ("nan", "nan_coordinate", "non-finite coordinate"),
        ("missing_xyz", "missing_xyz", "no 'xyz'"),
        ("short_row", "malformed_atom_row", "xyz row 0"),
        ("bad_z", "bad_atomic_number", "xyz row 2 has atomic number 0"),
    ],
)
def test_bad_conformer_raise_or_skip(tmp_path, molecules, how, kind, text):
    mols, lowest = _corrupt(molecules, "CC(=O)O", how)
    path = tmp_path / "drugs_crude.msgpack"
    write_geom(path, mols)
    with pytest.raises(DataFormatError) as exc:
        load_geom_drugs(data_cfg(path), ErrorPolicy("raise"))
    msg = str(exc.value)
    assert str(path) in msg and "'CC(=O)O'" in msg and f"conformers[{lowest}]" in msg and text in msg

    policy = ErrorPolicy("skip")
    out = load_geom_drugs(data_cfg(path), policy)
    assert policy.counts == {kind: 1}
    rows = np.flatnonzero(out.table.columns["molecule_index"] == SMILES.index("CC(=O)O"))
    assert len(rows) == 30  # the next-lowest valid conformer fills the place
    assert lowest not in out.table.columns["conformer_index"][rows]
    energies = sorted(c["totalenergy"] for i, c in enumerate(mols["CC(=O)O"]["conformers"]) if i != lowest)
    np.testing.assert_array_equal(out.table.columns["total_energy_ha"][rows], energies[:30])


def test_missing_energy_is_a_bad_record(tmp_path, molecules):
    mols, lowest = _corrupt(molecules, "CCO", "none")
    del mols["CCO"]["conformers"][3]["totalenergy"]
    path = tmp_path / "drugs_crude.msgpack"
    write_geom(path, mols)
    with pytest.raises(DataFormatError, match=r"'CCO' conformers\[3\]: missing or non-numeric totalenergy"):
        load_geom_drugs(data_cfg(path), ErrorPolicy())
    policy = ErrorPolicy("skip")
    out = load_geom_drugs(data_cfg(path), policy)
    assert policy.counts == {"bad_energy": 1}
    assert 3 not in out.table.columns["conformer_index"][out.table.columns["molecule_index"] == 0]


def test_missing_file_names_path_and_download(tmp_path):
    path = tmp_path / "nowhere" / "drugs_crude.msgpack"
    with pytest.raises(FileNotFoundError) as exc:
        load_geom_drugs(data_cfg(path), ErrorPolicy())
    msg = str(exc.value)
    for part in (str(path), "10.7910/DVN/JNGTDF", "4360331", "drugs_crude.msgpack.tar.gz", "7778e84c"):
        assert part in msg


def test_truncated_file(tmp_path, geom_file):
    path = tmp_path / "drugs_crude.msgpack"
    data = geom_file.read_bytes()
    path.write_bytes(data[: len(data) - 50])
    with pytest.raises(DataFormatError, match="truncated") as exc:
        load_geom_drugs(data_cfg(path), ErrorPolicy("skip"))
    assert str(path) in str(exc.value)


def test_not_msgpack(tmp_path):
    path = tmp_path / "drugs_crude.msgpack"
    path.write_text("this is a text file, not msgpack\n")
    with pytest.raises(DataFormatError, match="not a msgpack map") as exc:
        load_geom_drugs(data_cfg(path), ErrorPolicy())
    assert str(path) in str(exc.value)


def test_empty_file(tmp_path):
    path = tmp_path / "drugs_crude.msgpack"
    path.write_bytes(b"")
    with pytest.raises(DataFormatError, match="no molecules"):
        load_geom_drugs(data_cfg(path), ErrorPolicy())
