"""Where does FED-GRPO's PPO clipping come from: the recomputed log-probabilities, or the updates?

Before any update the policy *is* the sampling policy, so every ratio ρ = exp(log p_θ − log p_old) should be 1.
This bench rolls out one group at the paper's scale (T = 1000, shared prefix 600, every branched step
recorded) from a checkpoint, recomputes log p_θ for every (rollout, step) pair exactly as the update does
(the way :func:`elign.rl.update.chunk_loss` does, in chunks of ``--chunk`` pairs), and prints |ρ − 1| by t-band and
the share beyond the clip range, in float32 and float64 (the same weights, rolled out again in float64).
It then takes the official code's micro-batched update (one AdamW step per ``--micro`` rollouts) on the same
rollouts and prints the clip fraction of each micro-batch: the first one sees the sampling policy, later ones
see a policy that earlier steps moved.

    .venv/bin/python bench/fedgrpo_ratio.py --model models/qm9-small/weights.pt [--size 19 --rollouts 8]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from elign.config import validate_config  # noqa: E402
from elign.diffusion.checkpoint import load_model  # noqa: E402
from elign.rl.advantages import compute_advantages  # noqa: E402
from elign.rl.rollout import make_prompts, rollout  # noqa: E402
from elign.rl.update import _accumulate, micro_batches  # noqa: E402
from elign.training.optim import make_optimizer  # noqa: E402

BANDS = ((0.3, 0.4), (0.1, 0.3), (0.03, 0.1), (0.01, 0.03), (0.0, 0.01))  # t = t_int / T


def recomputed_ratios(model, ro, chunk: int) -> np.ndarray:
    """(B, S) ρ of every recorded pair under the model that sampled them (no update), in chunks of ``chunk``."""
    b, s = ro.num_rollouts, ro.num_steps
    rows = torch.arange(b).repeat_interleave(s)
    steps = torch.arange(s).repeat(b)
    out = np.empty(b * s)
    with torch.no_grad():
        for lo in range(0, b * s, chunk):
            sl = slice(lo, lo + chunk)
            out[sl] = _ratios(model, ro, rows[sl], steps[sl])
    return out.reshape(b, s)


def _ratios(model, ro, rows, steps) -> np.ndarray:
    from elign.rl.rollout import step_times

    n = int(ro.sizes[rows].max())
    mask, z_t, z_s = ro.node_mask[rows, :n], ro.z[rows, steps, :n], ro.z[rows, steps + 1, :n]
    s, t = step_times(model, ro.t_int[steps], len(rows), z_t.dtype, z_t.device)
    mu, sigma = model.posterior_from_eps(z_t, model.phi(z_t, t, mask, graph=model.make_graph(mask)), s, t)
    logp = model.reverse_step_log_prob(z_s, mu, sigma, mask)
    return torch.exp(logp - ro.logp_old[rows, steps]).double().numpy()


def band_table(ratio: np.ndarray, t: np.ndarray, clip: float) -> list[str]:
    lines = [f"{'t band':>14} {'pairs':>6} {'max|r-1|':>10} {'mean|r-1|':>10} {'> clip':>7}"]
    dev = np.abs(ratio - 1.0)
    for lo, hi in BANDS:
        cols = (t > lo) & (t <= hi)
        d = dev[:, cols]
        if d.size:
            lines.append(f"{f'({lo}, {hi}]':>14} {d.size:6d} {d.max():10.2e} {d.mean():10.2e} {np.mean(d > clip):7.1%}")
    lines.append(f"{'all':>14} {dev.size:6d} {dev.max():10.2e} {dev.mean():10.2e} {np.mean(dev > clip):7.1%}")
    return lines


def micro_batch_clipping(model, ro, args) -> list[str]:
    """One pass of the micro-batched update (random advantages of unit scale); clip fraction per micro-batch."""
    policy, reference = model, load_model(args.model, dtype=torch.float32)
    for p in reference.parameters():
        p.requires_grad_(False)
    opt = make_optimizer(policy, args.lr, 1e-4, amsgrad=False)
    rng = np.random.default_rng(0)
    force = rng.normal(size=ro.num_rollouts)
    adv = compute_advantages(
        force,
        np.zeros((ro.num_rollouts, ro.num_steps)),
        np.zeros(ro.num_rollouts, int),
        weight_force=1.0,
        weight_energy=0.0,
        clip=5.0,
        std_mode="population",
    )
    b_idx, j_idx = np.nonzero(adv.in_loss)
    rows, steps = torch.as_tensor(b_idx), torch.as_tensor(j_idx)
    advantage = torch.as_tensor(adv.advantage[b_idx, j_idx])
    lines = [f"{'micro-batch':>11} {'clip frac':>9} {'max|r-1|':>10} {'grad norm':>10}"]
    fc = SimpleNamespace(
        minibatch_steps=args.chunk, clip_range=2e-3, kl_weight=0.04, policy_features=True, feature_kl_weight=1.0
    )
    for k, sel in enumerate(micro_batches(b_idx, ro.num_rollouts, args.micro)):
        opt.zero_grad(set_to_none=True)
        _, st = _accumulate(policy, reference, ro, rows, steps, advantage, sel, fc)  # the trainer's own update
        dev_max = max(abs(st.ratio_max - 1), abs(st.ratio_min - 1))
        norm = float(torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0))
        opt.step()
        lines.append(f"{k:11d} {st.clipped / st.n:9.1%} {dev_max:10.2e} {norm:10.3g}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(REPO / "models/qm9-small/weights.pt"))
    ap.add_argument("--size", type=int, default=19, help="atoms of the prompt (QM9's most common size is 18-19)")
    ap.add_argument("--rollouts", type=int, default=8)
    ap.add_argument("--prefix", type=int, default=600)
    ap.add_argument("--chunk", type=int, default=16, help="pairs per recomputation chunk (finetune.minibatch_steps)")
    ap.add_argument("--micro", type=int, default=2, help="rollouts per optimizer step in the update part")
    ap.add_argument("--lr", type=float, default=4e-6)
    ap.add_argument("--clip", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    validate_config({})  # fail early on a broken install
    for dtype in (torch.float32, torch.float64):
        model = load_model(args.model, dtype=dtype)
        t0 = time.perf_counter()
        with torch.no_grad():
            ro = rollout(model, make_prompts([args.size]), args.rollouts, args.prefix, torch.Generator().manual_seed(0))
        t1 = time.perf_counter()
        ratio = recomputed_ratios(model, ro, args.chunk)
        t2 = time.perf_counter()
        t = ro.t_int.numpy() / model.T
        print(
            f"\n{str(dtype).replace('torch.', '')}: {args.rollouts} rollouts x {ro.num_steps} steps "
            f"(rollout {t1 - t0:.1f} s, recompute {t2 - t1:.1f} s); rho before any update, clip {args.clip}:"
        )
        print("\n".join(band_table(ratio, t, args.clip)))
        sig = ro.sigma.double().numpy()
        print(f"reverse-step sigma (model units): t=0.4 {sig[0]:.2e}, t=0.01 {sig[-10]:.2e}, t=0.001 {sig[-1]:.2e}")
        if dtype == torch.float32:
            print(f"\nmicro-batched update ({args.micro} rollouts per AdamW step, lr {args.lr}), float32:")
            print("\n".join(micro_batch_clipping(model, ro, args)))


if __name__ == "__main__":
    main()
