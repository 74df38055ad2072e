#!/usr/bin/env bash
# One GPU segment of the shipped backbone's training, on a lent machine (device tool), prepared as one script:
# continue the resume file in models/qm9-small/training/ with the SAME config (batch 64, the resume check
# holds; only `device` changes, which is a resumable key) for MINUTES minutes, then return the new resume
# file and history in $OUT. To train longer than the shipped recipe (decay 55,000 -> 67,000): copy stable.pt
# (step 55,000, before the decay) to pretrained.pt.partial and move lr_decay and max_steps later in
# config/experiments/backbone_qm9_small.yaml (a decay may start at or after the resumed step). The segment
# (GPU name, threads, wall time, code sha) is recorded in the checkpoint and so in the model card.
#
# Here, before the call (the train split travels as a compact array, not the 83 MB Parquet):
#   .venv/bin/python bench/train_compact.py export results/data/qm9 .gpu/train_compact.npz
#   (wheels of packages the device image lacks, cp312, into .whl/: pydantic, pydantic-core, annotated-types,
#    typing-inspection, rdkit; see the device README)
# The call (carry .gpu and .whl; ~9 minutes of training inside a 10-minute command):
#   MINUTES=8.5 bash bench/gpu_pretrain_segment.sh
# Then here: copy $OUT/pretrained.pt.partial (or pretrained.pt, if the run reached max_steps) and
# $OUT/history.parquet over models/qm9-small/training/.
set -uo pipefail
: "${OUT:?set OUT}"
MINUTES=${MINUTES:-8.5}
PY=${PY:-python3}
TRAIN_DIR=${TRAIN_DIR:-models/qm9-small/training}  # the resume file and history.parquet
DEVICE=${DEVICE:-cuda}  # cpu: a dry run of this script on a machine without a GPU
cd "$(dirname "$0")/.." || exit 1
if ls .whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site
fi
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" bench/train_compact.py restore .gpu/train_compact.npz /tmp/data/qm9 || exit 1
# evaluations sample on the CPU side of this script's budget: off for the GPU segment (resumable key)
"$PY" -m elign.cli.main pretrain --config config/config.yaml --config config/experiments/backbone_qm9_small.yaml \
    --config-json '{"pretrain": {"device": "'"$DEVICE"'", "eval_every": null}}' --data-dir /tmp/data/qm9 \
    --out "$TRAIN_DIR/pretrained.pt" --max-minutes "$MINUTES" --no-progress 2>&1 | tail -n 5
for f in pretrained.pt.partial pretrained.pt history.parquet; do
    if [ -f "$TRAIN_DIR/$f" ]; then cp "$TRAIN_DIR/$f" "$OUT"/; fi
done
ls -la "$OUT"
