"""Benchmark our sampler against the plain dense reference of the same network, in one process.

For each preset (random EDM-initialised weights, float32, T = 1000):

1. check: 8 molecules, ``--check-steps`` reverse steps + the decode, our sampler vs
   :func:`elign.testing.dense_reference.dense_reference_sample` with equal weights, inputs and noise
   (same seeded generator): positions equal to 1e-9 (float64) / 1e-4 (float32) relative, atom types
   equal;
2. time ``--time-steps`` reverse steps + the decode per batch (after a one-step warm-up; fastest of
   ``--repeats`` runs, variants interleaved) for ``--batches`` batches of ``--batch`` molecules whose sizes
   are drawn from the QM9 training histogram, and extrapolate linearly to T + 1 network calls (T steps +
   the decode). Variants:
   - ours: size-grouped batches, sparse edges built once per batch, ``inference_mode``;
   - ours+compile (``--compile``): the same with the EGNN under ``torch.compile`` (compile time reported);
   - reference: the dense N×N masked network with autograd on, edge indices built in every call, on the
     same batches as ours (equal inputs);
   - reference, EDM batches: the same network on batches in request order, padded to each batch's largest
     molecule (what EDM's sampling script does).

    .venv/bin/python bench/sampling.py --presets small_cpu --batch 64 --time-steps 50 --threads 1
    .venv/bin/python bench/sampling.py --presets edm_qm9 --batch 32 --time-steps 10 --threads 1
    .venv/bin/python bench/sampling.py --device cuda --presets small_cpu edm_qm9 --batch 256
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch

from elign.data.sizes import sizes_from_histogram
from elign.diffusion.factory import build_model
from elign.diffusion.sampler import compile_network, make_node_mask, plan_batches, sample_batch
from elign.model.presets import make_model_config
from elign.testing.dense_reference import dense_reference_sample

STATS = Path("results/data/qm9/stats.json")
# QM9 training-split atom-count histogram (100 000 molecules), used when the data stage has not run.
QM9_HIST = {
    3: 1,
    4: 4,
    5: 5,
    6: 9,
    7: 16,
    8: 49,
    9: 124,
    10: 362,
    11: 807,
    12: 1689,
    13: 3060,
    14: 5136,
    15: 7796,
    16: 10644,
    17: 13025,
    18: 13364,
    19: 13832,
    20: 9482,
    21: 9970,
    22: 3393,
    23: 4848,
    24: 539,
    25: 1506,
    26: 48,
    27: 266,
    29: 25,
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_model(preset: str, device: torch.device, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(make_model_config(preset)).eval().to(device)  # EDM's initialisation


def _ours(model, sizes, gen, steps):
    with torch.inference_mode():
        return sample_batch(model, sizes, gen, n_steps=steps).decoded


def _ref(model, sizes, gen, steps):
    param = next(model.parameters())
    return dense_reference_sample(model, make_node_mask(sizes, param.device, param.dtype), gen, n_steps=steps)


def check(model, sizes, steps: int, device: torch.device) -> dict:
    """Our chain vs the dense reference chain with equal weights, inputs and noise: positions equal to
    1e-9 (float64) and 1e-4 (float32) of their largest value, atom types equal. (Weights are EDM's
    initialisation; with coordinate layers scaled up, a random 9-layer EGNN is so badly conditioned that
    float32 round-off, though not float64's, grows to O(1) within a few steps.)"""
    out = {}
    for name, m in (("float64", copy.deepcopy(model).double()), ("float32", model)):
        ours = _ours(m, sizes, torch.Generator(device).manual_seed(7), steps)
        ref = _ref(m, sizes, torch.Generator(device).manual_seed(7), steps)
        scale = float(ref.x.abs().max())
        out[name] = {
            "max_abs_diff_ang": float((ours.x - ref.x).abs().max()),
            "max_abs_x_ang": scale,
            "types_equal": bool(torch.equal(ours.one_hot, ref.one_hot)),
        }
    f64, f32 = out["float64"], out["float32"]
    out["equal"] = (
        f64["types_equal"]
        and f64["max_abs_diff_ang"] <= 1e-9 * f64["max_abs_x_ang"]
        and f32["types_equal"]
        and f32["max_abs_diff_ang"] <= 1e-4 * f32["max_abs_x_ang"]
    )
    return out


def time_batch(fn, model, sizes: list[int], k: int, steps: int, device: torch.device) -> float:
    """Seconds for ``steps`` reverse steps + decode of one batch (after a one-step warm-up)."""
    fn(model, sizes, torch.Generator(device).manual_seed(k), 1)
    _sync(device)
    t0 = time.perf_counter()
    fn(model, sizes, torch.Generator(device).manual_seed(k), steps)
    _sync(device)
    return time.perf_counter() - t0


def time_variants(variants: dict, model, steps: int, repeats: int, device: torch.device) -> dict[str, float]:
    """{name: seconds summed over its batches}, each batch the minimum over ``repeats`` runs; the variants
    are interleaved run by run so that a change in machine load hits them alike."""
    best = {name: [float("inf")] * len(batches) for name, (_, batches) in variants.items()}
    for _ in range(repeats):
        for name, (fn, batches) in variants.items():
            for k, sizes in enumerate(batches):
                best[name][k] = min(best[name][k], time_batch(fn, model, sizes, k, steps, device))
    return {name: float(sum(v)) for name, v in best.items()}


def throughput(seconds: float, steps: int, n_mol: int, n_batches: int, T: int) -> dict:
    """Extrapolate ``steps`` + decode (steps + 1 network calls) to T + 1 calls."""
    full = seconds / (steps + 1) * (T + 1)
    return {"seconds_T": full, "mol_per_s": n_mol / full, "steps_per_s": n_batches * (T + 1) / full}


def bench_preset(preset: str, args, sizes: list[int], device: torch.device) -> dict:
    model = make_model(preset, device)
    T = model.T
    grouped = [[sizes[i] for i in idx] for idx in plan_batches(sizes, args.batch)]
    edm_style = [sizes[i : i + args.batch] for i in range(0, len(sizes), args.batch)]
    row = {
        "preset": preset,
        "batch": args.batch,
        "molecules": len(sizes),
        "T": T,
        "time_steps": args.time_steps,
        "max_atoms_grouped": [max(b) for b in grouped],
        "max_atoms_edm": [max(b) for b in edm_style],
    }
    row["check"] = check(model, grouped[0][:8], args.check_steps, device)
    print(f"[{preset}] check over {args.check_steps} steps + decode: {row['check']}", flush=True)
    if not row["check"]["equal"]:
        raise SystemExit(f"[{preset}] our sampler and the dense reference disagree: {row['check']}")
    n, nb = len(sizes), len(grouped)
    variants = {"ours": (_ours, grouped), "reference": (_ref, grouped), "reference_edm_batches": (_ref, edm_style)}
    for name, secs in time_variants(variants, model, args.time_steps, args.repeats, device).items():
        row[name] = throughput(secs, args.time_steps, n, len(variants[name][1]), T)
        print(f"[{preset}] {name}: {row[name]}", flush=True)
    if args.compile:
        t0 = time.perf_counter()
        compile_network(model)
        _ours(model, grouped[0], torch.Generator(device).manual_seed(0), 1)
        row["compile_seconds"] = time.perf_counter() - t0
        secs = time_variants({"c": (_ours, grouped)}, model, args.time_steps, args.repeats, device)["c"]
        row["ours_compiled"] = throughput(secs, args.time_steps, n, nb, T)
        print(f"[{preset}] ours_compiled: {row['ours_compiled']} (compile {row['compile_seconds']:.1f} s)")
    return row


def print_table(rows: list[dict], args) -> None:
    print(
        f"\nExtrapolated to T = 1000 reverse steps + decode from {args.time_steps} timed steps per batch; "
        f"device {args.device}, {torch.get_num_threads()} CPU thread(s), float32."
    )
    head = [
        "preset",
        "batch",
        "ours mol/s",
        "ref mol/s",
        "ratio",
        "ours steps/s",
        "ref steps/s",
        "ref(EDM batches) mol/s",
        "ratio",
    ]
    if args.compile:
        head += ["ours+compile mol/s", "ratio"]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for r in rows:
        o, ref, edm = r["ours"], r["reference"], r["reference_edm_batches"]
        cells = [
            r["preset"],
            str(r["batch"]),
            f"{o['mol_per_s']:.4g}",
            f"{ref['mol_per_s']:.4g}",
            f"{o['mol_per_s'] / ref['mol_per_s']:.2f}x",
            f"{o['steps_per_s']:.3g}",
            f"{ref['steps_per_s']:.3g}",
            f"{edm['mol_per_s']:.4g}",
            f"{o['mol_per_s'] / edm['mol_per_s']:.2f}x",
        ]
        if args.compile:
            c = r["ours_compiled"]
            cells += [f"{c['mol_per_s']:.4g}", f"{c['mol_per_s'] / ref['mol_per_s']:.2f}x"]
        print("| " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["small_cpu", "edm_qm9"])
    ap.add_argument("--batch", type=int, default=64, help="molecules per batch")
    ap.add_argument("--batches", type=int, default=2, help="batches timed per variant")
    ap.add_argument("--time-steps", type=int, default=50, help="reverse steps timed per batch (then extrapolated)")
    ap.add_argument("--repeats", type=int, default=2, help="timing runs per batch (the fastest counts)")
    ap.add_argument("--check-steps", type=int, default=5, help="steps of the equality check")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 avoids stalls on a busy box)")
    ap.add_argument("--compile", action="store_true", help="also time ours with torch.compile")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="write the raw results here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    hist = json.loads(STATS.read_text())["splits"]["train"]["num_atoms_histogram"] if STATS.is_file() else QM9_HIST
    sizes = sizes_from_histogram(hist, args.batch * args.batches, args.seed)
    print(
        f"{len(sizes)} molecules, sizes from the QM9 training histogram: mean {np.mean(sizes):.1f}, max {max(sizes)}",
        flush=True,
    )
    rows = [bench_preset(p, args, sizes, device) for p in args.presets]
    print_table(rows, args)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
