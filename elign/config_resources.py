"""Config values checked against the world outside the config, cheaply: files on disk, PySCF's names, the
card of a shipped backbone.

The config's semantic stage (:mod:`elign.config_rules`) asks these when the config is read, and the stage
that later uses the value asks the same function (the DFT stage checks its level with
:func:`pyscf_level_problems` before its first SCF), so the two can never disagree.
No SCF is run: PySCF parses the functional name (libxc) and reads the basis file of each element.
When PySCF is not installed in the process that reads the config (a workflow run with ``--use-conda``
installs it only in the jobs' environment), its names are not checked here; the DFT stage checks them.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def file_problem(path: str, folder: bool = False) -> str | None:
    """Why ``path`` is not an existing file (or folder, with ``folder``), or None."""
    p = Path(path).expanduser()
    if (p.is_dir() if folder else p.is_file()) and _readable(p):
        return None
    if not p.exists():
        return f"{path} does not exist (relative paths start at {Path.cwd()})"
    if folder:
        return f"{path} is not a folder" if not p.is_dir() else f"{path} is not readable"
    return f"{path} is a folder, not a file" if p.is_dir() else f"{path} is not readable"


def _readable(p: Path) -> bool:
    return os.access(p, os.R_OK)


def pyscf_functional_problem(name: str) -> str | None:
    """Why PySCF (libxc) cannot build the exchange-correlation functional ``name``, or None (also when PySCF is
    not installed here)."""
    if not name.strip():
        return "the functional is empty (QM9's level is b3lypg)"
    try:
        from pyscf.dft import libxc
    except ImportError:
        return None
    try:
        libxc.parse_xc(name)
    except (KeyError, ValueError, TypeError) as exc:
        return f"PySCF does not know the functional {name!r} ({str(exc).strip()[:120]}); e.g. b3lypg, pbe0, wb97x-d"
    return None


def pyscf_basis_problem(name: str, symbols: Iterable[str]) -> str | None:
    """Why PySCF has no basis ``name`` for one of the element ``symbols``, or None (also without PySCF)."""
    try:
        from pyscf import gto
    except ImportError:
        return None
    missing = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PySCF suggests installing basis-set-exchange on every miss
        for symbol in symbols:
            try:
                shells = gto.basis.load(re.sub(r"\s+", "", name.lower()), symbol)
            except Exception as exc:  # noqa: BLE001 (BasisNotFoundError, KeyError, RuntimeError: all "no basis")
                if "Unknown basis" in str(exc) or "not found" not in str(exc).lower():
                    return f"PySCF does not know the basis {name!r}; e.g. 6-31g(2df,p) (QM9's), 6-31g(d), def2-svp"
                shells = []
            if not shells:
                missing.append(symbol)
    if missing:
        return (
            f"PySCF's basis {name!r} has no functions for {', '.join(missing)}, which the samples can hold; "
            "choose a basis that covers them (def2-svp covers H-Rn)"
        )
    return None


def pyscf_level_problems(functional: str, basis: str, symbols: Iterable[str]) -> list[tuple[str, str]]:
    """(key, problem) for the DFT level's functional and basis (``dft.functional``, ``dft.basis``)."""
    out = []
    if (problem := pyscf_functional_problem(functional)) is not None:
        out.append(("dft.functional", problem))
    if (problem := pyscf_basis_problem(basis, symbols)) is not None:
        out.append(("dft.basis", problem))
    return out


def shipped_card(models_dir: str, name: str, what: str = "backbone") -> dict[str, Any] | str:
    """The card.json of the shipped model ``models_dir/name`` (``what``: backbone or aligned model, for the
    message), or why it cannot be read."""
    folder = Path(models_dir) / name
    for file in ("card.json", "weights.pt"):
        if (problem := file_problem(str(folder / file))) is not None:
            return f"shipped {what} {name!r}: {problem} (`elign models` lists the shipped models)"
    try:
        card = json.loads((folder / "card.json").read_text(encoding="utf-8"))
        card["architecture"]["model_config"]["atom_decoder"]  # noqa: B018 (the keys the checks read)
        card["weights"]["sha256"]  # noqa: B018
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"shipped {what} {name!r}: {folder / 'card.json'} is not a readable card ({exc!r})"
    return card
