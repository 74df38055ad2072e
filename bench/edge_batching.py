"""Batches planned by edge count vs by molecule count alone, on GEOM-sized molecules, in one process.

The EGNN's activations grow with a batch's edges (Σ n(n-1)), not its molecules. GEOM-Drugs sizes run from ~10 to
181 atoms (mean ~44): a 64-molecule batch of the sorted tail holds far more edges than one of the middle. Sizes
are drawn here from a GEOM-like mix (a log-normal with mean ~44 atoms, clipped to 8..181, plus two 181-atom
molecules), sorted as the sampler sorts them; the edm_geom network (4 x 256, random EDM-initialised weights,
float32) then runs

* sample: one reverse-diffusion network call per batch (no grad), every batch of the plan;
* train: one forward + backward of the EDM loss per batch (what a pretraining step's pass costs);
* rollout (``--rollout-prompts``): FED-GRPO rollouts (elign.rl.rollout) of that many prompts of the largest sizes
  x ``--rollout-group`` rollouts each, whole-batch network passes vs row chunks under ``--max-edges``
  (finetune.max_batch_edges), ``--rollout-steps`` branched steps of a model with that many diffusion steps + 1.

For each plan (``--batch`` molecules per batch; the same plus ``--max-edges``) it reports the largest batch's
edges, the peak memory of one pass (CUDA: ``torch.cuda.max_memory_allocated``; CPU: not measured), and the wall
time over all batches; the ratios are edge-budget / count-only, measured in the same process (variants
interleaved, fastest of ``--repeats``).

    .venv/bin/python bench/edge_batching.py --device cuda --molecules 512 --batch 64 --max-edges 200000
    .venv/bin/python bench/edge_batching.py --device cpu --molecules 64 --batch 16 --max-edges 20000 --hidden 64
    .venv/bin/python bench/edge_batching.py --device cpu --molecules 24 --batch 8 --max-edges 40000 --hidden 64 \
        --rollout-prompts 2 --rollout-group 4
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
from elign.rl.rollout import make_prompts, rollout


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


def run_rollouts(args, device) -> dict:
    """Seconds (fastest of --repeats, interleaved) and CUDA peak of FED-GRPO rollouts with and without the budget,
    and the largest relative rollout-log-prob difference between them (the budget regroups rows only)."""
    torch.manual_seed(0)
    diffusion = {"timesteps": args.rollout_steps + 1}
    model = build_model(make_model_config("edm_geom", hidden_nf=args.hidden, diffusion=diffusion)).to(device).eval()
    sizes = sorted(geom_like_sizes(args.molecules, 0).tolist())[-args.rollout_prompts :]
    out = {"rollout_sizes": sizes, "rollout_rows": len(sizes) * args.rollout_group}
    out["rollout_branch_edges"] = int(edge_count(np.repeat(sizes, args.rollout_group)).sum())
    best, logp = {}, {}
    for _ in range(args.repeats):
        for name, cap in (("whole", None), ("budget", args.max_edges)):
            if device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            with torch.no_grad():
                ro = rollout(
                    model, make_prompts(sizes), args.rollout_group, 1, torch.Generator(device).manual_seed(0), cap
                )
            if device.type == "cuda":
                torch.cuda.synchronize()
            sec = time.perf_counter() - t0
            peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else float("nan")
            best[name] = (min(best.get(name, (np.inf,))[0], sec), peak)
            logp[name] = ro.logp_old
    for name, (sec, peak) in best.items():
        out[f"rollout_{name}_seconds"], out[f"rollout_{name}_peak_mib"] = round(sec, 3), round(peak, 1)
    out["rollout_time_ratio_budget_vs_whole"] = round(best["budget"][0] / best["whole"][0], 3)
    diff = (logp["budget"] - logp["whole"]).abs().max()
    out["rollout_logp_max_rel_diff"] = float(diff / logp["whole"].abs().max())  # float32 round-off, regrouped rows
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--molecules", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-edges", type=int, default=20000)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rollout-prompts", type=int, default=0, help="FED-GRPO rollouts of the largest sizes; 0 = none")
    ap.add_argument("--rollout-group", type=int, default=4)
    ap.add_argument("--rollout-steps", type=int, default=3)
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
    if args.rollout_prompts:
        out.update(run_rollouts(args, device))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
