"""The paper run's fresh-sample evaluation (same seed, sizes and relaxation) of the backbone itself.

Iteration 0 of the run's curves: the evaluation the trainer runs every 10 iterations, on the starting weights.
From the repository root (needs results/data/qm9/stats.json):
    d=models/qm9-small-elign/training; .venv/bin/python $d/backbone_eval.py > $d/backbone_eval.json
"""

import json
import tempfile
import time

import torch

from elign.config import load_config
from elign.data.sizes import stage_histogram
from elign.rl.trainer import FinetuneTrainer

torch.set_num_threads(1)
here = "models/qm9-small-elign/training"
cfg = load_config("config/config.yaml", "config/experiments/qm9_paper.yaml", f"{here}/cpu.yaml")
hist = stage_histogram("results/data/qm9/stats.json", "finetune.sizes")
keys = {"-"}  # the novelty penalty needs training keys at set-up; the evaluation does not use them
with tempfile.TemporaryDirectory() as d:
    trainer = FinetuneTrainer(
        cfg, "models/qm9-small/weights.pt", f"{d}/a.pt", None, histogram=hist, training_keys=keys, progress=False
    )
    t0 = time.time()
    row = trainer.evaluate()
out = {"iteration": 0, "model": "models/qm9-small/weights.pt", "seconds": round(time.time() - t0, 1), **row}
print(json.dumps(out))
