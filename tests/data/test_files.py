"""The ``files`` source: SDF, XYZ, extended XYZ and Parquet inputs written in tmp_path."""

from __future__ import annotations

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

from elign.config import DataConfig
from elign.data.errors import ErrorPolicy
from elign.data.files import load_files
from elign.data.registry import get_source
from elign.data.split import random_split_labels
from elign.io.errors import DataFormatError
from elign.io.molecules import write_molecules
from elign.io.table import MoleculeTable

SDF_SMILES = ["CCO", "Oc1ccccc1", "CC(=O)N", "C[C@H](N)C(=O)O"]
SDF_SPLITS = ["train", "valid", "test", "train"]


def cfg(paths, **kw) -> DataConfig:
    return DataConfig(source="files", files={"paths": [str(p) for p in paths], **kw})


def embedded(smiles: str, seed: int) -> Chem.Mol:
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    assert AllChem.EmbedMolecule(mol, randomSeed=seed) == 0
    return mol


@pytest.fixture(scope="module")
def sdf_file(tmp_path_factory):
    """(path, molecules as written) for four 3D molecules with name, split and energy properties."""
    path = tmp_path_factory.mktemp("sdf") / "mols.sdf"
    mols = []
    with Chem.SDWriter(str(path)) as writer:
        for i, (smiles, split) in enumerate(zip(SDF_SMILES, SDF_SPLITS)):
            mol = embedded(smiles, seed=11 + i)
            mol.SetProp("_Name", f"mol-{i}")
            mol.SetProp("split", split)
            mol.SetProp("energy_ha", str(-10.5 - i))
            writer.write(mol)
            mols.append(mol)
    return path, mols


def frame_text(symbols, xyz, comment="") -> str:
    lines = [str(len(symbols)), comment]
    lines += [f"{s} {float(x)!r} {float(y)!r} {float(z)!r}" for s, (x, y, z) in zip(symbols, xyz)]
    return "\n".join(lines) + "\n"


def random_frames(n_frames: int, seed: int = 3):
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n_frames):
        n = int(rng.integers(2, 7))
        frames.append((rng.choice(["C", "H", "O", "N", "6", "1"], size=n).tolist(), rng.normal(size=(n, 3)) * 3))
    return frames


def to_z(symbols) -> list[int]:
    return [int(s) if s.isdigit() else Chem.GetPeriodicTable().GetAtomicNumber(s) for s in symbols]


def test_registered_under_files():
    assert get_source("files") is load_files


# -------------------------------------------------------------------------------------------- SDF
def test_sdf_atoms_coordinates_names_and_smiles(sdf_file):
    path, mols = sdf_file
    out = load_files(cfg([path]), ErrorPolicy())
    t = out.table
    assert len(t) == len(mols)
    np.testing.assert_array_equal(t.mol_id, np.arange(len(mols)))
    for i, mol in enumerate(mols):
        rec = t.molecule(i)
        np.testing.assert_array_equal(rec.atomic_numbers, [a.GetAtomicNum() for a in mol.GetAtoms()])
        assert (rec.atomic_numbers == 1).sum() == mol.GetNumAtoms() - mol.GetNumHeavyAtoms()  # explicit H kept
        written = np.round(mol.GetConformer().GetPositions(), 4)  # the SD writer keeps 4 decimals
        np.testing.assert_allclose(rec.positions_ang, written, rtol=0, atol=2e-6)
        assert rec.smiles == Chem.MolToSmiles(Chem.MolFromSmiles(SDF_SMILES[i]))
        assert rec.props["name"] == f"mol-{i}"
        assert rec.props["record"] == i + 1
        assert rec.props["energy_ha"] == -10.5 - i
        assert rec.props["source_file"] == str(path)
    assert t.columns["energy_ha"].dtype == np.float64


