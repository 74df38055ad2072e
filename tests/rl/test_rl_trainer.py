"""The FED-GRPO loop on a tiny model: history, output checkpoint, resume after SIGKILL, the CLI end to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from rl_toys import HarmonicBackend, save_tiny

from elign.cli.main import main
from elign.config import ConfigError, validate_config
from elign.diffusion.factory import load_model
from elign.model.checkpoint import load_checkpoint
from elign.rl.trainer import finetune
from elign.rl.trainer_state import HISTORY_COLUMNS, partial_path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
RUN = {"iterations": 4, "checkpoint_every": 2, "prompts_per_iteration": 2, "rollouts_per_prompt": 3,
       "sizes": [4, 6], "shared_prefix_steps": 12, "train_steps_per_rollout": 5, "energy_every": 2,
       "minibatch_steps": 4, "update_epochs": 2, "lr": 1e-3, "ema_decay": 0.5, "device": "cpu"}


def _config(**over):
    return validate_config({"seed": 3, "finetune": {**RUN, **over}})


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("tiny_ft") / "pretrained.pt")


@pytest.fixture(scope="module")
def uninterrupted(tiny_ckpt, tmp_path_factory):
    out = tmp_path_factory.mktemp("ft_once") / "aligned.pt"
    return finetune(_config(), tiny_ckpt, out, out.with_name("history.parquet"), backend=HarmonicBackend(),
                    progress=False)


def _assert_same_state(a: Path, b: Path) -> None:
    ca, cb = load_checkpoint(a), load_checkpoint(b)
    for key in ("state_dict", "ema_state_dict"):
        assert ca[key].keys() == cb[key].keys()
        for name in ca[key]:
            assert torch.equal(ca[key][name], cb[key][name]), f"{key}.{name} differs"
    oa, ob = ca["extra"]["optimizer"]["state"], cb["extra"]["optimizer"]["state"]
    for i in oa:
        for k in oa[i]:
            assert torch.equal(oa[i][k], ob[i][k]), f"optimizer state {i}.{k} differs"
    ha, hb = ca["extra"]["history"], cb["extra"]["history"]
    for col in HISTORY_COLUMNS:
        if not col.endswith("seconds"):
            assert np.array_equal(ha[col], hb[col], equal_nan=True), col


def test_history_and_output_checkpoint(uninterrupted, tiny_ckpt):
    df = pq.read_table(uninterrupted.history).to_pandas()
    assert list(df.columns) == list(HISTORY_COLUMNS) and df["iteration"].tolist() == [1, 2, 3, 4]
    assert (df["num_rollouts"] == 6).all() and (df["trained_pairs"] == 30).all()
    assert np.isfinite(df[["force_rms_mean_ev_per_ang", "formation_energy_mean_ev_per_atom", "kl_ref",
                           "loss", "grad_norm"]].to_numpy()).all()
    assert (df["force_rms_mean_ev_per_ang"] > 0).all() and (df["mlff_failures"] == 0).all()
    assert (df["kl_ref"] > 0).all()  # the second epoch of each iteration sees an updated policy
    assert (df["clip_fraction"] > 0).all()
    assert (df[["rollout_seconds", "reward_seconds", "update_seconds"]] > 0).all().all()
    assert df["seconds"].is_monotonic_increasing and (df["advantage_max"] <= 5).all()
    ckpt, src = load_checkpoint(uninterrupted.out), load_checkpoint(tiny_ckpt)
    assert ckpt["model_config"] == src["model_config"] and ckpt["extra"]["finished"]
    assert ckpt["extra"]["input"]["path"] == str(tiny_ckpt) and not partial_path(uninterrupted.out).exists()
    aligned, pre = load_model(uninterrupted.out), load_model(tiny_ckpt)  # aligned: the EMA weights
    assert torch.equal(aligned.schedule.gamma, pre.schedule.gamma.to(aligned.schedule.gamma.dtype))
    assert any(not torch.equal(a, b.to(a.dtype)) for a, b in zip(aligned.parameters(), pre.parameters()))


def test_ratio_is_one_on_the_first_pass(tiny_ckpt, tmp_path):
    result = finetune(_config(iterations=1, update_epochs=1), tiny_ckpt, tmp_path / "a.pt", None,
                      backend=HarmonicBackend(), progress=False)
    row = result.last  # float32: the recomputation may differ from the rollout by round-off only
    assert abs(row["ratio_min"] - 1) < 1e-5 and abs(row["ratio_max"] - 1) < 1e-5
    assert row["kl_ref"] == 0.0 and row["clip_fraction"] == 0.0 and row["approx_kl_old"] < 1e-10


_KILLED_RUN = """
import sys, time, json, torch
sys.path.insert(0, sys.argv[5])
torch.set_num_threads(1)
from pathlib import Path
from rl_toys import HarmonicBackend
from elign.config import validate_config
from elign.rl.trainer import finetune
marker = Path(sys.argv[3])
def hold(iteration):
    if iteration == 3:  # one iteration past the checkpoint at 2: the restart must redo it
        marker.write_text("3")
        time.sleep(120)
