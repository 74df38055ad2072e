"""Import EDM checkpoints (ehoogeboom/e3_diffusion_for_molecules) into our model.

EDM writes ``args.pickle`` (an ``argparse.Namespace``) and ``generative_model[_ema].npy`` (a ``torch.save``d
state dict of ``EnVariationalDiffusion``) per run. :func:`load_edm_args` reads the pickle with an
unpickler that accepts ``argparse.Namespace`` and nothing else (or a JSON file of the same fields);
:func:`import_edm` builds our model from the args, renames EDM's keys onto ours and loads them, refusing
any architecture mismatch with a message that names the key and both shapes. :func:`import_edm_files` is
the one way the stages read an EDM run from its two files (``elign import-edm``, ``pretrain.source.kind: edm``).

Key mapping (EDM -> ours)::

    dynamics.egnn.embedding[_out].*            -> dynamics.egnn.embedding[_out].*
    dynamics.egnn.e_block_{i}.gcl_{j}.*        -> dynamics.egnn.blocks.{i}.gcls.{j}.*
    dynamics.egnn.e_block_{i}.gcl_equiv.*      -> dynamics.egnn.blocks.{i}.coord_update.*
    gamma.gamma                                -> schedule.gamma   (EDM's stored float32 γ table)
    buffer                                     -> dropped (EDM's device-tracking zero)
"""

from __future__ import annotations

import argparse
import json
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from elign.model.presets import EDM_DIFFUSION, GEOM_ATOM_DECODER, MODEL_CONFIG_FORMAT, QM9_ATOM_DECODER


class EDMImportError(ValueError):
    """An EDM run description or state dict that our model cannot represent exactly."""


class _NamespaceOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("argparse", "Namespace"):
            return argparse.Namespace
        raise EDMImportError(
            f"refusing to unpickle {module}.{name}: an EDM args pickle may only contain "
            "argparse.Namespace (and plain values)"
        )


