"""Our checkpoint format: one ``torch.save`` dict, written atomically, read with ``weights_only=True``.

Layout (format ``elign.checkpoint/1``)::

    {"format": "elign.checkpoint/1",
     "elign_version": "0.1.0",
     "model_config": {...},           # see elign.model.presets (architecture + diffusion hyper-parameters)
     "state_dict": {...},             # EnVariationalDiffusion.state_dict() (includes the γ table)
     "ema_state_dict": {...} | None,  # EMA weights (EDM: decay 0.9999), same keys
     "extra": {...}}                  # free-form metadata: plain Python values and tensors only

A killed writer never leaves a half-written file: the dict goes to a temporary file in the target folder,
is flushed and fsync'ed, then moved over the target with ``os.replace``.

Reading checks, before any weight reaches a model, that the file is one (not a folder, not empty, a
complete torch archive), that it has our format and keys, and that ``state_dict`` and ``ema_state_dict``
hold exactly the tensors, of the shapes, that ``model_config`` builds, all finite. Each failure is one
:class:`CheckpointError` naming the file and the mismatch, never torch's ``size mismatch`` traceback.

:func:`load_model` / :func:`model_from_checkpoint` turn a checkpoint into a model in eval mode.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import elign
from elign.diffusion.en_diffusion import EnVariationalDiffusion
from elign.diffusion.factory import build_model
from elign.io.errors import DataFormatError

CHECKPOINT_FORMAT = "elign.checkpoint/1"
_LISTED = 3  # tensor names quoted in a message before "and N more"


class CheckpointError(DataFormatError):
    """A checkpoint that cannot be used; the message is ``<file>: <problem>``."""

    def __init__(self, path: str | Path, problem: str):
        super().__init__(str(path), None, problem)


def save_checkpoint(
    path: str | Path,
    model_config: Mapping[str, Any],
    state_dict: Mapping[str, torch.Tensor],
    ema_state_dict: Mapping[str, torch.Tensor] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically; returns the path. Parent folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "elign_version": elign.__version__,
        "model_config": dict(model_config),
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        "ema_state_dict": None if ema_state_dict is None else {k: v.detach().cpu() for k, v in ema_state_dict.items()},
        "extra": dict(extra or {}),
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _names(names: list[str]) -> str:
    more = f" and {len(names) - _LISTED} more" if len(names) > _LISTED else ""
    return ", ".join(repr(n) for n in names[:_LISTED]) + more


def _read(path: Path, map_location) -> tuple[Any, str]:
    """The unpickled object of ``path`` (tensors and plain values only) and the file's sha256, reading the
    file once; or a CheckpointError."""
    if path.is_dir():
        found = sorted(p.name for p in path.glob("*.pt"))
        raise CheckpointError(
            path, "is a folder, not a checkpoint file" + (f" (it holds {_names(found)})" if found else "")
        )
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(path, "is empty (0 bytes): an interrupted copy or download?")
    data = path.read_bytes()
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise CheckpointError(
            path,
            f"is not a complete torch checkpoint archive ({size} bytes without the zip "
            "directory torch.save ends with): truncated, or another kind of file",
        )
    try:
        return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True), hashlib.sha256(
            data
        ).hexdigest()
    except Exception as exc:  # torch raises many types for damaged archives; all mean "unreadable"
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else "no reason given"
        raise CheckpointError(path, f"is not a readable elign checkpoint ({type(exc).__name__}: {reason})") from exc


def _state_problem(state: Any, expected: Mapping[str, torch.Size]) -> str | None:
    """How a state dict differs from the tensors a model has (names, shapes, finiteness), or None."""
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        return "it is not a mapping of tensor names to tensors"
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        return "; ".join(
            ([f"missing tensors {_names(missing)}"] if missing else [])
            + ([f"unexpected tensors {_names(unexpected)}"] if unexpected else [])
        )
    for name, shape in expected.items():
        if state[name].shape != shape:
            return f"tensor {name!r} has shape {tuple(state[name].shape)}, the model_config needs {tuple(shape)}"
        if state[name].is_floating_point() and not bool(torch.isfinite(state[name]).all()):
            return f"tensor {name!r} holds non-finite values"
    return None


def check_architecture(ckpt: Mapping[str, Any], path: str | Path) -> None:
    """CheckpointError unless the weights are exactly those of the model ``ckpt["model_config"]`` builds."""
    with torch.random.fork_rng(devices=[]):  # building initialises weights: leave the global RNG as it was
        try:
            model = build_model(ckpt["model_config"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CheckpointError(path, f"model_config does not describe a model: {exc}") from exc
    expected = {name: t.shape for name, t in model.state_dict().items()}
    for key in ("state_dict", "ema_state_dict"):
        if key == "ema_state_dict" and ckpt.get(key) is None:
            continue
        problem = _state_problem(ckpt[key], expected)
        if problem is not None:
            raise CheckpointError(
                path,
                f"{key} does not fit the checkpoint's model_config: {problem} "
                "(weights of another architecture, or a damaged file)",
            )


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A checkpoint read once: its path, its checked content and the file's sha256 (its identity)."""

    path: Path
    checkpoint: dict[str, Any]
    sha256: str


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and check one of our checkpoints (safe unpickling: tensors and plain values only; module doc)."""
    return read_checkpoint(path, map_location).checkpoint


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> LoadedCheckpoint:
    """:func:`load_checkpoint` that also returns the file's sha256, from the one read of the file."""
    path = Path(path)
    ckpt, sha256 = _read(path, map_location)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(
            path,
            f"is not an elign checkpoint (format {found!r}, expected {CHECKPOINT_FORMAT!r}); "
            "EDM's generative_model*.npy files load with elign.diffusion.edm_import.import_edm",
        )
    for key in ("model_config", "state_dict"):
        if key not in ckpt:
            raise CheckpointError(path, f"the checkpoint lacks {key!r}")
    if not isinstance(ckpt["model_config"], dict) or not isinstance(ckpt.get("extra", {}), dict):
        raise CheckpointError(path, "model_config and extra must be mappings")
    check_architecture(ckpt, path)
    return LoadedCheckpoint(path, ckpt, sha256)


def load_model(
    path: str | Path, use_ema: bool = True, dtype: torch.dtype | None = None, map_location: str | torch.device = "cpu"
) -> EnVariationalDiffusion:
    """Model from one of our checkpoints (EMA weights when present and ``use_ema``), in eval mode.

    dtype: default = the dtype the weights were saved in (the stored γ table is loaded as saved).
    """
    return model_from_checkpoint(load_checkpoint(path, map_location=map_location), use_ema, dtype)


def model_from_checkpoint(
    ckpt: Mapping[str, Any], use_ema: bool = True, dtype: torch.dtype | None = None
) -> EnVariationalDiffusion:
    """Model from a checkpoint already read (:func:`read_checkpoint`); as
    :func:`load_model`."""
    model = build_model(ckpt["model_config"])
    state = ckpt.get("ema_state_dict") if use_ema and ckpt.get("ema_state_dict") is not None else ckpt["state_dict"]
    if dtype is None:  # the dtype the weights were saved in
        dtype = next(
            (v.dtype for k, v in state.items() if k != "schedule.gamma" and v.is_floating_point()),
            torch.get_default_dtype(),
        )
    model = model.to(dtype)
    model.load_state_dict(state, strict=True)
    return model.eval()