def test_sdf_split_column_honoured(sdf_file):
    path, _ = sdf_file
    out = load_files(cfg([path], split_column="split"), ErrorPolicy())
    assert out.split.tolist() == SDF_SPLITS
    assert "split" not in out.table.columns
    assert out.info["molecules_per_split"] == {"train": 2, "valid": 1, "test": 1}


def test_sdf_bad_split_value_names_record(tmp_path, sdf_file):
    path = tmp_path / "bad_split.sdf"
    path.write_text(sdf_file[0].read_text().replace("valid", "validation"))
    with pytest.raises(DataFormatError) as exc:
        load_files(cfg([path], split_column="split"), ErrorPolicy("skip"))
    msg = str(exc.value)
    assert str(path) in msg and "record 2" in msg and "'validation'" in msg and "train, valid, test" in msg


def test_missing_split_column(sdf_file):
    with pytest.raises(DataFormatError, match="split_column 'fold' not found"):
        load_files(cfg([sdf_file[0]], split_column="fold"), ErrorPolicy())


def _corrupt_second_sdf_record(text: str) -> str:
    records = text.split("$$$$\n")
    lines = records[1].splitlines()
    lines[3] = "  xx  yy  0  0  0  0  0  0  0  0999 V2000"  # counts line
    records[1] = "\n".join(lines) + "\n"
    return "$$$$\n".join(records)


def test_sdf_unparseable_record_raise_or_skip(tmp_path, sdf_file):
    path = tmp_path / "broken.sdf"
    path.write_text(_corrupt_second_sdf_record(sdf_file[0].read_text()) + "\n\n")  # trailing blank lines are fine
    with pytest.raises(DataFormatError) as exc:
        load_files(cfg([path]), ErrorPolicy())
    msg = str(exc.value)
    assert str(path) in msg and "record 2" in msg and "RDKit could not parse" in msg
    policy = ErrorPolicy("skip")
    out = load_files(cfg([path]), policy)
    assert policy.counts == {"unparseable_sdf": 1}
    assert out.table.columns["record"].tolist() == [1, 3, 4]
    assert out.table.columns["name"].tolist() == ["mol-0", "mol-2", "mol-3"]


def test_molfile_without_terminator(tmp_path):
    mol = embedded("CCN", 2)
    path = tmp_path / "one.mol"
    path.write_text(Chem.MolToMolBlock(mol))  # no "$$$$" line
    t = load_files(cfg([path]), ErrorPolicy()).table
    assert len(t) == 1 and t.num_atoms.tolist() == [mol.GetNumAtoms()]
    np.testing.assert_allclose(t.positions_ang, np.round(mol.GetConformer().GetPositions(), 4), rtol=0, atol=2e-6)


def test_sdf_2d_record_is_bad(tmp_path):
    mol = Chem.MolFromSmiles("CCO")
    AllChem.Compute2DCoords(mol)
    path = tmp_path / "flat.sdf"
    with Chem.SDWriter(str(path)) as writer:
        writer.write(embedded("CC", 1))
        writer.write(mol)
    with pytest.raises(DataFormatError, match=r"record 2: .*2D coordinates"):
        load_files(cfg([path]), ErrorPolicy())


def _undeclared_flat_block(smiles: str) -> str:
    """A molblock with all z = 0 (RDKit's 2D depiction, explicit H) whose header does not say 2D."""
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.Compute2DCoords(mol)
    lines = Chem.MolToMolBlock(mol).split("\n")
    assert lines[1][20:22] == "2D"
    lines[1] = lines[1][:20] + "  " + lines[1][22:]
    return "\n".join(lines)


