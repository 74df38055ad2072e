"""Backend registry: ``register_backend(name)`` on a factory, ``get_backend(name, **options)`` to build one.

The names live in :data:`elign.registries.MLFF_BACKENDS` (where a built-in backend is declared with the
module that registers it, so that the config can check ``mlff.backend`` without importing torch).
Registering costs nothing: a backend imports its library (torchani, mace-torch, fairchem, ...) only when it
is built, so a missing optional package fails there with a message saying what to ``pip install``.
Importing this module runs ``elign/mlff/__init__.py`` first, which imports every backend module: the registry
is full before any of its functions runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from elign.config import MLFFConfig
from elign.device import resolve_device
from elign.mlff.base import MissingDependencyError, MLFFBackend
from elign.registries import MLFF_BACKENDS

DEFAULT_BACKEND = "ani2x"


def register_backend(name: str) -> Callable:
    """Decorator: register a backend class or factory under ``name`` (case-insensitive). The factory is called
    with the options of :func:`get_backend` (device, dtype, batch_size and the config's backend options)."""
    return MLFF_BACKENDS.decorator(name)


def available_backends() -> list[str]:
    """Names accepted by get_backend (and by ``mlff.backend``), sorted."""
    return MLFF_BACKENDS.names()


def get_backend(name: str = DEFAULT_BACKEND, **options) -> MLFFBackend:
    """Build the backend registered as ``name`` with its options (device, dtype, batch_size, model_path, ...)."""
    return MLFF_BACKENDS.get(name)(**options)


def backend_from_config(cfg: MLFFConfig) -> MLFFBackend:
    """The one MLFF factory from config: the backend an :class:`~elign.config.MLFFConfig` names, with its
    options (device ``auto`` = CUDA when torch sees a GPU)."""
    device = str(resolve_device(cfg.device, "mlff.device"))
    options = {
        k: v
        for k, v in {
            "model_path": cfg.model_path,
            "model": cfg.model,
            "model_index": cfg.model_index,
            "workers": cfg.workers,
            "time_limit_s": cfg.time_limit_s,
            "electronic_temperature_k": cfg.electronic_temperature_k,
        }.items()
        if v is not None
    }
    return get_backend(cfg.backend, device=device, dtype=cfg.dtype, batch_size=cfg.batch_size, **options)


def require(module: str, pip_spec: str, purpose: str, extra: str = ""):
    """Import ``module`` or raise MissingDependencyError naming what to install."""
    package = pip_spec.split("=")[0].split("<")[0].split(">")[0]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if isinstance(exc, ModuleNotFoundError) and exc.name and module.startswith(exc.name):
            message = f"{purpose} needs the Python package {package!r}, which is not installed: pip install {pip_spec}"
        else:
            message = f"{purpose}: importing {module!r} (pip package {package!r}) failed: {exc}"
        if extra:
            message += f". {extra}"
        raise MissingDependencyError(message) from exc
