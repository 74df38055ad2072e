"""The sample and time-sampling stages: sizes, model, optional MLFF guidance, outputs published together.

``elign sample`` (:func:`run_sample`) writes the Parquet table (our molecule schema plus ``status``,
``reason``, ``sample_seconds``, ``batch``; provenance in its metadata), a JSON summary beside it
(``<out stem>.summary.json``: molecules/s, reverse steps/s, status counts, per-batch seconds), and
optionally SDF / XYZ exports. The sampling seed is ``seed + sample.seed_offset``; atom counts come from
``sample.sizes`` ('histogram' reads ``splits.train.num_atoms_histogram`` of the stats file).
``elign time-sampling`` (:func:`run_time_sampling`) times several models on one batch
(:mod:`elign.diffusion.timing`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from elign.config import ConfigError, ElignConfig, SampleConfig
from elign.data.sizes import resolve_sizes, stage_histogram
from elign.device import resolve_device
from elign.diffusion.checkpoint import load_model
from elign.diffusion.en_diffusion import EnVariationalDiffusion
from elign.diffusion.guidance import MLFFGuidance

log = logging.getLogger("elign.sample")

__all__ = [
    "SampleRequest",
    "summary_path",
    "sample_sizes",
    "load_sampling_model",
    "mlff_guidance",
    "run_sample",
    "run_time_sampling",
]


def summary_path(out: str | Path) -> Path:
    """The default JSON summary beside a samples Parquet: ``<out stem>.summary.json``."""
    out = Path(out)
    return out.with_name(out.stem + ".summary.json")


def sample_sizes(config: ElignConfig, stats: str | Path | None, guided: bool = False) -> list[int]:
    """Atom counts to sample; the guided baseline takes ``guidance_num_molecules`` of them when set."""
    sc = config.sample
    count = sc.guidance_num_molecules if guided and sc.guidance_num_molecules else sc.num_molecules
    hist = stage_histogram(stats, "sample.sizes") if sc.sizes == "histogram" else None
    try:
        return resolve_sizes(sc.sizes, count, config.seed + sc.seed_offset, hist)
    except ValueError as exc:
        raise ConfigError(f"sample.sizes: {exc}") from None


def load_sampling_model(path: str | Path, use_ema: bool, device: torch.device) -> EnVariationalDiffusion:
    """The float32 model of a checkpoint on ``device``; a damaged file is a ConfigError naming ``--model``."""
    try:
        model = load_model(path, use_ema=use_ema, dtype=torch.float32)
    except ValueError as exc:
        raise ConfigError(f"--model: {exc}") from None
    return model.to(device)


def mlff_guidance(sc: SampleConfig, scale: float | None = None) -> MLFFGuidance:
    """The MLFF guidance hook of ``sample.guidance_mlff``; scale: λ (eV⁻¹), None = sample.guidance_scale."""
    from elign.mlff import registry  # looked up at call time: tests replace the factory

    scale = sc.guidance_scale if scale is None else scale
    if scale < 0:
        raise ConfigError(f"--guidance-scale must be >= 0, got {scale}")
    return MLFFGuidance(
        registry.backend_from_config(sc.guidance_mlff), scale, sc.guidance_max_step_sigma, sc.guidance_max_t
    )


@dataclass(frozen=True)
class SampleRequest:
    """What ``elign sample`` was asked for (paths as given; None = not written / the default)."""

    model: str
    out: str
    stats: str | None = None
    sdf: str | None = None
    xyz: str | None = None
    summary: str | None = None
    compile: bool = False
    guidance: str = "none"
    guidance_scale: float | None = None


def _summary(
    result, req: SampleRequest, seed: int, device: torch.device, batch_size: int, hook: MLFFGuidance | None
) -> dict[str, Any]:
    summary = result.summary()
    summary.update(
        {
            "seed": seed,
            "device": str(device),
            "model": req.model,
            "batch_size": batch_size,
            "compiled": bool(req.compile),
            "parquet": req.out,
            "sdf": req.sdf,
            "xyz": req.xyz,
            "batches": [
                {"molecules": int(n), "max_atoms": int(a), "seconds": float(s)}
                for n, a, s in zip(result.batch_sizes, result.batch_max_atoms, result.batch_seconds)
            ],
        }
    )
    summary.update(hook.summary() if hook is not None else {"guidance": "none", "guidance_seconds": 0.0})
    return summary


def _publish(req: SampleRequest, table, meta: dict, summary: dict) -> None:
    """Parquet, summary JSON and the optional exports, published together: a failure leaves the previous
    set as it was."""
    from elign.io.atomic import atomic_paths, json_text
    from elign.io.molecules import write_molecules
    from elign.stages.export import write_sdf, write_xyz

    outputs = [req.out, req.summary or summary_path(req.out)] + [p for p in (req.sdf, req.xyz) if p]
    with atomic_paths(outputs) as tmps:
        write_molecules(tmps[0], table, meta)
        tmps[1].write_text(json_text(summary))
        for tmp, write in zip(tmps[2:], [w for p, w in ((req.sdf, write_sdf), (req.xyz, write_xyz)) if p]):
            write(tmp, table)


def run_sample(
    config: ElignConfig, req: SampleRequest, progress: Callable[[int, int], Any] | None = None
) -> dict[str, Any]:
    """Sample ``config.sample`` from ``req.model`` and write the outputs; returns the summary.

    progress(n_batches, T): a context manager factory whose value is called with 1 after each reverse step
    (the CLI's progress bar), or None.
    """
    from contextlib import nullcontext

    from elign.diffusion.sampler import compile_network, plan_batches, sample_molecules
    from elign.io.provenance import provenance

    sc = config.sample
    seed = config.seed + sc.seed_offset
    sizes = sample_sizes(config, req.stats, guided=req.guidance != "none")
    device = resolve_device(sc.device, "sample.device")
    model = load_sampling_model(req.model, sc.use_ema, device)
    if req.compile:
        compile_network(model)
    hook = None if req.guidance == "none" else mlff_guidance(sc, req.guidance_scale)
    n_batches = len(plan_batches(sizes, sc.batch_size, sc.max_batch_edges))
    log.info(
        "sampling %d molecules (%d batches of <= %d, T = %d) on %s, seed %d",
        len(sizes),
        n_batches,
        sc.batch_size,
        model.T,
        device,
        seed,
    )
    with progress(n_batches, model.T) if progress is not None else nullcontext(None) as step:
        result = sample_molecules(
            model,
            sizes,
            sc.batch_size,
            seed,
            sc.max_abs_position_ang,
            hook=hook,
            progress=step,
            max_edges=sc.max_batch_edges,
        )
    if hook is not None:  # one guidance status per molecule: a molecule the MLFF could not score is a row, not a 0
        result.table.columns.update(hook.molecule_columns(len(sizes)))
    meta = provenance(
        config.model_dump(mode="json"),
        seed=seed,
        stage="sample",
        model=req.model,
        device=device,
        torch_version=torch.__version__,
        compiled=bool(req.compile),
        guidance=req.guidance if hook is None else f"mlff(scale={hook.scale:g})",
    )
    summary = _summary(result, req, seed, device, sc.batch_size, hook)
    summary["max_batch_edges"] = sc.max_batch_edges
    _publish(req, result.table, meta, summary)
    log.info(
        "%d molecules in %.1f s (%.3g molecules/s, %.3g batch steps/s); status %s",
        summary["num_molecules"],
        summary["sample_seconds"],
        summary["molecules_per_s"],
        summary["batch_steps_per_s"],
        summary["status_counts"],
    )
    return summary


def run_time_sampling(
    config: ElignConfig,
    models: Sequence[tuple[str, str]],
    guided: Sequence[tuple[str, str]],
    stats: str | None,
    out: str | Path,
) -> dict[str, Any]:
    """Time every (name, checkpoint) of ``models`` (the first is the baseline) and of ``guided`` (with the
    MLFF guidance hook) on one batch, interleaved; write the JSON to ``out`` and return it."""
    from elign.diffusion.timing import TimedModel, time_models
    from elign.io.atomic import write_json_atomic
    from elign.io.provenance import provenance

    sc, timing = config.sample, config.sample.timing
    if not models:
        raise ConfigError("pass at least one --model NAME=PATH (the baseline)")
    names = [n for n, _ in list(models) + list(guided)]
    if len(set(names)) != len(names):
        raise ConfigError(f"model names must be unique, got {names}")
    device = resolve_device(sc.device, "sample.device")
    timed = {}
    for name, path in list(models) + list(guided):
        model = load_sampling_model(path, sc.use_ema, device)
        hook, fraction = None, 1.0
        if (name, path) in guided:
            hook = mlff_guidance(sc)
            fraction = hook.active_fraction(model.T)
            hook.max_t = None  # timed acting at every step; the chain's share of such steps is `fraction`
        timed[name] = TimedModel(model, hook, hook_fraction=fraction)
    sizes_config = config.model_copy(update={"sample": sc.model_copy(update={"num_molecules": timing.molecules})})
    sizes = sample_sizes(sizes_config, stats)
    log.info(
        "timing %s: %d molecules, %d of %d steps, %d interleaved reps on %s",
        names,
        len(sizes),
        timing.steps,
        next(iter(timed.values())).model.T,
        timing.reps,
        device,
    )
    result = time_models(timed, sizes, timing.steps, timing.reps, seed=config.seed + sc.seed_offset)
    result.update(
        device=str(device),
        threads=torch.get_num_threads(),
        baseline=names[0],
        checkpoints={n: p for n, p in list(models) + list(guided)},
        guided=[n for n, _ in guided],
        provenance=provenance(config.model_dump(mode="json"), seed=config.seed + sc.seed_offset, stage="time-sampling"),
    )
    write_json_atomic(out, result)
    for name, row in result["models"].items():
        log.info(
            "%-12s %.4g s/step, %.4g s/molecule (T steps), ratio %.4f",
            name,
            row["seconds_per_step"],
            row["seconds_per_molecule"],
            result[f"ratio_vs_{names[0]}"][name],
        )
    return result