def test_sdf_flat_record_without_2d_header_is_bad(tmp_path):
    """Issue 29: all z = 0 is a drawing whatever the header says: raise names the record, skip counts it;
    three atoms (always in one plane) at z = 0 stay a molecule."""
    path = tmp_path / "flat.sdf"
    water = (
        "3\n     RDKit          3D\n\n  3  2  0  0  0  0  0  0  0  0999 V2000\n"
        + "".join(
            f"{x:10.4f}{y:10.4f}{0.0:10.4f} {s:<3} 0  0  0  0  0  0  0  0  0  0  0  0\n"
            for s, x, y in (("O", 0.0, 0.0), ("H", 0.9572, 0.0), ("H", -0.2400, 0.9266))
        )
        + "  1  2  1  0\n  1  3  1  0\nM  END\n"
    )
    path.write_text(
        Chem.MolToMolBlock(embedded("CC", 1)) + "$$$$\n" + _undeclared_flat_block("CCO") + "$$$$\n" + water + "$$$$\n"
    )
    with pytest.raises(DataFormatError, match=r"record 2: .*every z coordinate of the 9 atoms is 0: a flat 2D drawing"):
        load_files(cfg([path]), ErrorPolicy())
    policy = ErrorPolicy("skip")
    out = load_files(cfg([path]), policy)
    assert policy.counts == {"not_3d": 1}
    assert out.table.columns["record"].tolist() == [1, 3] and out.table.num_atoms.tolist() == [8, 3]


# -------------------------------------------------------------------------------------------- XYZ
def test_plain_xyz_round_trip(tmp_path):
    frames = random_frames(5)
    path = tmp_path / "traj.xyz"
    path.write_text("".join(frame_text(s, x, comment=f"frame {i} free text") for i, (s, x) in enumerate(frames)))
    out = load_files(cfg([path]), ErrorPolicy())
    t = out.table
    assert len(t) == 5
    for i, (symbols, xyz) in enumerate(frames):
        rec = t.molecule(i)
        np.testing.assert_array_equal(rec.atomic_numbers, to_z(symbols))
        np.testing.assert_array_equal(rec.positions_ang, xyz.astype(np.float32))
        assert rec.props["comment"] == f"frame {i} free text"
        assert rec.props["record"] == i + 1
        assert rec.smiles is None


def test_extxyz_properties_and_split(tmp_path):
    frames = random_frames(3, seed=5)
    splits = ["test", "train", "valid"]
    text = ""
    for i, (symbols, xyz) in enumerate(frames):
        # species not first: forces:R:3 then species then pos, to check the column offsets.
        comment = f'Properties=forces:R:3:species:S:1:pos:R:3 energy={-1.25 - i} split={splits[i]} pbc="F F F" tag=abc'
        text += f"{len(symbols)}\n{comment}\n"
        text += "".join(
            f"0.1 0.2 0.3 {s} {float(x)!r} {float(y)!r} {float(z)!r}\n" for s, (x, y, z) in zip(symbols, xyz)
        )
    path = tmp_path / "data.extxyz"
    path.write_text(text)
    out = load_files(cfg([path], split_column="split"), ErrorPolicy())
    assert out.split.tolist() == splits
    for i, (symbols, xyz) in enumerate(frames):
        rec = out.table.molecule(i)
        np.testing.assert_array_equal(rec.atomic_numbers, to_z(symbols))
        np.testing.assert_array_equal(rec.positions_ang, xyz.astype(np.float32))
    np.testing.assert_array_equal(out.table.columns["energy"], [-1.25, -2.25, -3.25])
    assert out.table.columns["tag"].tolist() == ["abc"] * 3
    assert out.table.columns["pbc"].tolist() == ["F F F"] * 3


def test_extxyz_default_properties_with_atomic_numbers(tmp_path):
    path = tmp_path / "z.extxyz"
    path.write_text("2\nenergy=3.5\n8 0.0 0.0 0.0\n1 0.0 0.0 0.97\n")
    t = load_files(cfg([path]), ErrorPolicy()).table
    assert t.atomic_numbers.tolist() == [8, 1]
    assert t.columns["energy"].tolist() == [3.5]


GOOD = frame_text(["C", "O"], [(0.0, 0.0, 0.0), (1.2, 0.0, 0.0)])
GOOD2 = frame_text(["N", "N"], [(0.0, 0.0, 0.0), (1.1, 0.0, 0.0)])


