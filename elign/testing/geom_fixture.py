"""A small GEOM-Drugs fixture in the real ``drugs_crude.msgpack`` layout, built from real drug SMILES.

GEOM-Drugs itself (~50 GB) cannot be downloaded here, so the smoke run and the GEOM tests read a file
written by this module: the same layout as ``drugs_crude.msgpack`` (a stream of msgpack maps SMILES →
molecule info, ``info["conformers"]`` a list of dicts with ``xyz`` rows ``[Z, x, y, z]`` in Å and
``totalenergy`` in Hartree, plus ``boltzmannweight``, ``geom_id``, ``relativeenergy``, ``degeneracy``,
``set``; molecule keys ``charge``, ``uniqueconfs``, ``totalconfs``, ``lowestenergy``, ``ensembleenergy``).

How each conformer is made (GEOM: CREST search, GFN2-xTB optimisation, GFN2-xTB ``totalenergy``):

* RDKit ETKDGv3 embedding (seeded) of the SMILES with explicit hydrogens, ``CONFORMERS`` per molecule;
* MMFF94 optimisation (UFF where MMFF has no parameters, e.g. boron), so bond lengths are at a force-field
  minimum, as GEOM's are at a GFN2-xTB minimum;
* ``totalenergy``: a GFN2-xTB single point (tblite) in Hartree, the method of GEOM's energies; where tblite
  is missing, the module stops (it never writes another method's energy under GEOM's key).

The molecules (:data:`DRUGS`) are marketed drugs chosen to cover what QM9 lets slide: B, P, S, Cl, Br, I
(elements ANI-2x cannot score: B, P, Br, I), and molecules of 60+ atoms (amiodarone 60, sildenafil 63,
atorvastatin 76). Run ``python -m elign.testing.geom_fixture OUT`` to rebuild; the file in the repository
(``tests/fixtures/geom/drugs_crude_fixture.msgpack``) was written by this module (RDKit's ETKDG is
deterministic for a seed on one RDKit version; a rebuild with another version may differ in the last digits).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

#: (name, SMILES): real drugs; neutral forms. Sizes with hydrogens in the comments.
DRUGS: tuple[tuple[str, str], ...] = (
    ("paracetamol", "CC(=O)Nc1ccc(O)cc1"),  # 20 atoms, H C N O
    ("aspirin", "CC(=O)Oc1ccccc1C(=O)O"),  # 21
    ("caffeine", "Cn1cnc2c1c(=O)n(C)c(=O)n2C"),  # 24
    ("nicotine", "CN1CCC[C@H]1c1cccnc1"),  # 26
    ("cyclophosphamide", "ClCCN(CCCl)P1(=O)NCCCO1"),  # 29: P, Cl
    ("bromazepam", "O=C1CN=C(c2ccccn2)c2cc(Br)ccc2N1"),  # 29: Br
    ("ibuprofen", "CC(C)Cc1ccc(cc1)C(C)C(=O)O"),  # 33
    ("fluconazole", "OC(Cn1cncn1)(Cn1cncn1)c1ccc(F)cc1F"),  # 34: F
    ("chlorpromazine", "CN(C)CCCN1c2ccccc2Sc2ccc(Cl)cc21"),  # 40: S, Cl
    ("bortezomib", "CC(C)C[C@H](NC(=O)[C@H](Cc1ccccc1)NC(=O)c1cnccn1)B(O)O"),  # 53: B
    ("amiodarone", "CCCCc1oc2ccccc2c1C(=O)c1cc(I)c(OCCN(CC)CC)c(I)c1"),  # 60: I
    ("sildenafil", "CCCc1nn(C)c2c(=O)[nH]c(-c3cc(S(=O)(=O)N4CCN(C)CC4)ccc3OCC)nc12"),  # 63: S
    ("atorvastatin", "CC(C)c1c(C(=O)Nc2ccccc2)c(-c2ccccc2)c(-c2ccc(F)cc2)n1CC[C@@H](O)C[C@@H](O)CC(=O)O"),  # 76
)
CONFORMERS = 3  # per molecule: 13 x 3 = 39 conformers, "a few dozen"
SEED = 20240
KT_HARTREE_298K = 298.15 * 3.166811563e-6  # k_B T at 298.15 K in Hartree (Boltzmann weights, as GEOM's)
MAPS_OF = 4  # SMILES per top-level map (GEOM's file: ~1000 per map; several maps exercise the streaming)


def embed_conformers(smiles: str, n: int, seed: int) -> tuple[list[int], list[np.ndarray], str]:
    """(atomic numbers, n optimised (N, 3) Å geometries, force field used) of one SMILES with hydrogens."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    params = AllChem.ETKDGv3()
    params.randomSeed = seed
    ids = list(AllChem.EmbedMultipleConfs(mol, numConfs=n, params=params))
    if len(ids) != n:
        raise RuntimeError(f"ETKDG embedded {len(ids)} of {n} conformers of {smiles}")
    if AllChem.MMFFHasAllMoleculeParams(mol):
        AllChem.MMFFOptimizeMoleculeConfs(mol, maxIters=2000)
        field = "MMFF94"
    else:
        AllChem.UFFOptimizeMoleculeConfs(mol, maxIters=2000)
        field = "UFF"
    z = [a.GetAtomicNum() for a in mol.GetAtoms()]
    return z, [np.asarray(mol.GetConformer(i).GetPositions(), dtype=np.float64) for i in ids], field


