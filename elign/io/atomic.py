"""Atomic writes: write to a temporary file beside the target, then rename over it.

A killed job never leaves a half-written artifact: either the old file (or none) or the new one exists.
The files one stage writes together (``elign prepare``: train/valid/test + stats) are published together
with :func:`atomic_paths`: all are written to temporary names first and renamed only once every one is
complete, so a failure while writing any of them leaves the previous set as it was.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


def _temporary_beside(path: Path) -> Path:
    """An empty temporary file in ``path``'s folder (created if needed), with the usual permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; artifacts get the usual permissions
    return Path(tmp)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` only if the block succeeds."""
    with atomic_paths([path]) as (tmp,):
        yield tmp


@contextmanager
def atomic_paths(paths: Sequence[str | os.PathLike]) -> Iterator[list[Path]]:
    """Temporary paths for a set of outputs; each is renamed onto its target only if the whole block succeeds.

    The renames follow one another at the end (microseconds apart); until then no target is touched.
    """
    targets, tmps = [Path(p) for p in paths], []
    try:
        for target in targets:
            tmps.append(_temporary_beside(target))
        yield tmps
        for tmp, target in zip(tmps, targets):
            os.replace(tmp, target)
    finally:
        for tmp in tmps:
            if tmp.exists():
                tmp.unlink()


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def json_text(obj) -> str:
    """The JSON files elign writes: indented, keys in insertion order, a final newline."""
    return json.dumps(obj, indent=2, sort_keys=False) + "\n"


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    write_text_atomic(path, json_text(obj))
