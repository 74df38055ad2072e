"""``elign sample``: sample molecules from a model checkpoint with the reverse diffusion chain.

Writes the Parquet table (our molecule schema plus ``status``, ``reason``, ``sample_seconds``, ``batch``;
provenance in its metadata), a JSON summary beside it (``<out stem>.summary.json``: molecules/s, reverse
steps/s, status counts, per-batch seconds), and optionally ``--sdf`` / ``--xyz`` exports. The sampling
seed is ``seed + sample.seed_offset``; atom counts come from ``sample.sizes`` ('histogram' reads
``splits.train.num_atoms_histogram`` of ``--stats``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from elign.cli.options import add_config_options, resolve_config
from elign.config import ConfigError

log = logging.getLogger("elign.sample")


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="sample molecules from a model; write Parquet (+ SDF / XYZ) and a JSON summary")
    add_config_options(p)
    p.add_argument("--model", required=True, help="our checkpoint, e.g. results/models/qm9/pretrained.pt")
    p.add_argument("--stats", default=None, help="stats.json of the data stage (needed when sizes = 'histogram')")
    p.add_argument("--out", required=True, help="Parquet output, e.g. results/samples/qm9/pretrained.parquet")
    p.add_argument("--sdf", default=None, help="also write an SD file (bonds from EDM's distance rule)")
    p.add_argument("--xyz", default=None, help="also write a multi-frame XYZ file")
    p.add_argument("--summary", default=None, help="JSON summary path (default: <out stem>.summary.json)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the network first (pays for long runs of big models; round-off differs "
                        "from eager)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: torch's); 1 is often fastest on a shared machine")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--guidance", choices=("none", "mlff"), default="none",
                   help="mlff: MLFF-guided baseline, mean += scale * sigma^2 * F(x0_hat) each step (elign.rl.guidance)")
    p.add_argument("--guidance-scale", type=float, default=None,
                   help="overrides sample.guidance_scale (1/(k_B T) in 1/eV)")
    p.set_defaults(run=run)


def summary_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.stem + ".summary.json")


def _device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("sample.device is 'cuda' but torch sees no CUDA device")
    return torch.device(name)


def _sizes(config, stats: str | None, guided: bool = False) -> list[int]:
    """Atom counts to sample; the guided baseline takes ``guidance_num_molecules`` of them when set."""
    from elign.diffusion.sampler import load_size_histogram, resolve_sizes

    sc = config.sample
    count = sc.guidance_num_molecules if guided and sc.guidance_num_molecules else sc.num_molecules
    hist = None
    if sc.sizes == "histogram":
        if stats is None:
            raise ConfigError("sample.sizes is 'histogram': pass --stats results/data/<dataset>/stats.json")
        try:
            hist = load_size_histogram(stats)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    try:
        return resolve_sizes(sc.sizes, count, config.seed + sc.seed_offset, hist)
    except ValueError as exc:
        raise ConfigError(f"sample.sizes: {exc}") from None


def _load(path: str, use_ema: bool, device):
    import torch

    from elign.diffusion.factory import load_model

    try:
        model = load_model(path, use_ema=use_ema, dtype=torch.float32)
    except ValueError as exc:
        raise ConfigError(f"--model: {exc}") from None
    return model.to(device)


def _guidance(args, sc):
    """The MLFF guidance hook (or None), from sample.guidance_mlff and the scale (flag beats config)."""
    if args.guidance == "none":
        return None
    return mlff_guidance(sc, args.guidance_scale)


def mlff_guidance(sc, scale: float | None = None):
    """The MLFF guidance hook of ``sample.guidance_mlff``; scale: λ (eV⁻¹), None = sample.guidance_scale."""
    from elign.rl.guidance import MLFFGuidance
    from elign.rl.rewards import backend_from_config

    scale = sc.guidance_scale if scale is None else scale
    if scale < 0:
        raise ConfigError(f"--guidance-scale must be >= 0, got {scale}")
    return MLFFGuidance(backend_from_config(sc.guidance_mlff), scale, sc.guidance_max_step_sigma, sc.guidance_max_t)


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from elign.diffusion.sampler import compile_network, plan_batches, sample_molecules
    from elign.io.atomic import atomic_paths, json_text
    from elign.io.export import write_sdf, write_xyz
    from elign.io.molecules import write_molecules
    from elign.io.provenance import provenance

    config = resolve_config(args)
    sc = config.sample
    if args.threads is not None:
        torch.set_num_threads(max(1, args.threads))
    seed = config.seed + sc.seed_offset
    sizes = _sizes(config, args.stats, guided=args.guidance != "none")
    device = _device(sc.device)
    model = _load(args.model, sc.use_ema, device)
    if args.compile:
        compile_network(model)
    hook = _guidance(args, sc)
    n_batches = len(plan_batches(sizes, sc.batch_size))
    log.info("sampling %d molecules (%d batches of <= %d, T = %d) on %s, seed %d",
             len(sizes), n_batches, sc.batch_size, model.T, device, seed)
    with tqdm(total=n_batches * model.T, desc="reverse steps", unit="step", mininterval=2.0,
              disable=args.no_progress) as bar:
        result = sample_molecules(model, sizes, sc.batch_size, seed, sc.max_abs_position_ang,
                                  hook=hook, progress=bar.update)
    meta = provenance(config.model_dump(mode="json"), seed=seed, stage="sample", model=args.model,
                      device=device, torch_version=torch.__version__, compiled=bool(args.compile),
                      guidance=args.guidance if hook is None else f"mlff(scale={hook.scale:g})")
    summary = result.summary()
    summary.update({"seed": seed, "device": str(device), "model": args.model, "batch_size": sc.batch_size,
                    "compiled": bool(args.compile), "parquet": args.out, "sdf": args.sdf, "xyz": args.xyz,
                    "batches": [{"molecules": int(n), "max_atoms": int(a), "seconds": float(s)} for n, a, s in
                                zip(result.batch_sizes, result.batch_max_atoms, result.batch_seconds)]})
    summary.update(hook.summary() if hook is not None else {"guidance": "none", "guidance_seconds": 0.0})
    outputs = [args.out, args.summary or summary_path(args.out)] + [p for p in (args.sdf, args.xyz) if p]
    with atomic_paths(outputs) as tmps:  # published together: a failure leaves the previous set as it was
        write_molecules(tmps[0], result.table, meta)
        tmps[1].write_text(json_text(summary))
        for tmp, write in zip(tmps[2:], [w for p, w in ((args.sdf, write_sdf), (args.xyz, write_xyz)) if p]):
            write(tmp, result.table)
    log.info("%d molecules in %.1f s (%.3g molecules/s, %.3g batch steps/s); status %s",
             summary["num_molecules"], summary["sample_seconds"], summary["molecules_per_s"],
             summary["batch_steps_per_s"], summary["status_counts"])
    return 0