finetune(validate_config(json.loads(sys.argv[1])), sys.argv[2], sys.argv[4], None, backend=HarmonicBackend(),
         progress=False, callback=hold)
"""


def test_resume_after_sigkill_is_identical(uninterrupted, tiny_ckpt, tmp_path):
    out, marker = tmp_path / "aligned.pt", tmp_path / "at_3"
    cfg = {"seed": 3, "finetune": RUN}
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_RUN, json.dumps(cfg), str(tiny_ckpt), str(marker),
                             str(out), str(HERE)], cwd=REPO)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, "finetune subprocess died"
            assert time.monotonic() < deadline, "finetune subprocess did not reach iteration 3"
            time.sleep(0.05)
        assert load_checkpoint(partial_path(out))["extra"]["iteration"] == 2
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert not out.exists()
    result = finetune(_config(), tiny_ckpt, out, None, backend=HarmonicBackend(), progress=False)
    assert result.resumed_from == 2 and result.iteration == 4
    _assert_same_state(uninterrupted.out, out)
    with pytest.raises(ConfigError, match=r"finetune\.lr"):
        finetune(_config(lr=1e-2), tiny_ckpt, out, None, backend=HarmonicBackend(), progress=False)


def test_finetune_cli_end_to_end(tiny_qm9_dir, tmp_path, capsys):
    from elign.io.molecules import read_molecules

    sizes = read_molecules(tiny_qm9_dir / "train.parquet").num_atoms
    hist = {str(n): int(c) for n, c in zip(*np.unique(sizes, return_counts=True))}
    stats = tmp_path / "stats.json"
    stats.write_text(json.dumps({"splits": {"train": {"num_atoms_histogram": hist}}}))
    model = save_tiny(tmp_path / "pretrained.pt", dtype=torch.float32)
    cfg = {"finetune": {"iterations": 2, "prompts_per_iteration": 2, "rollouts_per_prompt": 2,
                        "shared_prefix_steps": 14, "train_steps_per_rollout": 3, "device": "cpu",
                        "mlff": {"device": "cpu"}}}
    out, history = tmp_path / "aligned.pt", tmp_path / "finetune_history.parquet"
    args = ["finetune", "--config-json", json.dumps(cfg), "--model", str(model), "--no-progress"]
    assert main(args + ["--out", str(out), "--history", str(history), "--stats", str(stats)]) == 0
    df = pq.read_table(history).to_pandas()
    assert df["iteration"].tolist() == [1, 2] and (df["num_rollouts"] == 4).all()
    assert (df["mean_num_atoms"] >= sizes.min()).all() and (df["mean_num_atoms"] <= sizes.max()).all()
    assert load_model(out).T == 20 and load_checkpoint(out)["extra"]["config"]["finetune"]["iterations"] == 2
    assert main(args + ["--out", str(tmp_path / "b.pt")]) == 2  # sizes = 'histogram' needs --stats
    assert "--stats" in capsys.readouterr().err and not (tmp_path / "b.pt").exists()
