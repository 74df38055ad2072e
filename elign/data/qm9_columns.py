"""QM9 property columns, named with their units, in the order of the figshare xyz files' second line.

Second line of each ``dsgdb9nsd_NNNNNN.xyz``: ``gdb idx A B C mu alpha homo lumo gap r2 zpve U0 U H G Cv``
(Ramakrishnan et al., Sci. Data 1, 140022 (2014), Table 2). Every source of QM9 writes these names. Besides
them: per-molecule lists ``mulliken_charges_e`` (e, one per atom) and ``harmonic_freqs_cm1`` (cm^-1), and
strings ``smiles`` (the GDB-17 SMILES, the first of the xyz file's two) and ``inchi``; the figshare source also
writes ``smiles_relaxed`` / ``inchi_relaxed`` (the second pair, from the B3LYP geometry).
"""

QM9_SCALAR_COLUMNS: tuple[str, ...] = (
    "rot_a_ghz",
    "rot_b_ghz",
    "rot_c_ghz",  # rotational constants, GHz
    "dipole_debye",  # dipole moment, Debye
    "polarizability_bohr3",  # isotropic polarizability, bohr^3
    "homo_ha",
    "lumo_ha",
    "gap_ha",  # orbital energies, Hartree
    "r2_bohr2",  # electronic spatial extent, bohr^2
    "zpve_ha",  # zero-point vibrational energy, Hartree
    "u0_ha",
    "u298_ha",
    "h298_ha",
    "g298_ha",  # internal energy 0 K / 298.15 K, enthalpy, free energy, Hartree
    "cv_cal_per_mol_k",  # heat capacity at 298.15 K, cal/(mol K)
)