def gfn2_energy_ha(z: list[int], positions_ang: np.ndarray) -> float:
    """GFN2-xTB total energy (Hartree) of a neutral closed-shell molecule with tblite."""
    from tblite.interface import Calculator

    bohr_per_ang = 1.0 / 0.52917721067
    calc = Calculator("GFN2-xTB", np.asarray(z), positions_ang * bohr_per_ang)
    calc.set("verbosity", 0)
    return float(calc.singlepoint().get("energy"))


def molecule_info(z: list[int], geometries: list[np.ndarray], first_geom_id: int) -> dict:
    """GEOM's molecule info dict for one SMILES (conformers in embedding order, as GEOM lists them unsorted)."""
    energies = np.array([gfn2_energy_ha(z, x) for x in geometries])
    rel = energies - energies.min()
    weights = np.exp(-rel / KT_HARTREE_298K)
    weights /= weights.sum()
    conformers = [
        {
            "geom_id": first_geom_id + j,
            "totalenergy": float(e),
            "relativeenergy": float(r * 627.509474),  # kcal/mol, as GEOM's
            "boltzmannweight": float(w),
            "degeneracy": 1,
            "set": 1,
            "xyz": [[int(zz), *map(float, row)] for zz, row in zip(z, x)],
        }
        for j, (x, e, r, w) in enumerate(zip(geometries, energies, rel, weights))
    ]
    return {
        "conformers": conformers,
        "charge": 0,
        "uniqueconfs": len(conformers),
        "totalconfs": len(conformers),
        "lowestenergy": float(energies.min()),
        "ensembleenergy": float(np.dot(weights, energies)),
    }


def build_fixture(path: str | Path, drugs=DRUGS, conformers: int = CONFORMERS, seed: int = SEED) -> dict[str, int]:
    """Write the fixture to ``path``; returns {SMILES: atoms} of the molecules written."""
    import msgpack

    infos, sizes = {}, {}
    for k, (_, smiles) in enumerate(drugs):
        z, geometries, _ = embed_conformers(smiles, conformers, seed + k)
        infos[smiles] = molecule_info(z, geometries, 1000 * (k + 1))
        sizes[smiles] = len(z)
    names = list(infos)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        for start in range(0, len(names), MAPS_OF):
            fh.write(msgpack.packb({s: infos[s] for s in names[start : start + MAPS_OF]}))
    return sizes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("out", help="the .msgpack file to write")
    args = parser.parse_args(argv)
    sizes = build_fixture(args.out)
    print(f"wrote {args.out}: {len(sizes)} molecules x {CONFORMERS} conformers; atoms {sorted(sizes.values())}")


if __name__ == "__main__":
    main()
