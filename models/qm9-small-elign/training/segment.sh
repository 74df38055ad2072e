#!/usr/bin/env bash
# One sitting of the paper-scale FED-GRPO run behind models/qm9-small-elign (resumes from aligned.pt.partial).
#   models/qm9-small-elign/training/segment.sh MINUTES [THREADS] [DEVICE-YAML]
# On a GPU: DEVICE-YAML = models/qm9-small-elign/training/gpu.yaml (the device keys only; they may change between
# sittings). The run state is aligned.pt.partial + finetune_history.parquet beside this script: commit both.
# Where the 83 MB train.parquet cannot travel, ELIGN_TRAIN_KEYS names a .txt.gz of its novelty keys instead:
#   .venv/bin/python -c "import gzip; from elign.stages.evaluate import reference_keys as k;
#     gzip.open('train_keys.txt.gz','wt').write('\n'.join(sorted(k('results/data/qm9/train.parquet','smiles'))))"
# Appends a line per sitting to segments.jsonl: code sha, host, threads, device, iterations, wall time.
# A run with one setting changed (docs/paper_run_rule.md) uses the same script with its own folder:
#   ELIGN_RUN_DIR=models/NAME/training  the run state and segments.jsonl (default: this script's folder)
#   ELIGN_RUN_CONFIG=FILE               one more config file, after qm9_paper.yaml (the changed key)
#   ELIGN_STOP_AFTER=N                  end the sitting after iteration N (a screen), resumable to the same bits
set -euo pipefail
cd "$(dirname "$0")/../../.."
here=${ELIGN_RUN_DIR:-models/qm9-small-elign/training}
extra=(); [ -z "${ELIGN_RUN_CONFIG:-}" ] || extra+=(--config "$ELIGN_RUN_CONFIG")
[ -z "${ELIGN_STOP_AFTER:-}" ] || extra+=(--stop-after-iteration "$ELIGN_STOP_AFTER")
mkdir -p "$here"
minutes=${1:?minutes}; threads=${2:-1}; device_yaml=${3:-models/qm9-small-elign/training/cpu.yaml}
make -s setup  # .venv (a no-op when it is there)
export PATH="$PWD/.venv/bin:$PATH"
train=${ELIGN_TRAIN_KEYS:-results/data/qm9/train.parquet}
[ -f "$train" ] && [ -f results/data/qm9/stats.json ] ||
    snakemake --cores 1 -q results/data/qm9/train.parquet results/data/qm9/stats.json  # the data stage (~15 s)
export TORCHANI_DATA_DIR="${TORCHANI_DATA_DIR:-$(cd .. && pwd)/shared/mlff/torchani}"
iter() { python - "$here/aligned.pt" <<'PY'
import sys, torch
from pathlib import Path
from elign.training.checkpointing import partial_path
best = 0
for p in (Path(sys.argv[1]), partial_path(sys.argv[1])):
    if p.exists():
        best = max(best, int(torch.load(p, map_location="cpu", weights_only=False)["extra"]["iteration"]))
print(best)
PY
}
status=0; start_iter=$(iter); t0=$(date +%s); started=$(date -u +%FT%TZ)
sha=$(git rev-parse HEAD); dirty=$(git status --porcelain elign | head -c1)  # the code that runs this sitting
elign finetune --config config/config.yaml --config config/experiments/qm9_paper.yaml "${extra[@]}" \
    --config "$device_yaml" --model models/qm9-small/weights.pt --stats results/data/qm9/stats.json --train "$train" \
    --out "$here/aligned.pt" --history "$here/finetune_history.parquet" --threads "$threads" --no-progress \
    --max-minutes "$minutes" || status=$?  # a stopped sitting still gets its row (the checkpoint is per iteration)
end_iter=$(iter); t1=$(date +%s)
python - "$here/segments.jsonl" <<PY
import json, platform, subprocess, sys
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
gpu = subprocess.run(["sh", "-c", "nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1"],
                     capture_output=True, text=True).stdout.strip() or None
import torch
row = {"started": "$started", "code_sha": "$sha", "code_dirty": bool("$dirty"), "cpu": cpu, "gpu": gpu,
       "run_config": "${ELIGN_RUN_CONFIG:-}" or None,
       "torch": torch.__version__, "threads": $threads,
       "device_config": "$device_yaml", "iterations": [$start_iter, $end_iter], "wall_seconds": $t1 - $t0,
       "exit_status": $status}
with open(sys.argv[1], "a") as f:
    f.write(json.dumps(row) + "\n")
print(json.dumps(row))
PY
exit "$status"
