#!/usr/bin/env bash
# Ship the finished paper-scale run as models/qm9-small-elign/: weights, card.json, card.md, history, curves and
# the card's comparison with qm9-small (1,000 molecules from each, the same sizes and noise, a seed FED-GRPO
# never used; paired differences with intervals). About 70 CPU-minutes on one thread, ~45 on two.
#   models/qm9-small-elign/training/ship.sh [THREADS]
set -euo pipefail
cd "$(dirname "$0")/../../.."
here=models/qm9-small-elign/training
threads=${1:-2}
make -s setup
export PATH="$PWD/.venv/bin:$PATH"
export TORCHANI_DATA_DIR="${TORCHANI_DATA_DIR:-$(cd .. && pwd)/shared/mlff/torchani}"
[ -f results/data/qm9/train.parquet ] && [ -f results/data/qm9/stats.json ] ||
    snakemake --cores 1 -q results/data/qm9/train.parquet results/data/qm9/stats.json
elign models ship-aligned --checkpoint "$here/aligned.pt" --name qm9-small-elign --backbone qm9-small \
    --data-dir results/data/qm9 --num-molecules 1000 --seed 20261206 --segments "$here/segments.jsonl" \
    --threads "$threads" \
    --reproduce "models/qm9-small-elign/training/segment.sh MINUTES [THREADS] in sittings until iteration 100 \
(config/config.yaml + config/experiments/qm9_paper.yaml + $here/cpu.yaml), then $here/ship.sh" \
    --summary "FED-GRPO with the paper's settings (config/experiments/qm9_paper.yaml, 100 iterations, 2,400 \
optimizer steps), ANI-2x in place of UMA, on the small CPU backbone qm9-small"
