"""QM9 from the original figshare files (Ramakrishnan et al., Sci. Data 1, 140022, 2014).

Three files are fetched from ``{base_url}/{file id}`` into ``cache_dir`` (or read from ``local_dir``) and
sha256-checked: ``dsgdb9nsd.xyz.tar.bz2`` (133,885 xyz files), ``uncharacterized.txt`` (the 3,054
molecules EDM excludes) and ``atomref.txt`` (atomic reference energies). The archive is parsed as a
stream, without extracting it. Per-molecule xyz layout (tab separated)::

    n                                        atom count
    gdb idx A B C mu alpha homo lumo gap r2 zpve U0 U H G Cv
    El x y z q                               n lines: element, position (Å), Mulliken charge (e)
    f1 f2 ...                                harmonic frequencies (cm^-1)
    smiles_gdb17 smiles_relaxed
    inchi_gdb17 inchi_relaxed

Numbers may be written with Mathematica exponents (``2.1997*^-6`` = 2.1997e-6).
"""

from __future__ import annotations

import bz2
import http.client
import io
import logging
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from tqdm import tqdm

from elign.data.errors import ErrorPolicy
from elign.data.qm9_columns import QM9_SCALAR_COLUMNS
from elign.data.registry import SourceResult, register_source
from elign.data.split import characterized_from_uncharacterized, edm_qm9_split_labels
from elign.elements import atomic_number
from elign.io.atomic import atomic_path
from elign.io.errors import DataFormatError
from elign.io.provenance import file_sha256
from elign.io.table import MoleculeRecord, MoleculeTable

log = logging.getLogger(__name__)

FILENAMES = {"xyz_archive": "dsgdb9nsd.xyz.tar.bz2", "uncharacterized": "uncharacterized.txt", "atomref": "atomref.txt"}
ATOMREF_COLUMNS = ("zpve_ha", "u0_ha", "u298_ha", "h298_ha", "g298_ha", "cv_cal_per_mol_k")
_BACKOFF_S = 1.0  # wait before retry k (0-based): _BACKOFF_S * 2**k seconds, at most 8 s
_CHUNK = 1 << 20
_USER_AGENT = "elign-qm9-downloader (python urllib)"  # figshare rejects some default client agents
_N_SCALARS = len(QM9_SCALAR_COLUMNS)
_Z: dict[str, int] = {}  # symbol (as written) → Z, filled lazily by _z_of


class DownloadError(RuntimeError):
    """A figshare file could not be fetched (host unreachable, HTTP error, retries exhausted)."""


class ChecksumError(RuntimeError):
    """A file's sha256 differs from the one in ``data.figshare.sha256``."""


# ------------------------------------------------------------------------------------------ fetching
def _check_sha(path: Path, key: str, expected: str) -> str:
    actual = file_sha256(path)
    if actual != expected.lower():
        raise ChecksumError(
            f"sha256 mismatch for {FILENAMES[key]} ({path}): expected {expected}, got {actual}. "
            f"The file is corrupt or not the published one; if it is intended, set "
            f"data.figshare.sha256.{key} to {actual}."
        )
    return actual


def fetch_file(src, key: str) -> tuple[Path, dict]:
    """Local path of figshare file ``key`` (a FILENAMES key) and a note {name, sha256, source}.

    ``src`` is a :class:`elign.config.FigshareSource`. With ``local_dir`` the file is read from there and the
    network is never used; otherwise a cached copy with the right sha256 is reused, else it is downloaded.
    """
    name, expected = FILENAMES[key], getattr(src.sha256, key)
    if src.local_dir is not None:
        path = Path(src.local_dir) / name
        if not path.is_file():
            raise FileNotFoundError(
                f"data.figshare.local_dir={src.local_dir}: {name} not found there (the folder "
                f"must hold {', '.join(FILENAMES.values())})"
            )
        return path, {"name": name, "sha256": _check_sha(path, key, expected), "source": str(path)}
    path = Path(src.cache_dir) / name
    url = f"{src.base_url.rstrip('/')}/{getattr(src.file_ids, key)}"
    if path.is_file():
        if file_sha256(path) == expected.lower():
            log.info("using cached %s", path)
            return path, {"name": name, "sha256": expected.lower(), "source": url}
        log.warning("cached %s has the wrong sha256; downloading it again", path)
        path.unlink()
    with atomic_path(path) as tmp:  # a failed download or a bad hash leaves nothing in the cache
        _download(url, tmp, src.retries, src.timeout_s, name)
        actual = _check_sha(tmp, key, expected)
    return path, {"name": name, "sha256": actual, "source": url}


