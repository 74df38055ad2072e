"""``elign time-sampling``: sampling time of every model on the same batch, interleaved, in one process.

::

    elign time-sampling --config config/config.yaml --stats results/data/qm9/stats.json \\
        --model pretrained=results/models/qm9/pretrained.pt --model aligned=results/models/qm9/aligned.pt \\
        --guided guided=results/models/qm9/pretrained.pt --out results/timing/qm9/sampling.json --threads 1

The first ``--model`` is the baseline of the ratios. ``--guided NAME=PATH`` times that checkpoint with the
MLFF guidance hook of ``sample.guidance_mlff`` / ``sample.guidance_scale``. Settings: ``sample.timing``.
Method and output: :mod:`elign.diffusion.timing`.
"""

from __future__ import annotations

import argparse
import logging

from elign.cli.options import add_config_options, named_path, resolve_config
from elign.config import ConfigError

log = logging.getLogger("elign.time_sampling")


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="time sampling of several models on one batch (interleaved repeats)")
    add_config_options(p)
    p.add_argument("--model", type=named_path, action="append", default=[], metavar="NAME=PATH",
                   help="a checkpoint to time (repeat); the first is the baseline of the ratios")
    p.add_argument("--guided", type=named_path, action="append", default=[], metavar="NAME=PATH",
                   help="a checkpoint timed with MLFF guidance (sample.guidance_mlff, sample.guidance_scale)")
    p.add_argument("--stats", default=None, help="stats.json (atom counts from the training histogram)")
    p.add_argument("--out", required=True, help="JSON, e.g. results/timing/qm9/sampling.json")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (as the sample rule)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from elign.cli.sample import _device, _load, _sizes, mlff_guidance
    from elign.diffusion.timing import TimedModel, time_models
    from elign.io.atomic import write_json_atomic
    from elign.io.provenance import provenance

    config = resolve_config(args)
    sc, timing = config.sample, config.sample.timing
    if not args.model:
        raise ConfigError("pass at least one --model NAME=PATH (the baseline)")
    names = [n for n, _ in args.model + args.guided]
    if len(set(names)) != len(names):
        raise ConfigError(f"model names must be unique, got {names}")
    if args.threads is not None:
        torch.set_num_threads(max(1, args.threads))
    device = _device(sc.device)
    models = {}
    for name, path in args.model + args.guided:
        model = _load(path, sc.use_ema, device)
        hook, fraction = None, 1.0
        if (name, path) in args.guided:
            hook = mlff_guidance(sc)
            fraction = hook.active_fraction(model.T)
            hook.max_t = None  # timed acting at every step; the chain's share of such steps is `fraction`
        models[name] = TimedModel(model, hook, hook_fraction=fraction)
    sizes_config = config.model_copy(update={"sample": sc.model_copy(update={"num_molecules": timing.molecules})})
    sizes = _sizes(sizes_config, args.stats)
    log.info("timing %s: %d molecules, %d of %d steps, %d interleaved reps on %s", names, len(sizes),
             timing.steps, next(iter(models.values())).model.T, timing.reps, device)
    result = time_models(models, sizes, timing.steps, timing.reps, seed=config.seed + sc.seed_offset)
    result.update(device=str(device), threads=torch.get_num_threads(), baseline=names[0],
                  checkpoints={n: p for n, p in args.model + args.guided}, guided=[n for n, _ in args.guided],
                  provenance=provenance(config.model_dump(mode="json"), seed=config.seed + sc.seed_offset,
                                        stage="time-sampling"))
    write_json_atomic(args.out, result)
    for name, row in result["models"].items():
        log.info("%-12s %.4g s/step, %.4g s/molecule (T steps), ratio %.4f", name, row["seconds_per_step"],
                 row["seconds_per_molecule"], result[f"ratio_vs_{names[0]}"][name])
    return 0
