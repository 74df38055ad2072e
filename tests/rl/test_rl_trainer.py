"""The FED-GRPO loop on a tiny model: history, output checkpoint, resume after SIGKILL, the CLI end to end."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from rl_toys import HarmonicBackend, save_tiny

from elign.cli.main import main
from elign.config import ConfigError, validate_config
from elign.diffusion.checkpoint import load_checkpoint, load_model
from elign.rl.trainer import finetune
from elign.rl.trainer_state import HISTORY_COLUMNS, trajectory_config
from elign.rl.update import micro_batches
from elign.testing.resume import assert_same_training_state, killed_at_marker
from elign.training.checkpointing import partial_path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
RUN = {
    "iterations": 4,
    "checkpoint_every": 2,
    "prompts_per_iteration": 2,
    "rollouts_per_prompt": 3,
    "sizes": [4, 6],
    "shared_prefix_steps": 12,
    "reference_prefix": False,  # one network at every step; test_reference_prefix_... compares with the gate
    "train_steps_per_rollout": 5,
    "energy_every": 2,
    "minibatch_steps": 4,
    "update_epochs": 2,
    "lr": 1e-3,
    "ema_decay": 0.5,
    "eval_every": 2,
    "eval_molecules": 3,
    "eval_relax_steps": 5,
    "device": "cpu",
}
#: the official code's update (qm9_paper.yaml): micro-batches, a cosine schedule, population std, AdamW
PAPER_UPDATE = {
    "micro_batch_rollouts": 4,
    "lr_schedule": {"kind": "cosine", "warmup_steps": 2, "total_steps": 6, "min_lr_ratio": 0.3},
    "group_std": "population",
    "amsgrad": False,
    "weight_decay": 1e-4,
}


def _config(**over):
    return validate_config({"seed": 3, "finetune": {**RUN, **over}})


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("tiny_ft") / "pretrained.pt")


@pytest.fixture(scope="module")
def uninterrupted(tiny_ckpt, tmp_path_factory):
    out = tmp_path_factory.mktemp("ft_once") / "aligned.pt"
    return finetune(
        _config(), tiny_ckpt, out, out.with_name("history.parquet"), backend=HarmonicBackend(), progress=False
    )


def _tune(tiny_ckpt: Path, out: Path, **over):
    """FED-GRPO from the tiny checkpoint with the RUN config and ``over``, scored by the harmonic backend."""
    return finetune(_config(**over), tiny_ckpt, out, None, backend=HarmonicBackend(), progress=False)


def _assert_same_state(a: Path, b: Path) -> None:
    ea, eb = assert_same_training_state(a, b)
    ha, hb = ea["history"], eb["history"]
    for col in HISTORY_COLUMNS:
        if not col.endswith("seconds"):  # None (no evaluation on that row) compares as NaN
            assert np.array_equal(np.array(ha[col], float), np.array(hb[col], float), equal_nan=True), col


def test_history_and_output_checkpoint(uninterrupted, tiny_ckpt):
    df = pq.read_table(uninterrupted.history).to_pandas()
    assert list(df.columns) == list(HISTORY_COLUMNS) and df["iteration"].tolist() == [1, 2, 3, 4]
    assert (df["num_rollouts"] == 6).all() and (df["trained_pairs"] == 30).all()
    assert np.isfinite(
        df[["force_rms_mean_ev_per_ang", "formation_energy_mean_ev_per_atom", "kl_ref", "loss", "grad_norm"]].to_numpy()
    ).all()
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


def test_aligned_weights_are_an_ema_that_leaves_the_trajectory_alone(uninterrupted, tiny_ckpt, tmp_path):
    """``ema_decay`` averages the policy for aligned.pt; the rollouts and updates use the raw policy, so the raw
    weights equal those of a run without EMA, and the sampled (default) weights are the average."""
    plain = finetune(
        _config(ema_decay=0.0), tiny_ckpt, tmp_path / "plain.pt", None, backend=HarmonicBackend(), progress=False
    )
    with_ema = load_checkpoint(uninterrupted.out)
    assert load_checkpoint(plain.out).get("ema_state_dict") is None and with_ema["ema_state_dict"] is not None
    raw, no_ema = load_model(uninterrupted.out, use_ema=False), load_model(plain.out)
    for a, b in zip(raw.state_dict().values(), no_ema.state_dict().values()):
        assert torch.equal(a, b)
    averaged, pre = load_model(uninterrupted.out), load_model(tiny_ckpt)
    with torch.no_grad():
        moved = [(r - p.to(r.dtype)).norm() for r, p in zip(raw.parameters(), pre.parameters())]
        lag = [(e - r).norm() for e, r in zip(averaged.parameters(), raw.parameters())]
    assert sum(float(m) for m in moved) > 0 and sum(float(g) for g in lag) > 0  # the average lags the policy


def test_rollout_quality_and_evaluations_are_recorded(uninterrupted, tiny_ckpt, tmp_path):
    df = pq.read_table(uninterrupted.history).to_pandas()
    for col in ("rollout_molecule_stability", "rollout_validity"):
        assert df[col].between(0, 1).all(), col
    assert df["eval_molecules"].tolist()[1::2] == [3, 3] and df["eval_molecules"].isna().tolist()[::2] == [True, True]
    evaluated = df.iloc[1::2]
    for col in ("eval_atom_stability", "eval_molecule_stability", "eval_validity"):
        assert evaluated[col].between(0, 1).all(), col
    assert (evaluated["eval_seconds"] > 0).all()
    # the evaluations sample with their own generators: the trajectory is the same without them
    plain = finetune(
        _config(eval_every=None), tiny_ckpt, tmp_path / "plain.pt", None, backend=HarmonicBackend(), progress=False
    )
    assert_same_training_state(uninterrupted.out, plain.out)
    assert load_checkpoint(plain.out)["extra"]["history"]["eval_molecules"] == [None] * 4


def test_micro_batches_chunk_rollouts_in_order():
    rows = np.array([0, 0, 1, 2, 2, 3, 5, 5])
    assert [c.tolist() for c in micro_batches(rows, 6, None)] == [list(range(8))]
    assert [c.tolist() for c in micro_batches(rows, 6, 2)] == [[0, 1, 2], [3, 4, 5], [6, 7]]
    assert [c.tolist() for c in micro_batches(rows, 6, 4)] == [[0, 1, 2, 3, 4, 5], [6, 7]]
    assert [c.tolist() for c in micro_batches(np.array([5, 5]), 6, 2)] == [[0, 1]]  # empty chunks take no step


def test_official_update_steps_per_micro_batch_on_the_schedule(tiny_ckpt, tmp_path):
    """6 rollouts in micro-batches of 4: 2 AdamW steps per pass, 2 passes, so 4 steps an iteration; the
    schedule sets each step's rate from the step count; a micro-batch as large as the batch is today's update."""
    out = tmp_path / "paper.pt"
    result = finetune(
        _config(iterations=2, **PAPER_UPDATE), tiny_ckpt, out, None, backend=HarmonicBackend(), progress=False
    )
    extra = load_checkpoint(out)["extra"]
    assert extra["optimizer_steps"] == 8 and extra["history"]["optimizer_steps"] == [4, 8]
    assert extra["optimizer"]["state"][0]["step"] == 8
    # the rate of each iteration's last step (steps 3 and 7): cosine after 2 warm-up steps over 6
    cos = lambda k: 0.3 + 0.7 * 0.5 * (1 + np.cos(np.pi * (k - 2) / 4))  # noqa: E731
    assert extra["history"]["lr"] == pytest.approx([1e-3 * cos(3), 1e-3 * cos(7)])
    assert result.last["clip_fraction"] > 0
    whole = _tune(tiny_ckpt, tmp_path / "a.pt", iterations=1)
    as_one = _tune(tiny_ckpt, tmp_path / "b.pt", iterations=1, micro_batch_rollouts=6)
    assert_same_training_state(whole.out, as_one.out)


def test_novelty_penalty_needs_the_training_split(tiny_ckpt, tmp_path):
    with pytest.raises(ConfigError, match="--train"):
        finetune(_config(novelty_penalty=0.5), tiny_ckpt, tmp_path / "a.pt", None, backend=HarmonicBackend())


def test_fresh_sample_evaluations_carry_mlff_metrics(uninterrupted):
    df = pq.read_table(uninterrupted.history).to_pandas()
    evaluated = df.iloc[1::2]
    assert (evaluated["eval_force_rms_mean_ev_per_ang"] > 0).all()
    assert (evaluated["eval_relaxation_energy_mean_kcal_mol"] >= 0).all()  # FIRE only goes downhill
    assert df.iloc[::2][["eval_force_rms_mean_ev_per_ang", "eval_relaxation_energy_mean_kcal_mol"]].isna().all().all()


def test_the_mlff_device_may_change_on_resume():
    a = {"finetune": {"lr": 1.0, "mlff": {"backend": "ani2x", "device": "cpu"}}}
    b = {"finetune": {"lr": 1.0, "mlff": {"backend": "ani2x", "device": "cuda"}}}
    assert trajectory_config(a) == trajectory_config(b)
    c = {"finetune": {"lr": 1.0, "mlff": {"backend": "aimnet2", "device": "cpu"}}}
    assert trajectory_config(a) != trajectory_config(c)


def test_ratio_is_one_on_the_first_pass(tiny_ckpt, tmp_path):
    result = finetune(
        _config(iterations=1, update_epochs=1),
        tiny_ckpt,
        tmp_path / "a.pt",
        None,
        backend=HarmonicBackend(),
        progress=False,
    )
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
    argv = [sys.executable, "-c", _KILLED_RUN, json.dumps(cfg), str(tiny_ckpt), str(marker), str(out), str(HERE)]
    with killed_at_marker(argv, marker, "finetune subprocess", REPO):  # reached iteration 3
        assert load_checkpoint(partial_path(out))["extra"]["iteration"] == 2
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
    cfg = {
        "finetune": {
            "iterations": 2,
            "prompts_per_iteration": 2,
            "rollouts_per_prompt": 2,
            "shared_prefix_steps": 14,
            "train_steps_per_rollout": 3,
            "device": "cpu",
            "mlff": {"device": "cpu"},
        }
    }
    out, history = tmp_path / "aligned.pt", tmp_path / "finetune_history.parquet"
    args = ["finetune", "--config-json", json.dumps(cfg), "--model", str(model), "--no-progress"]
    run = args + ["--out", str(out), "--history", str(history), "--stats", str(stats)]
    assert main(run + ["--stop-after-iteration", "1"]) == 0  # a sitting that ends early: no output, no record
    assert not out.exists() and not out.with_name("aligned.json").exists()
    assert load_checkpoint(partial_path(out))["extra"]["iteration"] == 1
    assert main(run) == 0
    df = pq.read_table(history).to_pandas()
    assert df["iteration"].tolist() == [1, 2] and (df["num_rollouts"] == 4).all()
    assert (df["mean_num_atoms"] >= sizes.min()).all() and (df["mean_num_atoms"] <= sizes.max()).all()
    assert load_model(out).T == 20 and load_checkpoint(out)["extra"]["config"]["finetune"]["iterations"] == 2
    assert main(args + ["--out", str(tmp_path / "b.pt")]) == 2  # sizes = 'histogram' needs --stats
    assert "--stats" in capsys.readouterr().err and not (tmp_path / "b.pt").exists()


def test_reference_prefix_keeps_the_reference_network_where_fedgrpo_has_no_signal(uninterrupted, tiny_ckpt, tmp_path):
    """finetune.reference_prefix: aligned.pt runs the input network, bit for bit, on the shared-prefix steps
    (t > (T - prefix)/T) and the trained one on the branched steps; without it, the one fine-tuned network runs
    everywhere (the shared weights move the prefix steps too)."""
    gated = finetune(
        _config(reference_prefix=True), tiny_ckpt, tmp_path / "g.pt", None, backend=HarmonicBackend(), progress=False
    )
    pre = load_model(tiny_ckpt)
    prefix = RUN["shared_prefix_steps"]
    gate = (pre.T - prefix + 0.5) / pre.T
    assert load_checkpoint(gated.out)["model_config"]["time_gate"] == {"t_above": gate}
    z = torch.randn(2, 6, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    mask = torch.ones(2, 6, 1, dtype=torch.float64)
    z[..., :3] -= z[..., :3].mean(dim=1, keepdim=True)
    first_branched = torch.full((2, 1), (pre.T - prefix) / pre.T, dtype=torch.float64)
    last_shared = torch.full((2, 1), (pre.T - prefix + 1) / pre.T, dtype=torch.float64)

    def eps(model, t):
        dtype = next(model.parameters()).dtype
        return model.phi(z.to(dtype), t.to(dtype), mask.to(dtype)).double()

    for use_ema in (True, False):
        model = load_model(gated.out, use_ema=use_ema).to(pre.schedule.gamma.dtype)
        assert torch.equal(eps(model, last_shared), eps(pre, last_shared))
        assert not torch.equal(eps(model, first_branched), eps(pre, first_branched))
    ungated = load_model(uninterrupted.out).to(pre.schedule.gamma.dtype)
    assert "time_gate" not in load_checkpoint(uninterrupted.out)["model_config"]
    assert not torch.equal(eps(ungated, last_shared), eps(pre, last_shared))


def test_resume_with_the_official_update_reaches_the_same_bits(tiny_ckpt, tmp_path):
    """A run stopped between checkpoints resumes the micro-batch step count, the schedule and AdamW's state."""
    cfg = _config(**PAPER_UPDATE)
    once = finetune(cfg, tiny_ckpt, tmp_path / "once.pt", None, backend=HarmonicBackend(), progress=False)

    class Stop(Exception):
        pass

    def stop(iteration):
        if iteration == 3:  # one iteration past the checkpoint at 2
            raise Stop

    out = tmp_path / "resumed.pt"
    with pytest.raises(Stop):
        finetune(cfg, tiny_ckpt, out, None, backend=HarmonicBackend(), progress=False, callback=stop)
    assert load_checkpoint(partial_path(out))["extra"]["optimizer_steps"] == 8
    again = finetune(cfg, tiny_ckpt, out, None, backend=HarmonicBackend(), progress=False)
    assert again.resumed_from == 2
    _assert_same_state(once.out, out)


def test_a_run_stopped_after_an_iteration_resumes_to_the_same_bits(uninterrupted, tiny_ckpt, tmp_path):
    """--stop-after-iteration (a short screen of a setting) leaves the run where an uninterrupted one is: iteration
    3 is not a periodic checkpoint (checkpoint_every 2), so the stop itself must write it."""
    out, history = tmp_path / "aligned.pt", tmp_path / "history.parquet"
    stopped = finetune(
        _config(), tiny_ckpt, out, history, backend=HarmonicBackend(), progress=False, stop_after_iteration=3
    )
    assert stopped.out == partial_path(out) and stopped.iteration == 3 and not out.exists()
    assert load_checkpoint(partial_path(out))["extra"]["iteration"] == 3
    assert pq.read_table(history).num_rows == 3
    again = finetune(_config(), tiny_ckpt, out, history, backend=HarmonicBackend(), progress=False)
    assert again.resumed_from == 3 and again.iteration == 4
    _assert_same_state(uninterrupted.out, out)
