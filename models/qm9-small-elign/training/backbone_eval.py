"""the paper run's fresh-sample evaluation (same seed, sizes, relaxation) of the backbone itself."""

# Run from the repository root: .venv/bin/python models/qm9-small-elign/training/backbone_eval.py > models/qm9-small-elign/training/backbone_eval.json
# (needs results/data/qm9/stats.json). Iteration 0 of the curves: the evaluation the trainer runs every 10 iterations.
import json, sys, tempfile, time
import torch
from elign.config import load_config
from elign.data.sizes import stage_histogram
from elign.rl.trainer import FinetuneTrainer

torch.set_num_threads(1)
here = "models/qm9-small-elign/training"
cfg = load_config("config/config.yaml", "config/experiments/qm9_paper.yaml", f"{here}/cpu.yaml")
hist = stage_histogram("results/data/qm9/stats.json", "finetune.sizes")
keys = {"x"}  # novelty penalty needs keys at set-up; evaluation does not use them
with tempfile.TemporaryDirectory() as d:
    tr = FinetuneTrainer(
        cfg, "models/qm9-small/weights.pt", f"{d}/a.pt", None, histogram=hist, training_keys=keys, progress=False
    )
    t0 = time.time()
    row = tr.evaluate()
print(
    json.dumps({"iteration": 0, "model": "models/qm9-small/weights.pt", "seconds": round(time.time() - t0, 1), **row})
)