@pytest.mark.parametrize(
    "bad, kind, problem",
    [
        ("two\n\nC 0 0 0\nO 1 0 0\n", "bad_count", "line 5: expected the atom count"),
        ("2\n\nC 0 0 0\nXx 1 0 0\n", "unknown_element", "line 8: unknown element symbol 'Xx'"),
        ("2\n\nC 0 0 0\nO nan 0 0\n", "nan_coordinate", "line 8: non-finite coordinate"),
        ("2\n\nC 0 0 0\nO 1.0 zero 0\n", "bad_coordinate", "line 8: unparseable coordinate"),
        ("2\n\nC 0 0 0\nO 1.0 0\n", "malformed_atom_line", "line 8: expected 4 columns"),
        ('2\nbad="unclosed\nC 0 0 0\nO 1 0 0\n', None, None),  # unbalanced quotes: a plain comment, not an error
    ],
)
def test_xyz_bad_frame_raise_or_skip(tmp_path, bad, kind, problem):
    path = tmp_path / "bad.xyz"
    path.write_text(GOOD + bad + GOOD2)
    if kind is None:
        assert len(load_files(cfg([path]), ErrorPolicy()).table) == 3
        return
    with pytest.raises(DataFormatError) as exc:
        load_files(cfg([path]), ErrorPolicy())
    msg = str(exc.value)
    assert msg.startswith(f"{path}, record 2: ") and problem in msg
    policy = ErrorPolicy("skip")
    out = load_files(cfg([path]), policy)
    assert policy.counts == {kind: 1}
    assert out.table.columns["record"].tolist() == [1, 3]
    assert out.table.atomic_numbers.tolist() == [6, 8, 7, 7]


def test_xyz_truncated_last_frame(tmp_path):
    path = tmp_path / "cut.xyz"
    path.write_text(GOOD + GOOD2 + "3\n\nC 0 0 0\n")
    with pytest.raises(DataFormatError, match=r"record 3: line 9: truncated frame: 3 atoms announced.* after 1"):
        load_files(cfg([path]), ErrorPolicy())
    policy = ErrorPolicy("skip")
    assert len(load_files(cfg([path]), policy).table) == 2
    assert policy.counts == {"truncated_frame": 1}


# ---------------------------------------------------------------------------------------- Parquet
def parquet_table(n: int, bad_row: int | None = None) -> MoleculeTable:
    frames = random_frames(n, seed=9)
    z = np.concatenate([to_z(s) for s, _ in frames])
    pos = np.concatenate([x for _, x in frames])
    if bad_row is not None:
        pos[sum(len(s) for s, _ in frames[:bad_row]) + 1, 2] = np.nan
    split = np.array(["train", "valid", "test"] * n, dtype=object)[:n]
    return MoleculeTable(
        np.arange(100, 100 + n),
        [len(s) for s, _ in frames],
        z,
        pos,
        np.array([f"S{i}" for i in range(n)], dtype=object),
        {"split": split, "energy_ev": np.linspace(-1, 1, n)},
    )


def test_parquet_round_trip_and_split(tmp_path):
    src = parquet_table(6)
    path = tmp_path / "mols.parquet"
    write_molecules(path, src)
    out = load_files(cfg([path], split_column="split"), ErrorPolicy())
    t = out.table
    np.testing.assert_array_equal(t.atomic_numbers, src.atomic_numbers)
    np.testing.assert_array_equal(t.positions_ang, src.positions_ang)
    np.testing.assert_array_equal(t.num_atoms, src.num_atoms)
    np.testing.assert_array_equal(t.columns["source_mol_id"], src.mol_id)
    np.testing.assert_array_equal(t.columns["energy_ev"], src.columns["energy_ev"])
    assert t.smiles.tolist() == src.smiles.tolist()
    assert out.split.tolist() == src.columns["split"].tolist()
    assert t.columns["record"].tolist() == [1, 2, 3, 4, 5, 6]