def load_edm_args(path: str | Path) -> argparse.Namespace:
    """EDM run arguments from ``args.pickle`` (restricted unpickling) or a JSON file.

    JSON: either the flat field dict or ``{"config": {...}, ...}`` (the layout of our reference files).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"EDM args file {path} does not exist")
    if path.suffix.lower() == ".json":
        data = json.loads(path.read_text())
        if isinstance(data, dict) and isinstance(data.get("config"), dict):
            data = data["config"]
        if not isinstance(data, dict):
            raise EDMImportError(f"{path}: expected a JSON object of EDM arguments")
        return argparse.Namespace(**data)
    with path.open("rb") as fh:
        try:
            args = _NamespaceOnlyUnpickler(fh).load()
        except EDMImportError as exc:
            raise EDMImportError(f"{path}: {exc}") from None
        except Exception as exc:
            raise EDMImportError(f"{path} is not a readable EDM args pickle: {exc}") from exc
    if not isinstance(args, argparse.Namespace):
        raise EDMImportError(f"{path}: expected an argparse.Namespace, found {type(args).__name__}")
    return args


def _as_dict(args: argparse.Namespace | Mapping[str, Any] | str | Path) -> dict[str, Any]:
    if isinstance(args, (str, Path)):
        args = load_edm_args(args)
    return dict(vars(args)) if isinstance(args, argparse.Namespace) else dict(args)


def _atom_decoder(a: Mapping[str, Any], atom_decoder: list[str] | None) -> list[str]:
    if atom_decoder is not None:
        return list(atom_decoder)
    if a.get("atom_decoder"):
        return list(a["atom_decoder"])
    dataset, remove_h = a.get("dataset"), bool(a.get("remove_h", False))
    if dataset in ("qm9", "qm9_second_half", "qm9_first_half"):
        return list(QM9_ATOM_DECODER[1:] if remove_h else QM9_ATOM_DECODER)
    if dataset == "geom" and not remove_h:
        return list(GEOM_ATOM_DECODER)
    raise EDMImportError(
        f"cannot tell the atom types of EDM dataset {dataset!r} (remove_h={remove_h}); pass atom_decoder=[...]"
    )


def edm_args_to_model_config(
    args: argparse.Namespace | Mapping[str, Any] | str | Path, atom_decoder: list[str] | None = None
) -> dict[str, Any]:
    """Our model-config dict (see elign.model.presets) for an EDM run description.

    Old EDM runs lack ``normalization_factor`` / ``aggregation_method``; EDM's own evaluation scripts then
    use 1 and 'sum', and so do we.
    """
    a = _as_dict(args)
    if a.get("model", "egnn_dynamics") != "egnn_dynamics":
        raise EDMImportError(f"EDM model {a.get('model')!r} is not supported (only 'egnn_dynamics')")
    if a.get("probabilistic_model", "diffusion") != "diffusion":
        raise EDMImportError(f"EDM probabilistic_model {a.get('probabilistic_model')!r} is not 'diffusion'")
    missing = [k for k in ("nf", "n_layers", "include_charges") if k not in a]
    if missing:
        raise EDMImportError(f"EDM args lack {missing}")
    if a.get("aggregation_method", "sum") != "sum":
        raise EDMImportError(f"EDM aggregation_method {a['aggregation_method']!r}: only 'sum' is supported")
    decoder = _atom_decoder(a, atom_decoder)
    charges = bool(a["include_charges"])
    context_nf = int(a.get("context_node_nf", 0) or 0)
    dynamics = {
        "in_node_nf": len(decoder) + int(charges),
        "hidden_nf": int(a["nf"]),
        "n_layers": int(a["n_layers"]),
        "inv_sublayers": int(a.get("inv_sublayers", 1)),
        "attention": bool(a.get("attention", True)),
        "tanh": bool(a.get("tanh", True)),
        "coords_range": 15.0,
        "norm_constant": float(a.get("norm_constant", 1)),
        "normalization_factor": float(a.get("normalization_factor", 1)),
        "aggregation_method": "sum",
        "sin_embedding": bool(a.get("sin_embedding", False)),
        "condition_time": bool(a.get("condition_time", True)),
        "context_node_nf": context_nf,
    }
    diffusion = dict(EDM_DIFFUSION)
    diffusion.update(
        {
            "timesteps": int(a.get("diffusion_steps", 1000)),
            "noise_schedule": str(a.get("diffusion_noise_schedule", "polynomial_2")),
            "noise_precision": float(a.get("diffusion_noise_precision", 1e-5)),
            "loss_type": str(a.get("diffusion_loss_type", "l2")),
            "normalize_factors": [float(v) for v in a.get("normalize_factors", [1, 4, 10])],
        }
    )
    return {
        "format": MODEL_CONFIG_FORMAT,
        "atom_decoder": decoder,
        "include_charges": charges,
        "dynamics": dynamics,
        "diffusion": diffusion,
    }


_BLOCK_RE = re.compile(r"^dynamics\.egnn\.e_block_(\d+)\.(gcl_(\d+)|gcl_equiv)\.(.+)$")
_PLAIN = re.compile(r"^dynamics\.egnn\.(embedding|embedding_out)\.(weight|bias)$")


def map_edm_key(key: str) -> str | None:
    """Our name for an EDM state-dict key (None for keys we drop); EDMImportError for unknown keys."""
    if key == "buffer":
        return None
    if key == "gamma.gamma":
        return "schedule.gamma"
    if _PLAIN.match(key):
        return key
    m = _BLOCK_RE.match(key)
    if m:
        block, sub, j, rest = m.groups()
        inner = f"gcls.{j}" if sub != "gcl_equiv" else "coord_update"
        return f"dynamics.egnn.blocks.{block}.{inner}.{rest}"
    raise EDMImportError(
        f"unexpected key {key!r} in the EDM state dict (learned noise schedules and gnn_dynamics are not supported)"
    )


def map_edm_state_dict(state_dict: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(our state dict, our key -> EDM key) for an EDM ``EnVariationalDiffusion`` state dict."""
    mapped, origin = {}, {}
    for key, value in state_dict.items():
        ours = map_edm_key(key)
        if ours is not None:
            mapped[ours], origin[ours] = value, key
    return mapped, origin


