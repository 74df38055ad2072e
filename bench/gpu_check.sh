#!/usr/bin/env bash
# One prepared run of elign's CUDA paths on a GPU machine, with CPU baselines on the same machine:
#   1. DFT: gpu4pyscf vs PySCF on the CPU on QM9 molecules (bench/dft_gpu.py, |dE| < 1e-6 Ha aim);
#   2. sampler: ours vs the dense reference on CUDA (equality check + timing; bench/sampling.py);
#   3. training: `elign pretrain` on CUDA (edm_qm9 preset, the paper's 9 x 256 EGNN) and on the CPU;
#   4. sampling: `elign sample` on CUDA from that checkpoint (1000 steps, full CLI path).
# Each step has its own time limit and writes its results as it goes, so a cut-short run still reports.
# Inputs: DATA (a data-stage folder: train.parquet + stats.json), MOLS (bench/dft_gpu.py --export JSON),
# OUT (where the JSON results go), WORK (checkpoints, samples). Python packages must be importable (PYTHONPATH), elign from this checkout.
#   DATA=.gpu/data/qm9 MOLS=.gpu/molecules.json OUT=/tmp/gpu bash bench/gpu_check.sh
set -uo pipefail
: "${DATA:?set DATA}" "${MOLS:?set MOLS}" "${OUT:?set OUT}"
STEPS=${STEPS:-60}
PY=${PY:-python3}
WORK=${WORK:-/tmp/elign_gpu_work}  # checkpoints and samples (kept out of OUT)
cd "$(dirname "$0")/.." || exit 1
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
ELIGN=("$PY" -m elign.cli.main)
mkdir -p "$OUT" "$WORK"

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PY" -c "import torch, pyscf; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'pyscf', pyscf.__version__)"
"$PY" -c "import gpu4pyscf, cupy; print('gpu4pyscf', gpu4pyscf.__version__, 'cupy', cupy.__version__)"

echo "== 1. gpu4pyscf vs PySCF (CPU): the DFT stage's level first, then spherical d/f"
timeout "${DFT_TIMEOUT:-240}" "$PY" bench/dft_gpu.py --molecules-json "$MOLS" --json "$OUT/dft_gpu.json" 2>&1 | grep -v Warning

echo "== 2. sampler on CUDA vs the dense reference"
timeout 90 "$PY" bench/sampling.py --device cuda --presets small_cpu edm_qm9 --batch 256 --batches 1 \
    --time-steps 10 --repeats 2 --json "$OUT/sampling.json" 2>&1 | tail -n 20

echo "== 3. pretrain (edm_qm9) on CUDA, $STEPS steps, then 6 steps on the CPU"
pretrain() {  # device steps log_every
    local cfg='{"pretrain": {"preset": "edm_qm9", "batch_size": 64, "max_steps": '"$2"', "log_every": '"$3"', "checkpoint_every": 1000, "device": "'"$1"'"}}'
    local t0=$SECONDS
    timeout 90 "${ELIGN[@]}" pretrain --config-json "$cfg" --data-dir "$DATA" --out "$WORK/$1/model.pt" \
        --no-progress 2>&1 | tail -n 3
    echo "pretrain $1: wall $((SECONDS - t0)) s (process start and data loading included)"
}
pretrain cuda "$STEPS" 10
pretrain cpu 6 2
"$PY" - "$WORK" <<'EOF'
import sys, pandas as pd
for device in ("cuda", "cpu"):
    try:
        h = pd.read_parquet(f"{sys.argv[1]}/{device}/history.parquet")
    except Exception as exc:
        print(device, "no history:", exc); continue
    per = (h.seconds.iloc[-1] - h.seconds.iloc[0]) / (h.step.iloc[-1] - h.step.iloc[0])
    print(f"pretrain {device}: {per * 1e3:.1f} ms/step after step {h.step.iloc[0]} (batch 64, edm_qm9); "
          f"losses {h.loss.round(4).tolist()}")
EOF

echo "== 4. elign sample on CUDA (256 molecules, 1000 steps, from the CUDA checkpoint)"
t0=$SECONDS
timeout 90 "${ELIGN[@]}" sample --config-json '{"sample": {"num_molecules": 256, "batch_size": 256, "device": "cuda"}}' \
    --model "$WORK/cuda/model.pt" --stats "$DATA/stats.json" --out "$WORK/samples.parquet" \
    --summary "$OUT/sample_summary.json" --no-progress 2>&1 | tail -n 3
echo "sample cuda: wall $((SECONDS - t0)) s"; cat "$OUT/sample_summary.json" 2>/dev/null | head -c 1500; echo