def test_parquet_bad_row(tmp_path):
    path = tmp_path / "mols.parquet"
    write_molecules(path, parquet_table(4, bad_row=2))
    with pytest.raises(DataFormatError, match=r"mols.parquet, record 3: atom 2 has a non-finite coordinate"):
        load_files(cfg([path]), ErrorPolicy())
    policy = ErrorPolicy("skip")
    out = load_files(cfg([path]), policy)
    assert policy.counts == {"nan_coordinate": 1}
    assert out.table.columns["source_mol_id"].tolist() == [100, 101, 103]


def test_not_a_parquet_file(tmp_path):
    path = tmp_path / "junk.parquet"
    path.write_text("not parquet")
    with pytest.raises(DataFormatError, match="junk.parquet: not a molecule Parquet file"):
        load_files(cfg([path]), ErrorPolicy())


# ------------------------------------------------------------------------------------ all together
def test_several_files_concatenate(tmp_path, sdf_file):
    xyz = tmp_path / "a.xyz"
    xyz.write_text(GOOD + GOOD2)
    pq = tmp_path / "b.parquet"
    write_molecules(pq, parquet_table(3))
    out = load_files(cfg([xyz, sdf_file[0], pq]), ErrorPolicy())
    t = out.table
    assert len(t) == 2 + 4 + 3
    np.testing.assert_array_equal(t.mol_id, np.arange(9))
    assert t.columns["source_file"].tolist() == [str(xyz)] * 2 + [str(sdf_file[0])] * 4 + [str(pq)] * 3
    assert t.columns["record"].tolist() == [1, 2, 1, 2, 3, 4, 1, 2, 3]
    assert t.columns["record"].dtype == np.int64
    assert t.atomic_numbers[:4].tolist() == [6, 8, 7, 7]
    assert t.columns["name"].tolist()[2:6] == ["mol-0", "mol-1", "mol-2", "mol-3"]
    assert t.columns["name"][0] is None
    assert np.isnan(t.columns["source_mol_id"][:6]).all()
    assert t.columns["source_mol_id"][6:].tolist() == [100, 101, 102]
    assert [f["molecules"] for f in out.info["files"]] == [2, 4, 3]


def test_random_split_fractions(tmp_path):
    path = tmp_path / "many.xyz"
    path.write_text("".join(frame_text(s, x) for s, x in random_frames(20)))
    out = load_files(cfg([path], valid_fraction=0.2, test_fraction=0.1), ErrorPolicy())
    assert out.info["molecules_per_split"] == {"train": 14, "valid": 4, "test": 2}
    np.testing.assert_array_equal(out.split, random_split_labels(20, 0.2, 0.1, seed=0))


def test_missing_file_and_empty_paths(tmp_path):
    missing = tmp_path / "nope.sdf"
    with pytest.raises(FileNotFoundError, match="nope.sdf"):
        load_files(cfg([missing]), ErrorPolicy())
    with pytest.raises(ValueError, match=r"data\.files\.paths is empty"):
        load_files(cfg([]), ErrorPolicy())


def test_unknown_extension_and_forced_format(tmp_path):
    path = tmp_path / "frames.txt"
    path.write_text(GOOD)
    with pytest.raises(ValueError, match=r"frames.txt.*'\.txt'.*data\.files\.format"):
        load_files(cfg([path]), ErrorPolicy())
    assert load_files(cfg([path], format="xyz"), ErrorPolicy()).table.atomic_numbers.tolist() == [6, 8]


def test_nothing_readable(tmp_path):
    path = tmp_path / "bad.xyz"
    path.write_text("2\n\nQq 0 0 0\nO 1 0 0\n")
    with pytest.raises(ValueError, match="no molecules could be read"):
        load_files(cfg([path]), ErrorPolicy("skip"))
