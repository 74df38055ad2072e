"""Provenance stored in every artifact's metadata: package version, git sha, config hash, seed."""

from __future__ import annotations

import hashlib
import json
import subprocess
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import elign


@lru_cache(maxsize=1)
def git_sha() -> str:
    """The git commit of the elign checkout (``+dirty`` if modified), or ``unknown`` outside git."""
    root = Path(elign.__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def file_sha256(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in ``chunk_bytes`` blocks (1 MiB): the one file hash of elign."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_bytes):
            h.update(block)
    return h.hexdigest()


def config_hash(config: dict) -> str:
    """sha256 of the config's canonical JSON (sorted keys)."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def provenance(config: dict | None = None, seed: int | None = None, **extra) -> dict[str, str]:
    """String-valued provenance record for Parquet schema metadata and JSON sidecars."""
    record = {
        "elign_version": elign.__version__,
        "git_sha": git_sha(),
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if config is not None:
        record["config_hash"] = config_hash(config)
        record["config_json"] = json.dumps(config, sort_keys=True, default=str)
    if seed is not None:
        record["seed"] = str(seed)
    record.update({k: str(v) for k, v in extra.items()})
    return record