def _download(url: str, dest: Path, retries: int, timeout_s: float, label: str) -> None:
    """Fetch ``url`` into ``dest`` with up to ``retries`` attempts; DownloadError when all fail."""
    last: Exception | None = None
    for attempt in range(retries):
        if attempt:
            time.sleep(min(_BACKOFF_S * 2 ** (attempt - 1), 8.0))
        try:
            _download_once(url, dest, timeout_s, label)
            return
        except urllib.error.HTTPError as exc:
            last = exc
            if 400 <= exc.code < 500 and exc.code not in (408, 429):
                hint = (
                    "figshare sometimes refuses scripted downloads: fetch the files in a browser and set "
                    "data.figshare.local_dir"
                    if exc.code == 403
                    else "check data.figshare.base_url and data.figshare.file_ids"
                )
                raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason} ({hint})") from exc
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as exc:
            last = exc
        log.warning("download of %s failed (attempt %d/%d): %s", url, attempt + 1, retries, last)
    reason = getattr(last, "reason", None) or last
    raise DownloadError(
        f"could not reach {url} after {retries} attempt(s): {reason}. If this machine is offline, fetch "
        f"{', '.join(FILENAMES.values())} elsewhere and set data.figshare.local_dir to the folder holding them."
    ) from last


def _download_once(url: str, dest: Path, timeout_s: float, label: str) -> None:
    req = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    with urllib.request.urlopen(req, timeout=timeout_s) as resp, open(dest, "wb") as out:
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        done = 0
        with tqdm(total=total, unit="B", unit_scale=True, desc=label, disable=None, leave=False) as bar:
            while chunk := resp.read(_CHUNK):
                out.write(chunk)
                done += len(chunk)
                bar.update(len(chunk))
    if total is not None and done != total:
        raise http.client.IncompleteRead(b"", total - done)


# --------------------------------------------------------------------------------- small text tables
def _ruled_rows(path: Path) -> list[list[str]]:
    """Whitespace-split rows between the 2nd and 3rd ``====`` ruler (the data block of the figshare tables)."""
    rulers, rows = 0, []
    for line in path.read_text(encoding="latin-1").splitlines():
        if line.startswith("===="):
            rulers += 1
        elif rulers == 2 and line.strip():
            rows.append(line.split())
    if rulers < 3:
        raise DataFormatError(str(path), None, f"expected a table between '====' rulers, found {rulers} ruler(s)")
    return rows


def parse_uncharacterized(path: str | Path) -> np.ndarray:
    """(K,) int64 QM9 indices listed in ``uncharacterized.txt`` (K = 3,054 for the published file)."""
    ids = []
    for k, row in enumerate(_ruled_rows(Path(path)), start=1):
        if not row[0].isdigit():
            raise DataFormatError(str(path), k, f"data row does not start with a molecule index: {row[0]!r}")
        ids.append(int(row[0]))
    return np.array(ids, dtype=np.int64)


def parse_atomref(path: str | Path) -> dict[str, dict[str, float]]:
    """``atomref.txt``: symbol → {zpve_ha, u0_ha, u298_ha, h298_ha, g298_ha (Hartree), cv_cal_per_mol_k}."""
    out = {}
    for k, row in enumerate(_ruled_rows(Path(path)), start=1):
        if len(row) != 1 + len(ATOMREF_COLUMNS):
            raise DataFormatError(str(path), k, f"{len(row)} fields, expected {1 + len(ATOMREF_COLUMNS)}")
        try:
            atomic_number(row[0])
            out[row[0]] = dict(zip(ATOMREF_COLUMNS, map(_num, row[1:])))
        except (KeyError, ValueError) as exc:
            raise DataFormatError(str(path), k, f"bad row {' '.join(row)!r}: {exc}") from None
    return out


