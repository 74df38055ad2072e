"""The figshare QM9 source: download (local HTTP server), cache, checksums, local_dir, and the xyz parser."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import socket
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from elign.config import DataConfig, ElignConfig, FigshareSha256
from elign.data import figshare as fs
from elign.data.errors import ErrorPolicy
from elign.data.qm9_columns import QM9_SCALAR_COLUMNS
from elign.data.registry import get_source
from elign.data.split import characterized_from_uncharacterized, edm_qm9_split_labels
from elign.io.errors import DataFormatError

FIXTURE_ARCHIVE = "qm9_subset_100_figshare_layout.xyz.tar.bz2"
IDS = {"xyz_archive": "3195389", "uncharacterized": "3195404", "atomref": "3195395"}  # config defaults


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def qm9_dir(shared_dir) -> Path:
    """/work/shared/data/qm9 (``shared_dir`` from tests/conftest.py: the checkout's sibling ``shared/``)."""
    d = shared_dir / "data" / "qm9"
    if not (d / FIXTURE_ARCHIVE).is_file():
        pytest.fail(f"{d / FIXTURE_ARCHIVE} not found; the figshare tests need the shared QM9 files")
    return d


@pytest.fixture(scope="module")
def raw_molecules(qm9_dir) -> dict[str, str]:
    """member name → xyz text of the 100-molecule fixture, read independently of the parser."""
    with tarfile.open(qm9_dir / FIXTURE_ARCHIVE, "r:bz2") as tar:
        return {m.name: tar.extractfile(m).read().decode() for m in tar if m.isfile()}


@pytest.fixture(autouse=True)
def _fast_and_direct(monkeypatch):
    monkeypatch.setattr(fs, "_BACKOFF_S", 0.01)
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


class _Server:
    """Serves ``root``/<file id> on 127.0.0.1; counts requests; can answer the first ``fail`` ones with 500."""

    def __init__(self, root: Path):
        self.requests: list[str] = []
        self.agents: set[str] = set()
        self.fail = 0
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                server.agents.add(self.headers.get("User-Agent", ""))
                if server.fail > 0:
                    server.fail -= 1
                    self.send_error(500, "try again")
                    return
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/files"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path, qm9_dir):
    root = tmp_path / "www"
    (root / "files").mkdir(parents=True)
    sources = {"xyz_archive": FIXTURE_ARCHIVE, "uncharacterized": "uncharacterized.txt", "atomref": "atomref.txt"}
    for key, name in sources.items():
        (root / "files" / IDS[key]).write_bytes((qm9_dir / name).read_bytes())
    srv = _Server(root)
    yield srv
    srv.close()


def figshare_cfg(qm9_dir: Path, **figshare) -> DataConfig:
    fig = {"sha256": {"xyz_archive": sha256(qm9_dir / FIXTURE_ARCHIVE)}, "retries": 2, "timeout_s": 5}
    for key, value in figshare.items():
        fig[key] = {**fig.get(key, {}), **value} if isinstance(value, dict) else value
    return ElignConfig.model_validate({"data": {"source": "figshare", "figshare": fig}}).data


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/files"


# ------------------------------------------------------------------------------------------- download
def test_download_parses_the_fixture(server, tmp_path, qm9_dir, raw_molecules):
    cache = tmp_path / "cache"
    res = get_source("figshare")(figshare_cfg(qm9_dir, base_url=server.base_url, cache_dir=str(cache)), ErrorPolicy())
    assert sorted(p.name for p in cache.iterdir()) == sorted(fs.FILENAMES.values())
    assert sorted(server.requests) == sorted(f"/files/{i}" for i in IDS.values())
    assert server.agents == {fs._USER_AGENT}

    unchar = set(fs.parse_uncharacterized(qm9_dir / "uncharacterized.txt").tolist())
    raw_ids = sorted(int(name[len("dsgdb9nsd_") : -len(".xyz")]) for name in raw_molecules)
    assert len(raw_ids) == 100 and not unchar & set(raw_ids)  # the fixture holds characterized molecules only
    assert len(res.table) == 100 and res.info["excluded_uncharacterized"] == 0
    assert res.table.mol_id.tolist() == raw_ids
    n_raw = {int(k[10:16]): int(t.split("\n", 1)[0]) for k, t in raw_molecules.items()}
    assert res.table.num_atoms.tolist() == [n_raw[i] for i in raw_ids]

    expected = edm_qm9_split_labels(res.table.mol_id, characterized_from_uncharacterized(list(unchar)))
    assert res.split.tolist() == expected.tolist()
    assert res.info["files"]["xyz_archive"]["sha256"] == sha256(qm9_dir / FIXTURE_ARCHIVE)
    assert res.info["atomref_u0_ha"] == pytest.approx(
        {"H": -0.500273, "C": -37.846772, "N": -54.583861, "O": -75.064579, "F": -99.718730}
    )


def test_one_molecule_matches_the_raw_text(server, tmp_path, qm9_dir, raw_molecules):
    res = get_source("figshare")(
        figshare_cfg(qm9_dir, base_url=server.base_url, cache_dir=str(tmp_path)), ErrorPolicy()
    )
    lines = raw_molecules["dsgdb9nsd_071329.xyz"].strip("\n").split("\n")
    n = int(lines[0])
    atoms = [ln.split("\t") for ln in lines[2 : 2 + n]]
    mol = res.table.molecule(int(np.flatnonzero(res.table.mol_id == 71329)[0]))
    assert [int(z) for z in mol.atomic_numbers] == [{"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}[a[0]] for a in atoms]
    np.testing.assert_allclose(mol.positions_ang, [[float(v) for v in a[1:4]] for a in atoms], atol=1e-6)
    np.testing.assert_allclose(mol.props["mulliken_charges_e"], [float(a[4]) for a in atoms])
    props = lines[1].split("\t")
    assert props[0] == "gdb 71329"
    for col, text in zip(QM9_SCALAR_COLUMNS, props[1:16]):
        assert mol.props[col] == float(text), col
    np.testing.assert_allclose(mol.props["harmonic_freqs_cm1"], [float(v) for v in lines[n + 2].split("\t")])
    smiles, inchi = lines[n + 3].split("\t"), lines[n + 4].split("\t")
    assert (mol.smiles, mol.props["smiles_relaxed"]) == (smiles[0], smiles[1]) == ("CC12CC3C1C(C=O)C23",) * 2
    assert (mol.props["inchi"], mol.props["inchi_relaxed"]) == tuple(inchi)


def test_local_dir_never_touches_the_network(tmp_path, qm9_dir):
    local = tmp_path / "local"
    local.mkdir()
    (local / "dsgdb9nsd.xyz.tar.bz2").symlink_to(qm9_dir / FIXTURE_ARCHIVE)
    for name in ("uncharacterized.txt", "atomref.txt"):
        (local / name).symlink_to(qm9_dir / name)
    cache = tmp_path / "cache"
    cfg = figshare_cfg(qm9_dir, local_dir=str(local), base_url=closed_port_url(), cache_dir=str(cache))
    res = get_source("figshare")(cfg, ErrorPolicy())
    assert len(res.table) == 100 and not cache.exists()
    assert res.info["files"]["atomref"]["source"] == str(local / "atomref.txt")

    (local / "atomref.txt").unlink()
    with pytest.raises(FileNotFoundError, match="atomref.txt"):
        get_source("figshare")(cfg, ErrorPolicy())


def test_cached_files_are_reused_and_bad_cache_refetched(server, tmp_path, qm9_dir):
    cfg = figshare_cfg(qm9_dir, base_url=server.base_url, cache_dir=str(tmp_path / "c"))
    first = fs.load_figshare(cfg, ErrorPolicy())
    assert len(server.requests) == 3
    second = fs.load_figshare(cfg, ErrorPolicy())
    assert len(server.requests) == 3  # no request at all
    assert second.table.mol_id.tolist() == first.table.mol_id.tolist()
    (tmp_path / "c" / "atomref.txt").write_text("garbage")
    fs.load_figshare(cfg, ErrorPolicy())
    assert server.requests[3:] == [f"/files/{IDS['atomref']}"]


def test_sha_mismatch_is_clear_and_leaves_no_file(server, tmp_path, qm9_dir):
    cache = tmp_path / "cache"
    real_sha = FigshareSha256().xyz_archive  # the published archive's hash: the fixture does not match it
    cfg = figshare_cfg(qm9_dir, base_url=server.base_url, cache_dir=str(cache), sha256={"xyz_archive": real_sha})
    with pytest.raises(fs.ChecksumError) as info:
        fs.load_figshare(cfg, ErrorPolicy())
    msg = str(info.value)
    assert "dsgdb9nsd.xyz.tar.bz2" in msg and real_sha in msg and sha256(qm9_dir / FIXTURE_ARCHIVE) in msg
    assert list(cache.iterdir()) == []


def test_unreachable_host_gives_a_helpful_error(tmp_path, qm9_dir):
    url = closed_port_url()
    cfg = figshare_cfg(qm9_dir, base_url=url, cache_dir=str(tmp_path / "c"), retries=2, timeout_s=2)
    with pytest.raises(fs.DownloadError) as info:
        fs.load_figshare(cfg, ErrorPolicy())
    msg = str(info.value)
    assert f"could not reach {url}/{IDS['xyz_archive']}" in msg and "after 2 attempt" in msg
    assert "data.figshare.local_dir" in msg
    assert list((tmp_path / "c").iterdir()) == []


def test_server_error_is_retried(server, tmp_path, qm9_dir):
    server.fail = 1
    res = fs.load_figshare(figshare_cfg(qm9_dir, base_url=server.base_url, cache_dir=str(tmp_path)), ErrorPolicy())
    assert len(res.table) == 100
    assert server.requests[:2] == [f"/files/{IDS['xyz_archive']}"] * 2 and len(server.requests) == 4


def test_missing_file_is_not_retried(server, tmp_path, qm9_dir):
    cfg = figshare_cfg(
        qm9_dir, base_url=server.base_url, cache_dir=str(tmp_path), file_ids={"atomref": "999"}, retries=3
    )
    with pytest.raises(fs.DownloadError, match="HTTP 404"):
        fs.load_figshare(cfg, ErrorPolicy())
    assert server.requests.count("/files/999") == 1


# ---------------------------------------------------------------------------------- hand-written archives
def methane(idx: int, x0: str = "-0.0126981359", dipole: str = "0.", element: str = "C") -> str:
    props = "\t".join(
        [
            "157.7118",
            "157.70997",
            "157.70699",
            dipole,
            "13.21",
            "-0.3877",
            "0.1171",
            "0.5048",
            "35.3641",
            "0.044749",
            "-40.47893",
            "-40.476062",
            "-40.475117",
            "-40.498597",
            "6.469",
        ]
    )
    return (
        f"5\ngdb {idx}\t{props}\t\n"
        f"{element}\t{x0}\t 1.0858041578\t 0.0080009958\t-0.535689\n"
        "H\t 0.002150416\t-0.0060313176\t 0.0019761204\t 0.133921\n"
        "H\t 1.0117308433\t 1.4637511618\t 0.0002765748\t 0.133922\n"
        "H\t-0.540815069\t 1.4475266138\t-0.8766437152\t 0.133923\n"
        "H\t-0.5238136345\t 1.4379326443\t 0.9063972942\t 0.133923\n"
        "1341.307\t1341.3284\t1341.365\t1562.6731\t1562.7453\t3038.3205\t3151.6034\t3151.6788\t3151.7078\n"
        "C\t[CH4]\nInChI=1S/CH4/h1H4\tInChI=1S/CH4/h1H4/r\n"
    )  # relaxed pair made distinct


def write_archive(path: Path, molecules: dict[int, str]) -> Path:
    with tarfile.open(path, "w:bz2") as tar:
        for idx, text in molecules.items():
            data = text.encode()
            info = tarfile.TarInfo(f"dsgdb9nsd_{idx:06d}.xyz")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def load_local(tmp_path: Path, qm9_dir: Path, molecules: dict[int, str], on_error: str = "raise"):
    local = tmp_path / "local"
    local.mkdir(exist_ok=True)
    for name in ("uncharacterized.txt", "atomref.txt"):
        if not (local / name).exists():
            (local / name).symlink_to(qm9_dir / name)
    archive = write_archive(local / "dsgdb9nsd.xyz.tar.bz2", molecules)
    cfg = DataConfig.model_validate(
        {
            "source": "figshare",
            "on_error": on_error,
            "figshare": {"local_dir": str(local), "sha256": {"xyz_archive": sha256(archive)}},
        }
    )
    errors = ErrorPolicy(on_error)
    return fs.load_figshare(cfg, errors), errors


def test_mathematica_exponents_and_uncharacterized_exclusion(tmp_path, qm9_dir):
    res, _ = load_local(
        tmp_path, qm9_dir, {2: methane(2), 58: methane(58), 1: methane(1, x0="-1.3*^-6", dipole="2.1997*^-6")}
    )
    assert res.table.mol_id.tolist() == [1, 2]  # sorted; 58 is listed in uncharacterized.txt
    assert res.info["excluded_uncharacterized"] == 1 and res.info["parsed"] == 3
    mol = res.table.molecule(0)
    assert mol.positions_ang[0, 0] == pytest.approx(-1.3e-6)
    assert mol.props["dipole_debye"] == pytest.approx(2.1997e-6)
    assert res.table.molecule(1).props["dipole_debye"] == 0.0
    assert (mol.smiles, mol.props["smiles_relaxed"]) == ("C", "[CH4]")
    assert (mol.props["inchi"], mol.props["inchi_relaxed"]) == ("InChI=1S/CH4/h1H4", "InChI=1S/CH4/h1H4/r")


BAD = [  # (xyz text, kind, words the message must contain)
    ("\n".join(methane(3).split("\n")[:5]) + "\n", "truncated", "atom count 5 needs 10 lines, found 5"),
    ("five" + methane(3)[1:], "bad_atom_count", "line 1 must be the atom count, got 'five'"),
    (methane(3, element="Xx"), "unknown_element", "unknown element symbol 'Xx'"),
    (methane(3, x0="nan"), "non_finite_coordinate", "line 3: non-finite coordinate"),
    (methane(3, x0="1.2.3"), "bad_number", "line 3 (C atom): cannot parse '1.2.3'"),
    (methane(3, x0="1.0\t2.0"), "bad_field_count", "line 3: atom line has 6 fields, expected 5"),
    (methane(3).replace("\t6.469\t", "\t"), "bad_field_count", "line 2 must be 'gdb idx' + 15 properties"),
    (methane(3).replace("C\t[CH4]\n", "C\n"), "bad_field_count", "SMILES and InChI lines need 2 fields"),
]


@pytest.mark.parametrize("text,kind,problem", BAD, ids=[b[1] + str(i) for i, b in enumerate(BAD)])
def test_bad_molecule_raises_or_is_skipped(tmp_path, qm9_dir, text, kind, problem):
    molecules = {1: methane(1), 3: text}
    with pytest.raises(DataFormatError) as info:
        load_local(tmp_path, qm9_dir, molecules)
    assert info.value.record == "dsgdb9nsd_000003.xyz" and problem in info.value.problem
    assert "dsgdb9nsd.xyz.tar.bz2" in str(info.value) and "dsgdb9nsd_000003.xyz" in str(info.value)

    res, errors = load_local(tmp_path, qm9_dir, molecules, on_error="skip")
    assert res.table.mol_id.tolist() == [1]
    assert errors.counts == {kind: 1}


def test_truncated_archive_names_the_file(tmp_path, qm9_dir):
    good = write_archive(tmp_path / "good.tar.bz2", {i: methane(i) for i in range(1, 40)})
    bad = tmp_path / "dsgdb9nsd.xyz.tar.bz2"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    for on_error in ("raise", "skip"):
        with pytest.raises(DataFormatError, match="corrupt or truncated bz2 tar archive") as info:
            fs.parse_archive(bad, ErrorPolicy(on_error))
        assert info.value.path == str(bad)
    garbage = tmp_path / "garbage.tar.bz2"
    garbage.write_bytes(b"not an archive at all" * 100)
    with pytest.raises(DataFormatError, match="garbage.tar.bz2"):
        fs.parse_archive(garbage, ErrorPolicy())


def test_small_tables(qm9_dir):
    ids = fs.parse_uncharacterized(qm9_dir / "uncharacterized.txt")
    assert len(ids) == 3054 == len(set(ids.tolist())) and ids[0] == 58 and ids[-1] == 133866
    ref = fs.parse_atomref(qm9_dir / "atomref.txt")
    assert list(ref) == ["H", "C", "N", "O", "F"]
    assert ref["O"] == pytest.approx(
        {
            "zpve_ha": 0.0,
            "u0_ha": -75.064579,
            "u298_ha": -75.063163,
            "h298_ha": -75.062219,
            "g298_ha": -75.079532,
            "cv_cal_per_mol_k": 2.981,
        }
    )
