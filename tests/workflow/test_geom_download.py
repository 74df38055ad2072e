"""Rule geom_drugs_download on a local archive (file:// URL): the pinned MD5 is checked before anything is
extracted, and drugs_crude.msgpack is found inside the archive wherever it sits."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from elign.config import GeomDrugsSource

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="the rule downloads with curl")


def _run(root: Path, url: str, md5: str | None) -> subprocess.CompletedProcess:
    (root / "geom.yaml").write_text(
        "data:\n  geom_drugs:\n"
        f"    path: resources/geom/drugs_crude.msgpack\n    download_url: {url}\n"
        f"    md5: {repr(md5) if md5 else 'null'}\n"
        "pretrain:\n  init_from: null\n"  # the smoke backbone is not copied here: only the download runs
    )
    exe = str(Path(sys.executable).parent / "snakemake")
    cmd = [
        exe,
        "resources/geom/drugs_crude.msgpack",
        "--cores",
        "1",
        "--configfile",
        "config/experiments/geom_smoke.yaml",
        "geom.yaml",
    ]
    return subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=300)


@pytest.fixture()
def archive(tmp_path, repo_root) -> tuple[Path, str, bytes]:
    """A tar.gz like Dataverse's (here with a folder and a macOS ._ twin), its MD5 and the msgpack's bytes."""
    payload = (repo_root / "tests/fixtures/geom/drugs_crude_fixture.msgpack").read_bytes()
    src = tmp_path / "src/geom"
    src.mkdir(parents=True)
    (src / "._drugs_crude.msgpack").write_bytes(b"not me")
    (src / "drugs_crude.msgpack").write_bytes(payload)
    path = tmp_path / "drugs_crude.msgpack.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name in ("._drugs_crude.msgpack", "drugs_crude.msgpack"):
            tar.add(src / name, arcname=f"geom/{name}")
    return path, hashlib.md5(path.read_bytes()).hexdigest(), payload


@pytest.fixture()
def root(tmp_path, repo_root) -> Path:
    out = tmp_path / "run"
    out.mkdir()
    for name in ("Snakefile", "workflow", "config", "envs", "models"):
        src = repo_root / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, out / name)
    return out


def test_the_pinned_md5_is_dataverses_for_file_4360331():
    source = GeomDrugsSource()
    assert source.download_url.endswith("/datafile/4360331")
    assert source.md5 == "7778e84c50b7cde755cca670d1f75091"


def test_download_checks_md5_then_extracts(root, archive):
    path, md5, payload = archive
    proc = _run(root, path.as_uri(), md5)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (root / "resources/geom/drugs_crude.msgpack").read_bytes() == payload
    assert f"md5 {md5}" in (root / "logs/prepare/geom_drugs_download.log").read_text()


def test_md5_mismatch_stops_before_extracting(root, archive):
    path, md5, _ = archive
    wrong = "0" * 32
    proc = _run(root, path.as_uri(), wrong)
    assert proc.returncode != 0
    log = (root / "logs/prepare/geom_drugs_download.log").read_text()
    assert f"md5 mismatch: resources/geom/drugs_crude.msgpack.tar.gz has {md5}, expected {wrong}" in log
    assert not (root / "resources/geom/drugs_crude.msgpack").exists()
    assert not (root / "resources/geom/drugs_crude.msgpack.tmp").exists()
