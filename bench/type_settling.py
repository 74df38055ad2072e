"""When do a model's atom types settle along the reverse chain? (Chooses where FED-GRPO may act.)

Samples one batch of ``--molecules`` molecules (sizes from the training histogram and noise seeded as the
sample stage seeds its first batch, with the stage's model loader) and records, at every reverse step, the
argmax of z_t's atom-type block. For a set of times t it prints the share of real atoms whose argmax already
equals the decoded type, and the share of molecules whose atoms all do. A FED-GRPO window that starts after a
model's types have settled (``finetune.shared_prefix_steps`` with ``finetune.reference_prefix: true``) can
move geometry but hardly the atom types.

    .venv/bin/python bench/type_settling.py --model results/models/qm9/pretrained.pt [--molecules 64] [--seed 1000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from elign.data.sizes import load_size_histogram, sizes_from_histogram  # noqa: E402
from elign.diffusion.sampler import StepState, batch_seed, sample_batch  # noqa: E402
from elign.stages.sample import load_sampling_model  # noqa: E402

TIMES = (1.0, 0.8, 0.6, 0.4, 0.3, 0.2, 0.15, 0.1, 0.08, 0.06, 0.05, 0.04, 0.03, 0.02, 0.01, 0.001)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--stats", type=Path, default=Path("results/data/qm9/stats.json"))
    ap.add_argument("--molecules", type=int, default=64)
    ap.add_argument("--seed", type=int, default=1000, help="sizes and noise seed (the default run samples with 1000)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_sampling_model(args.model, use_ema=True, device=torch.device("cpu"))
    sizes = sizes_from_histogram(load_size_histogram(args.stats), args.molecules, args.seed)
    k0, k1 = model.n_dims, model.n_dims + model.num_classes
    argmax_by_t: dict[int, torch.Tensor] = {}

    def record(state: StepState) -> None:
        argmax_by_t[state.t_int] = state.z_t[..., k0:k1].argmax(dim=-1)

    with torch.inference_mode():
        out = sample_batch(model, list(sizes), torch.Generator().manual_seed(batch_seed(args.seed, 0)), record)
    real = out.node_mask[..., 0] > 0
    final = out.decoded.one_hot.argmax(dim=-1)
    print(f"{args.model}: {args.molecules} molecules, sizes {min(sizes)}-{max(sizes)}")
    print("     t  atoms at their final type  molecules with every atom there")
    for t in TIMES:
        settled = argmax_by_t[max(1, round(t * model.T))] == final
        atoms = settled[real].float().mean().item()
        molecules = (settled | ~real).all(dim=1).float().mean().item()
        print(f"{t:6.3f}  {atoms:25.3f}  {molecules:31.3f}")


if __name__ == "__main__":
    main()
