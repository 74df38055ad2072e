"""Batches planned by edge count vs by molecule count alone, on GEOM-sized molecules, in one process.

The EGNN's activations grow with a batch's edges (Σ n(n-1)), not its molecules. GEOM-Drugs sizes run from ~10 to
181 atoms (mean ~44): a 64-molecule batch of the sorted tail holds far more edges than one of the middle. Sizes
are drawn here from a GEOM-like mix (a log-normal with mean ~44 atoms, clipped to 8..181, plus two 181-atom
molecules), sorted as the sampler sorts them; the edm_geom network (4 x 256, random EDM-initialised weights,
float32) then runs

* sample: one reverse-diffusion network call per batch (no grad), every batch of the plan;
* train: one forward + backward of the EDM loss per batch (what a pretraining step's pass costs).

For each plan (``--batch`` molecules per batch; the same plus ``--max-edges``) it reports the largest batch's
edges, the peak memory of one pass (CUDA: ``torch.cuda.max_memory_allocated``; CPU: not measured), and the wall
time over all batches; the ratios are edge-budget / count-only, measured in the same process (variants
interleaved, fastest of ``--repeats``).

    .venv/bin/python bench/edge_batching.py --device cuda --molecules 512 --batch 64 --max-edges 200000
    .venv/bin/python bench/edge_batching.py --device cpu --molecules 64 --batch 16 --max-edges 20000 --hidden 64
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from elign.data.batching import edge_count, node_mask_from_sizes, plan_batches
from elign.diffusion.factory import build_model
from elign.model.presets import GEOM_ATOM_DECODER, make_model_config


def geom_like_sizes(n: int, seed: int) -> np.ndarray:
    """n sizes: log-normal around 44 atoms (GEOM-Drugs' mean), clipped to 8..181, the last two 181."""
    rng = np.random.default_rng(seed)
    sizes = np.clip(np.round(rng.lognormal(np.log(40), 0.35, n)), 8, 181).astype(int)
    sizes[-2:] = 181
    return sizes


def batch_inputs(model, sizes, device):
    mask = node_mask_from_sizes(sizes).to(device)
    b, n = mask.shape[:2]
    x = torch.randn(b, n, 3, device=device) * mask
    x = x - (x.sum(1, keepdim=True) / mask.sum(1, keepdim=True)) * mask
    types = torch.randint(0, len(GEOM_ATOM_DECODER), (b, n), device=device)
    one_hot = torch.nn.functional.one_hot(types, len(GEOM_ATOM_DECODER)).float() * mask
    return x, one_hot, torch.zeros(b, n, 0, device=device), mask


def run_plan(model, sizes, plan, mode: str, device) -> tuple[float, float]:
    """(seconds, peak bytes of one pass; NaN on CPU) over every batch of the plan."""
    peak = float("nan")
    t0 = time.perf_counter()
    for idx in plan:
        x, h, c, mask = batch_inputs(model, sizes[idx], device)
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        if mode == "train":
            model.zero_grad(set_to_none=True)
            model(x, h, c, mask, graph=model.make_graph(mask)).mean().backward()
        else:
            with torch.inference_mode():
                xh = torch.cat([x, h], dim=2)
                t = torch.full((len(idx), 1), 0.5, device=device)
                model.phi(xh, t, mask, None, graph=model.make_graph(mask))
        if device.type == "cuda":
            torch.cuda.synchronize()
            used = torch.cuda.max_memory_allocated() - base
            peak = used if np.isnan(peak) else max(peak, used)
    return time.perf_counter() - t0, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--molecules", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-edges", type=int, default=20000)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build_model(make_model_config("edm_geom", hidden_nf=args.hidden)).to(device)
    sizes = geom_like_sizes(args.molecules, 0)
    plans = {"count": plan_batches(sizes, args.batch), "edges": plan_batches(sizes, args.batch, args.max_edges)}
    out = {"device": str(device), "molecules": int(len(sizes)), "mean_atoms": float(sizes.mean()), "args": vars(args)}
    for name, plan in plans.items():
        out[f"{name}_batches"] = len(plan)
        out[f"{name}_largest_batch_edges"] = int(max(edge_count(sizes[i]).sum() for i in plan))
    for mode in ("sample", "train"):
        best = {k: (np.inf, np.nan) for k in plans}
        for _ in range(args.repeats):  # interleaved
            for name, plan in plans.items():
                sec, peak = run_plan(model, sizes, plan, mode, device)
                best[name] = (min(best[name][0], sec), peak)
        for name in plans:
            out[f"{mode}_{name}_seconds"] = round(best[name][0], 3)
            out[f"{mode}_{name}_peak_mib"] = round(best[name][1] / 2**20, 1)
        out[f"{mode}_time_ratio_edges_vs_count"] = round(best["edges"][0] / best["count"][0], 3)
        out[f"{mode}_peak_ratio_edges_vs_count"] = round(best["edges"][1] / best["count"][1], 3)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
