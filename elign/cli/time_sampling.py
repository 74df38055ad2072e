"""``elign time-sampling``: sampling time of every model on the same batch, interleaved, in one process.

::

    elign time-sampling --config config/config.yaml --stats results/data/qm9/stats.json \\
        --model pretrained=results/models/qm9/pretrained.pt --model aligned=results/models/qm9/aligned.pt \\
        --guided guided=results/models/qm9/pretrained.pt --out results/timing/qm9/sampling.json --threads 1

The first ``--model`` is the baseline of the ratios. ``--guided NAME=PATH`` times that checkpoint with the
MLFF guidance hook of ``sample.guidance_mlff`` / ``sample.guidance_scale``. Settings: ``sample.timing``.
The stage: :func:`elign.stages.sample.run_time_sampling`; method and output: :mod:`elign.diffusion.timing`.
"""

from __future__ import annotations

import argparse

from elign.cli.options import add_config_options, add_shared_options, named_path, resolve_config, set_threads


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="time sampling of several models on one batch (interleaved repeats)")
    add_config_options(p)
    p.add_argument(
        "--model",
        type=named_path,
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a checkpoint to time (repeat); the first is the baseline of the ratios",
    )
    p.add_argument(
        "--guided",
        type=named_path,
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a checkpoint timed with MLFF guidance (sample.guidance_mlff, sample.guidance_scale)",
    )
    p.add_argument("--stats", default=None, help="stats.json (atom counts from the training histogram)")
    p.add_argument("--out", required=True, help="JSON, e.g. results/timing/qm9/sampling.json")
    add_shared_options(p, "--threads")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from elign.stages.sample import run_time_sampling

    config = resolve_config(args)
    set_threads(args.threads)
    run_time_sampling(config, args.model, args.guided, args.stats, args.out)
    return 0
