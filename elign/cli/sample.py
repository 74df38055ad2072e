"""``elign sample``: sample molecules from a model checkpoint with the reverse diffusion chain.

The arguments only; the stage's work and its outputs: :mod:`elign.stages.sample`.
"""

from __future__ import annotations

import argparse

from elign.cli.options import (
    add_config_options,
    add_shared_options,
    resolve_config,
    set_threads,
)


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="sample molecules from a model; write Parquet (+ SDF / XYZ) and a JSON summary")
    add_config_options(p)
    p.add_argument("--model", required=True, help="our checkpoint, e.g. results/models/qm9/pretrained.pt")
    p.add_argument("--stats", default=None, help="stats.json of the data stage (needed when sizes = 'histogram')")
    p.add_argument("--out", required=True, help="Parquet output, e.g. results/samples/qm9/pretrained.parquet")
    p.add_argument("--sdf", default=None, help="also write an SD file (bonds from EDM's distance rule)")
    p.add_argument("--xyz", default=None, help="also write a multi-frame XYZ file")
    p.add_argument("--summary", default=None, help="JSON summary path (default: <out stem>.summary.json)")
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the network first (pays for long runs of big models; round-off differs from eager)",
    )
    add_shared_options(p, "--threads", "--no-progress")
    p.add_argument(
        "--guidance",
        choices=("none", "mlff"),
        default="none",
        help="mlff: MLFF-guided baseline, mean += scale * sigma^2 * F(x0_hat) each step (elign.diffusion.guidance)",
    )
    p.add_argument(
        "--guidance-scale", type=float, default=None, help="overrides sample.guidance_scale (1/(k_B T) in 1/eV)"
    )
    p.set_defaults(run=run)


def _progress_bar(disable: bool):
    """The reverse-step progress bar of :func:`elign.stages.sample.run_sample`."""
    from contextlib import contextmanager

    from tqdm import tqdm

    @contextmanager
    def bar(n_batches: int, steps: int):
        with tqdm(
            total=n_batches * steps, desc="reverse steps", unit="step", mininterval=2.0, disable=disable
        ) as progress:
            yield progress.update

    return bar


def run(args: argparse.Namespace) -> int:
    from elign.stages.sample import SampleRequest, run_sample

    config = resolve_config(args)
    set_threads(args.threads)
    request = SampleRequest(
        model=args.model,
        out=args.out,
        stats=args.stats,
        sdf=args.sdf,
        xyz=args.xyz,
        summary=args.summary,
        compile=bool(args.compile),
        guidance=args.guidance,
        guidance_scale=args.guidance_scale,
    )
    run_sample(config, request, progress=_progress_bar(args.no_progress))
    return 0