# ------------------------------------------------------------------------------------- xyz molecules
class _BadMolecule(Exception):
    def __init__(self, kind: str, problem: str):
        super().__init__(problem)
        self.kind, self.problem = kind, problem


def _num(s: str) -> float:
    """A float, accepting Mathematica exponents (``1.5*^-6``)."""
    return float(s.replace("*^", "e")) if "*^" in s else float(s)


def _z_of(sym: str) -> int:
    z = _Z.get(sym)
    if z is None:
        try:
            z = _Z[sym] = atomic_number(sym)
        except KeyError:
            raise _BadMolecule("unknown_element", f"unknown element symbol {sym!r}") from None
    return z


def _floats(fields: list[str], what: str) -> list[float]:
    try:
        return [float(v) for v in fields]
    except ValueError:
        for v in fields:
            try:
                float(v)
            except ValueError:
                raise _BadMolecule("bad_number", f"{what}: cannot parse {v!r} as a number") from None
        raise


def _parse_atoms(atom_lines: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``El x y z q`` lines (file lines 3..n+2) → Z (n,) int8 and [x, y, z (Å), q (e)] (n, 4) float64."""
    rows = [ln.split() for ln in atom_lines]
    for i, r in enumerate(rows):
        if len(r) != 5:
            raise _BadMolecule(
                "bad_field_count", f"line {i + 3}: atom line has {len(r)} fields, expected 5 (element x y z charge)"
            )
    z = np.array([_z_of(r[0]) for r in rows], dtype=np.int8)
    try:
        xyzq = np.array([float(v) for r in rows for v in r[1:]], dtype=np.float64).reshape(len(rows), 4)
    except ValueError:
        for i, r in enumerate(rows):
            _floats(r[1:], f"line {i + 3} ({r[0]} atom)")
        raise
    finite = np.isfinite(xyzq[:, :3]).all(axis=1)
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        raise _BadMolecule("non_finite_coordinate", f"line {i + 3}: non-finite coordinate {rows[i][1:4]}")
    return z, xyzq


def parse_molecule(text: str) -> MoleculeRecord:
    """One figshare xyz file → record (positions Å, props: 15 QM9 scalars, mulliken_charges_e (N,),
    harmonic_freqs_cm1 (F,), smiles_relaxed, inchi, inchi_relaxed). Raises _BadMolecule(kind, problem)."""
    if "*^" in text:
        text = text.replace("*^", "e")
    lines = text.splitlines()
    try:
        n = int(lines[0])
    except (ValueError, IndexError):
        raise _BadMolecule(
            "bad_atom_count", f"line 1 must be the atom count, got {(lines[0] if lines else '')[:40]!r}"
        ) from None
    if n < 1:
        raise _BadMolecule("bad_atom_count", f"atom count must be positive, got {n}")
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) != n + 5:
        kind = "truncated" if len(lines) < n + 5 else "extra_lines"
        raise _BadMolecule(kind, f"atom count {n} needs {n + 5} lines, found {len(lines)}")
    head = lines[1].split()
    if len(head) != 2 + _N_SCALARS or head[0] != "gdb":
        raise _BadMolecule(
            "bad_field_count", f"line 2 must be 'gdb idx' + {_N_SCALARS} properties, got {len(head)} fields"
        )
    if not head[1].isdigit():
        raise _BadMolecule("bad_number", f"line 2: molecule index {head[1]!r} is not an integer")
    props = dict(zip(QM9_SCALAR_COLUMNS, _floats(head[2:], "line 2")))
    z, xyzq = _parse_atoms(lines[2 : 2 + n])
    props["mulliken_charges_e"] = xyzq[:, 3].copy()
    props["harmonic_freqs_cm1"] = np.array(_floats(lines[n + 2].split(), "frequency line"), dtype=np.float64)
    smiles, inchi = lines[n + 3].split(), lines[n + 4].split()
    if len(smiles) != 2 or len(inchi) != 2:
        raise _BadMolecule(
            "bad_field_count", f"SMILES and InChI lines need 2 fields each, got {len(smiles)} and {len(inchi)}"
        )
    props.update(smiles_relaxed=smiles[1], inchi=inchi[0], inchi_relaxed=inchi[1])
    return MoleculeRecord(int(head[1]), z, xyzq[:, :3].copy(), smiles[0], props)


def parse_archive(path: str | Path, errors: ErrorPolicy) -> list[MoleculeRecord]:
    """All molecules of a ``dsgdb9nsd.xyz.tar.bz2``-style archive, streamed (no extraction), in archive order.

    Bad molecules go through ``errors`` (record = tar member name); a corrupt or truncated archive raises
    DataFormatError naming it, whatever ``on_error`` says.
    """
    path, records, seen = Path(path), [], set()
    try:
        # = tarfile.open(path, "r:bz2"), but with a 1 MiB buffer: BZ2File alone decompresses in 8 KiB slices,
        # which is ~2x slower on 133,885 small members. Reading stays sequential (no backward seeks).
        with (
            bz2.BZ2File(path) as raw,
            io.BufferedReader(raw, _CHUNK) as buf,
            tarfile.open(fileobj=buf, mode="r:") as tar,
        ):
            for member in tar:
                if not member.isfile():
                    continue
                data = tar.extractfile(member).read()
                try:
                    rec = parse_molecule(data.decode("ascii"))
                    if rec.mol_id in seen:
                        raise _BadMolecule("duplicate_mol_id", f"molecule index {rec.mol_id} appears twice")
                except UnicodeDecodeError as exc:
                    errors.bad_record(str(path), member.name, "encoding", f"not ASCII text ({exc.reason})")
                    continue
                except _BadMolecule as bad:
                    errors.bad_record(str(path), member.name, bad.kind, bad.problem)
                    continue
                seen.add(rec.mol_id)
                records.append(rec)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataFormatError(
            str(path),
            None,
            f"corrupt or truncated bz2 tar archive ({type(exc).__name__}: {exc}); delete it and fetch it again",
        ) from None
    return records


# ------------------------------------------------------------------------------------------ the source
@register_source("figshare")
def load_figshare(cfg, errors: ErrorPolicy, seed: int = 0) -> SourceResult:
    """QM9's characterized molecules from ``cfg.figshare`` (a DataConfig), sorted by mol_id, EDM-split.

    ``seed`` is not used: QM9's split is EDM's fixed rule (:mod:`elign.data.split`).

    info: ``excluded_uncharacterized`` (count dropped), ``files`` (name/sha256/source per file),
    ``atomref_u0_ha`` (symbol → U0 of the free atom, Hartree) and the full ``atomref`` table.
    """
    src = cfg.figshare
    paths, files = {}, {}
    for key in FILENAMES:
        paths[key], files[key] = fetch_file(src, key)
    uncharacterized = parse_uncharacterized(paths["uncharacterized"])
    atomref = parse_atomref(paths["atomref"])
    t0 = time.perf_counter()
    records = parse_archive(paths["xyz_archive"], errors)
    excluded = set(uncharacterized.tolist())
    kept = [r for r in records if r.mol_id not in excluded]
    kept.sort(key=lambda r: r.mol_id)
    table = MoleculeTable.from_records(kept)
    log.info("parsed %d molecules in %.1f s", len(records), time.perf_counter() - t0)
    split = edm_qm9_split_labels(table.mol_id, characterized_from_uncharacterized(uncharacterized))
    info = {
        "source": "figshare",
        "parsed": len(records),
        "excluded_uncharacterized": len(records) - len(kept),
        "files": files,
        "atomref_u0_ha": {s: v["u0_ha"] for s, v in atomref.items()},
        "atomref": atomref,
    }
    return SourceResult(table, split, info)