def _check_compatible(
    expected: Mapping[str, torch.Tensor],
    given: Mapping[str, torch.Tensor],
    origin: Mapping[str, str],
    config: Mapping[str, Any],
) -> None:
    dyn = config["dynamics"]
    n_blocks = {int(m.group(1)) for k in origin.values() if (m := _BLOCK_RE.match(k))}
    if len(n_blocks) != dyn["n_layers"]:
        raise EDMImportError(
            f"architecture mismatch: the EDM state dict has {len(n_blocks)} equivariant blocks "
            f"(e_block_*), the args say n_layers={dyn['n_layers']}"
        )
    missing = sorted(set(expected) - set(given))
    if missing:
        raise EDMImportError(
            f"architecture mismatch: the EDM state dict lacks {missing[0]!r} (our name; "
            f"{len(missing)} missing in all) that the args (nf={dyn['hidden_nf']}, n_layers="
            f"{dyn['n_layers']}, inv_sublayers={dyn['inv_sublayers']}, attention={dyn['attention']}) "
            "require"
        )
    extra = sorted(set(given) - set(expected))
    if extra:
        raise EDMImportError(
            f"architecture mismatch: the EDM state dict has {origin[extra[0]]!r} that a model "
            f"built from the args does not (inv_sublayers={dyn['inv_sublayers']}, attention="
            f"{dyn['attention']})"
        )
    for key, ref in expected.items():
        if tuple(given[key].shape) != tuple(ref.shape):
            raise EDMImportError(
                f"architecture mismatch at {origin[key]!r}: the checkpoint holds shape {tuple(given[key].shape)}, "
                f"a model built from the args expects {tuple(ref.shape)} (nf={dyn['hidden_nf']}, atom features="
                f"{dyn['in_node_nf']} incl. charges, time={dyn['condition_time']}, context={dyn['context_node_nf']}, "
                f"timesteps={config['diffusion']['timesteps']})"
            )


def _check_schedule(model: torch.nn.Module, stored: torch.Tensor) -> None:
    rebuilt = model.schedule.gamma.detach().double()
    diff = (stored.detach().double() - rebuilt).abs().max().item()
    if not np.isfinite(diff) or diff > 1e-4:
        raise EDMImportError(
            f"the stored noise schedule differs from the args' "
            f"{model.config.noise_schedule!r} (precision {model.config.noise_precision}) "
            f"by up to {diff:.3g} in gamma"
        )


def import_edm(
    args: argparse.Namespace | Mapping[str, Any] | str | Path,
    state_dict: Mapping[str, torch.Tensor] | str | Path,
    atom_decoder: list[str] | None = None,
    dtype: torch.dtype | None = None,
):
    """(our EnVariationalDiffusion in eval mode, our model-config dict) from an EDM run.

    Args:
        args: EDM's Namespace, a dict of its fields, or a path (.pickle / .json).
        state_dict: EDM's state dict or a path to ``generative_model[_ema].npy``.
        atom_decoder: element symbols of the one-hot columns, if the args do not imply them.
        dtype: model dtype; default: the dtype of the checkpoint's tensors.
    The stored γ table is used as is (it is checked against the args' schedule).
    """
    from elign.diffusion.factory import build_model  # diffusion sits above model; imported on use

    config = edm_args_to_model_config(args, atom_decoder)
    if isinstance(state_dict, (str, Path)):
        state_dict = torch.load(state_dict, map_location="cpu", weights_only=True)
    mapped, origin = map_edm_state_dict(state_dict)
    model = build_model(config)
    _check_compatible(model.state_dict(), mapped, origin, config)
    _check_schedule(model, mapped["schedule.gamma"])
    if dtype is None:
        dtype = next(v.dtype for k, v in mapped.items() if k != "schedule.gamma" and v.is_floating_point())
    model = model.to(dtype)
    model.load_state_dict(mapped, strict=True)
    return model.eval(), config


def import_edm_files(
    args_path: str | Path, weights_path: str | Path, atom_decoder: list[str] | None = None
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """:func:`import_edm` of an EDM run's files (``args.pickle`` or its JSON, ``generative_model[_ema].npy``):
    a missing weights file is FileNotFoundError, an unreadable one or a mismatch one EDMImportError naming
    the files."""
    weights = Path(weights_path)
    if not weights.is_file():
        raise FileNotFoundError(f"EDM weights file {weights} does not exist")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a file that is not a tensor pickle
        raise EDMImportError(f"{weights} is not a readable EDM state dict: {exc}") from None
    if not isinstance(state, dict):
        raise EDMImportError(f"{weights}: expected a state dict, found {type(state).__name__}")
    try:
        return import_edm(args_path, state, atom_decoder=atom_decoder)
    except EDMImportError as exc:
        raise EDMImportError(f"{args_path} + {weights}: {exc}") from None
