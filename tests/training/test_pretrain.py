"""EDM pretraining: optimizer/EMA/clipping maths, determinism, resume after SIGKILL, data parallel."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from torch import nn

from elign.config import ConfigError, LrDecay, validate_config
from elign.diffusion.checkpoint import load_checkpoint, load_model, save_checkpoint
from elign.diffusion.factory import build_model
from elign.io.molecules import read_molecules
from elign.model.presets import make_model_config
from elign.testing.resume import assert_same_training_state, killed_at_marker
from elign.training import distributed as ddp
from elign.training.checkpointing import partial_path
from elign.training.determinism import derive_seed, global_batch
from elign.training.optim import EMA, GradNormQueue, clip_gradients, learning_rate
from elign.training.pretrain import model_config_from, pretrain
from elign.training.pretrain_state import HISTORY_COLUMNS

REPO = Path(__file__).resolve().parents[2]
TINY = {"preset": "small_cpu", "architecture": {"n_layers": 1, "hidden_nf": 16}, "device": "cpu"}
RUN = {"batch_size": 16, "max_steps": 12, "checkpoint_every": 6, "log_every": 4, "ema_decay": 0.9}


def _config(seed: int = 0, **pretrain):
    return validate_config({"seed": seed, "pretrain": {**TINY, **pretrain}})


@pytest.fixture(scope="module")
def train_table(tiny_qm9_dir):
    return read_molecules(tiny_qm9_dir / "train.parquet")


@pytest.fixture(scope="module")
def uninterrupted(train_table, tmp_path_factory):
    """12 steps in one go (float32, checkpoints at 6 and 12, history rows every 4)."""
    out = tmp_path_factory.mktemp("uninterrupted") / "model.pt"
    result = pretrain(_config(**RUN), train_table, out, out.with_name("history.parquet"), progress=False)
    return result


def _assert_same_state(a: Path, b: Path, history: bool = True) -> None:
    ea, eb = assert_same_training_state(a, b)
    assert ea["grad_norm_queue"] == eb["grad_norm_queue"]
    assert torch.equal(ea["rng"]["noise"], eb["rng"]["noise"])
    assert ea["step"] == eb["step"]
    for col in HISTORY_COLUMNS if history else ():
        if col != "seconds":
            assert ea["history"][col] == eb["history"][col], col


# ------------------------------------------------------------------------------------------ maths
def test_ema_update_is_edm_formula():
    torch.manual_seed(0)
    model = nn.Linear(3, 2).double()
    model.register_buffer("table", torch.arange(3.0))
    p0 = {k: v.detach().clone() for k, v in model.named_parameters()}
    ema = EMA(model, 0.9)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    p1 = {k: v.detach().clone() for k, v in model.named_parameters()}
    ema.update(model)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(-2.0)
    ema.update(model)
    p2 = dict(model.named_parameters())
    for k in p0:
        expected = 0.9 * (0.9 * p0[k] + 0.1 * p1[k]) + 0.1 * p2[k]
        assert torch.allclose(ema.shadow[k], expected, rtol=1e-14, atol=1e-15)
    state = ema.state_dict(model)
    assert set(state) == {"weight", "bias", "table"} and torch.equal(state["table"], model.table)
    assert not torch.equal(state["weight"], model.weight)
    with pytest.raises(ValueError):
        EMA(model, 1.0)


def test_clipping_rule_on_hand_built_queue():
    p = nn.Parameter(torch.zeros(4, dtype=torch.float64))
    queue = GradNormQueue([1.0, 2.0, 3.0])
    allowed = 1.5 * 2.0 + 2.0 * np.sqrt(2.0 / 3.0)  # population std of (1, 2, 3)
    p.grad = torch.tensor([6.0, 8.0, 0.0, 0.0], dtype=torch.float64)  # norm 10 > allowed
    norm, max_norm, clipped = clip_gradients([p], queue)
    assert norm == pytest.approx(10.0) and max_norm == pytest.approx(allowed) and clipped
    assert torch.linalg.vector_norm(p.grad).item() == pytest.approx(allowed, rel=1e-5)
    assert queue.items[0] == pytest.approx(allowed) and len(queue.items) == 4
    p.grad = torch.tensor([0.3, 0.4, 0.0, 0.0], dtype=torch.float64)  # norm 0.5: untouched, pushed as is
    norm, _, clipped = clip_gradients([p], queue)
    assert not clipped and norm == pytest.approx(0.5) and queue.items[0] == pytest.approx(0.5)
    assert torch.equal(p.grad, torch.tensor([0.3, 0.4, 0.0, 0.0], dtype=torch.float64))
    seeded = GradNormQueue.seeded()
    assert seeded.items == [3000.0] and seeded.max_norm() == 4500.0
    for v in range(60):
        seeded.add(v)
    assert len(seeded.items) == 50 and seeded.items[0] == 59.0 and seeded.items[-1] == 10.0


def test_data_order_is_a_function_of_seed_and_epoch():
    n, bs = 64, 16
    e0 = np.concatenate([global_batch(k, n, bs, seed=3)[2] for k in range(4)])
    assert sorted(e0.tolist()) == list(range(n))
    assert global_batch(4, n, bs, 3)[:2] == (1, 0)
    assert np.array_equal(global_batch(5, n, bs, 3)[2], global_batch(5, n, bs, 3)[2])
    assert not np.array_equal(global_batch(4, n, bs, 3)[2], e0[:bs])
    assert not np.array_equal(global_batch(0, n, bs, 4)[2], e0[:bs])
    assert derive_seed(0, "a") == derive_seed(0, "a") != derive_seed(0, "b")
    # 65 molecules: the incomplete last batch is dropped, so epoch 1 starts at step 4
    assert global_batch(4, 65, bs, 3)[:2] == (1, 0)


def test_shards_and_divisibility():
    info = ddp.DistInfo(rank=1, world_size=2, local_rank=1, device=torch.device("cpu"))
    assert info.shard(16) == slice(8, 16)
    with pytest.raises(ConfigError, match="batch_size=6 is not divisible by the number of processes \\(4\\)"):
        ddp.check_divisible(6, 4)


# ------------------------------------------------------------------------------------ training runs
def test_loss_decreases(train_table, tmp_path):
    cfg = _config(batch_size=16, max_steps=48, lr=3e-3, log_every=1, checkpoint_every=1000)
    result = pretrain(cfg, train_table, tmp_path / "m.pt", None, progress=False)
    loss = load_checkpoint(result.out)["extra"]["history"]["loss"]
    assert len(loss) == 48 and np.isfinite(loss).all()
    # an optimizer that does not learn stays at ratio ≈ 1 ± 0.05; this one reaches ≈ 0.45
    assert np.mean(loss[-12:]) < 0.7 * np.mean(loss[:12])


def test_history_and_final_checkpoint(uninterrupted):
    history = pq.read_table(uninterrupted.history)
    assert history.column_names == list(HISTORY_COLUMNS)
    df = history.to_pandas()
    assert df["step"].tolist() == [4, 8, 12] and df["epoch"].tolist() == [0, 1, 2]  # 4 steps per epoch
    assert str(df["clipped"].dtype) == "bool" and str(df["step"].dtype) == "int64"
    assert (df["lr"] == 1e-4).all() and df["seconds"].is_monotonic_increasing
    assert np.isfinite(df["loss"]).all() and (df["grad_norm"] > 0).all()
    assert uninterrupted.loss == pytest.approx(df["loss"].iloc[-1])
    assert not partial_path(uninterrupted.out).exists()
    ckpt = load_checkpoint(uninterrupted.out)
    extra = ckpt["extra"]
    assert extra["finished"] and extra["step"] == 12 and (extra["epoch"], extra["epoch_step"]) == (3, 0)
    assert extra["config"]["pretrain"]["batch_size"] == 16 and extra["data"]["train_molecules"] == 64
    assert ckpt["model_config"]["dynamics"]["hidden_nf"] == 16
    model = load_model(uninterrupted.out)  # EMA weights
    assert not model.training


_KILLED_RUN = """
import sys, time, json, torch
from pathlib import Path
torch.set_num_threads(int(sys.argv[4]))
from elign.config import validate_config
from elign.training.pretrain import pretrain
from elign.io.molecules import read_molecules
marker = Path(sys.argv[3])
def hold(step):
    if step == 8:  # two steps past the checkpoint at 6: the restart must redo them
        marker.write_text("8")
        time.sleep(120)
pretrain(validate_config(json.loads(sys.argv[1])), read_molecules(sys.argv[2]), sys.argv[5],
         sys.argv[5].replace("model.pt", "history.parquet"), progress=False, callback=hold)
"""


def test_resume_after_sigkill_is_bit_identical(uninterrupted, train_table, tiny_qm9_dir, tmp_path):
    import json

    out = tmp_path / "model.pt"
    marker = tmp_path / "at_step_8"
    cfg = {"seed": 0, "pretrain": {**TINY, **RUN}}
    argv = [
        sys.executable,
        "-c",
        _KILLED_RUN,
        json.dumps(cfg),
        str(tiny_qm9_dir / "train.parquet"),
        str(marker),
        str(torch.get_num_threads()),
        str(out),
    ]
    with killed_at_marker(argv, marker, "training subprocess", REPO):  # reached step 8
        assert load_checkpoint(partial_path(out))["extra"]["step"] == 6
    assert not out.exists()
    result = pretrain(_config(**RUN), train_table, out, out.with_name("history.parquet"), progress=False)
    assert result.resumed_from == 6 and result.step == 12
    _assert_same_state(uninterrupted.out, out)
    assert pq.read_table(out.with_name("history.parquet")).column("step").to_pylist() == [4, 8, 12]


def test_extend_finished_run_and_config_checks(uninterrupted, train_table, tmp_path):
    out = tmp_path / "model.pt"
    first = pretrain(_config(**{**RUN, "max_steps": 6}), train_table, out, None, progress=False)
    assert first.step == 6 and load_checkpoint(out)["extra"]["finished"]
    with pytest.raises(ConfigError, match=r"pretrain\.lr: 0\.0001 -> 0\.001"):
        pretrain(_config(**{**RUN, "lr": 1e-3}), train_table, out, None, progress=False)
    second = pretrain(_config(**RUN), train_table, out, None, progress=False)  # max_steps 6 -> 12
    assert second.resumed_from == 6
    _assert_same_state(uninterrupted.out, out, history=False)  # history has an extra row at the old end, 6
    assert load_checkpoint(out)["extra"]["history"]["step"] == [4, 6, 8, 12]
    again = pretrain(_config(**RUN), train_table, out, None, progress=False)
    assert again.step == 12 and again.resumed_from == 12
    with pytest.raises(ConfigError, match="other data"):
        pretrain(_config(**RUN), train_table.take(np.arange(48)), out, None, progress=False)


def test_learning_rate_schedule():
    assert learning_rate(123, 5e-4, None) == 5e-4
    cos = LrDecay(start_step=100, end_step=200, final_lr=1e-5)
    lin = LrDecay(start_step=100, end_step=200, final_lr=1e-5, shape="linear")
    steps = np.array([0, 99, 100, 150, 200, 10_000])
    np.testing.assert_allclose(learning_rate(steps, 5e-4, cos), [5e-4, 5e-4, 5e-4, (5e-4 + 1e-5) / 2, 1e-5, 1e-5])
    np.testing.assert_allclose(learning_rate(125, 5e-4, lin), 5e-4 - 0.25 * (5e-4 - 1e-5))
    # cosine: slow at both ends, so a quarter of the way it has fallen by (1 - cos(π/4)) / 2 ≈ 14.6 %
    np.testing.assert_allclose(learning_rate(125, 5e-4, cos), 5e-4 - (1 - np.cos(np.pi / 4)) / 2 * (5e-4 - 1e-5))
    assert np.all(np.diff(learning_rate(np.arange(300), 5e-4, cos)) <= 0)
    with pytest.raises(ValueError, match="end_step"):
        LrDecay(start_step=5, end_step=5, final_lr=1e-5)


def test_lr_decay_added_on_resume_is_the_same_trajectory(train_table, tmp_path):
    """A decay that starts at the resumed step gives the weights of a run that had it from scratch."""
    decay = {"start_step": 6, "end_step": 10, "final_lr": 1e-5, "shape": "linear"}
    whole = pretrain(_config(**RUN, lr_decay=decay), train_table, tmp_path / "a" / "model.pt", None, progress=False)
    rates = load_checkpoint(whole.out)["extra"]["history"]["lr"]
    # rows after 4, 8 and 12 steps log the rate of the last step taken (0-based 3, 7 and 11)
    assert rates == pytest.approx([1e-4, 1e-4 - 0.25 * (1e-4 - 1e-5), 1e-5])
    out = tmp_path / "b" / "model.pt"
    pretrain(_config(**{**RUN, "max_steps": 6}), train_table, out, None, progress=False)  # constant rate so far
    with pytest.raises(ConfigError, match=r"changes the learning rate of steps already taken \(first: step 5"):
        pretrain(_config(**RUN, lr_decay={**decay, "start_step": 4}), train_table, out, None, progress=False)
    resumed = pretrain(_config(**RUN, lr_decay=decay), train_table, out, None, progress=False)
    assert resumed.resumed_from == 6
    _assert_same_state(whole.out, out, history=False)  # the resumed history has an extra row at 6


def test_init_from_keeps_the_checkpoint_architecture(train_table, tmp_path, caplog):
    src = tmp_path / "imported.pt"
    config = make_model_config("small_cpu", n_layers=2, hidden_nf=8)
    save_checkpoint(src, config, build_model(config).state_dict())
    cfg = _config(batch_size=16, max_steps=2, init_from=str(src))
    with caplog.at_level(logging.WARNING, logger="elign.pretrain"):
        result = pretrain(cfg, train_table, tmp_path / "out.pt", None, progress=False)
    assert "architecture wins" in caplog.text
    got = load_checkpoint(result.out)["model_config"]["dynamics"]
    assert (got["n_layers"], got["hidden_nf"]) == (2, 8)
    assert model_config_from(cfg.pretrain)["dynamics"]["hidden_nf"] == 16
    with pytest.raises(ValueError, match="not a resumable pretraining checkpoint"):
        pretrain(cfg, train_table, src, None, progress=False)


def test_ema_and_clipping_off(train_table, tmp_path):
    cfg = _config(batch_size=16, max_steps=2, log_every=1, ema_decay=0.0, clip_grad=False)
    result = pretrain(cfg, train_table, tmp_path / "m.pt", None, progress=False)
    ckpt = load_checkpoint(result.out)
    assert ckpt["ema_state_dict"] is None and ckpt["extra"]["grad_norm_queue"] == [3000.0]
    assert ckpt["extra"]["history"]["clipped"] == [False, False] and min(ckpt["extra"]["history"]["grad_norm"]) > 0
    assert load_model(result.out).dynamics.config.n_layers == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_equal_one_process(train_table, tiny_qm9_dir, tmp_path):
    """Two gloo ranks launched as torchrun does (RANK/WORLD_SIZE/MASTER_* env) == one process, float64."""
    import json

    run = {"batch_size": 16, "max_steps": 2, "checkpoint_every": 1, "log_every": 1, "ema_decay": 0.9}
    cfg = {"seed": 0, "pretrain": {**TINY, **run}}
    out2 = tmp_path / "two" / "model.pt"
    port = _free_port()
    procs = []
    for rank in range(2):
        env = {
            **os.environ,
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": "2",
            "LOCAL_WORLD_SIZE": "2",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "OMP_NUM_THREADS": "1",
        }
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "elign.cli.main",
                    "pretrain",
                    "--config-json",
                    json.dumps(cfg),
                    "--data-dir",
                    str(tiny_qm9_dir),
                    "--out",
                    str(out2),
                    "--dtype",
                    "float64",
                    "--no-progress",
                ],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    logs = [p.communicate(timeout=180)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    assert "2 process(es)" in logs[0]
    assert sorted(p.name for p in out2.parent.iterdir()) == ["backbone.json", "history.parquet", "model.pt"]
    one = pretrain(
        validate_config(cfg), train_table, tmp_path / "one" / "model.pt", None, dtype=torch.float64, progress=False
    )
    a, b = load_checkpoint(one.out), load_checkpoint(out2)
    for key in ("state_dict", "ema_state_dict"):
        for name, va in a[key].items():
            assert va.dtype == torch.float64
            assert torch.allclose(b[key][name], va, rtol=1e-10, atol=1e-13), f"{key}.{name}"
    assert np.allclose(a["extra"]["history"]["loss"], b["extra"]["history"]["loss"], rtol=1e-12)
    assert np.allclose(a["extra"]["history"]["grad_norm"], b["extra"]["history"]["grad_norm"], rtol=1e-12)
    assert b["extra"]["world_size"] == 2


# ------------------------------------------------------------------------------ in-training evaluation
def test_evaluation_is_recorded_and_leaves_the_trajectory_alone(uninterrupted, train_table, tmp_path):
    out = tmp_path / "model.pt"
    result = pretrain(
        _config(**RUN, eval_every=8, eval_molecules=4),
        train_table,
        out,
        out.with_name("history.parquet"),
        progress=False,
    )
    _assert_same_state(uninterrupted.out, result.out, history=False)  # sampling used its own RNG
    df = pq.read_table(out.with_name("history.parquet")).to_pandas()
    assert df["step"].tolist() == [4, 8, 12]
    evaluated = df["eval_molecules"].notna().to_numpy()
    assert evaluated.tolist() == [False, True, False] and int(df["eval_molecules"].iloc[1]) == 4
    for col in ("eval_atom_stability", "eval_molecule_stability", "eval_validity"):
        assert 0.0 <= df[col].iloc[1] <= 1.0 and df[col].isna().tolist() == [True, False, True]
    assert df["eval_seconds"].iloc[1] > 0
    snapshot = load_checkpoint(out.with_name("model.pt.evals") / "step_00000008.pt")
    assert snapshot["extra"]["evaluation"]["eval_molecules"] == 4 and snapshot["extra"]["ema"]
    # the same weights give the same evaluation (fixed sizes and noise): evaluations compare checkpoints
    again = pretrain(
        _config(**{**RUN, "max_steps": 8}, eval_every=8, eval_molecules=4),
        train_table,
        tmp_path / "again.pt",
        None,
        progress=False,
    )
    history = load_checkpoint(again.out)["extra"]["history"]
    assert history["eval_atom_stability"][-1] == df["eval_atom_stability"].iloc[1]


def test_evaluation_settings_may_change_on_resume(uninterrupted, train_table, tmp_path):
    out = tmp_path / "model.pt"
    pretrain(_config(**{**RUN, "max_steps": 6}), train_table, out, None, progress=False)
    ckpt = load_checkpoint(out)  # drop the eval columns, as in a checkpoint written before they existed
    for col in (
        "eval_molecules",
        "eval_atom_stability",
        "eval_molecule_stability",
        "eval_validity",
        "eval_uniqueness",
        "eval_seconds",
    ):
        del ckpt["extra"]["history"][col]
    save_checkpoint(out, ckpt["model_config"], ckpt["state_dict"], ckpt["ema_state_dict"], ckpt["extra"])
    result = pretrain(
        _config(**RUN, eval_every=12, eval_molecules=2, eval_keep_weights=False), train_table, out, None, progress=False
    )
    assert result.resumed_from == 6
    _assert_same_state(uninterrupted.out, out, history=False)
    history = load_checkpoint(out)["extra"]["history"]
    assert history["step"] == [4, 6, 8, 12] and history["eval_molecules"] == [None, None, None, 2]
    assert not out.with_name("model.pt.evals").exists()


def test_eval_every_must_fall_on_history_rows():
    with pytest.raises(ConfigError, match="multiple of pretrain.log_every"):
        _config(**RUN, eval_every=6)


def test_segments_record_each_sitting(uninterrupted, train_table, tmp_path):
    out = tmp_path / "model.pt"
    pretrain(_config(**{**RUN, "max_steps": 6}), train_table, out, None, progress=False)
    pretrain(_config(**RUN), train_table, out, None, progress=False)
    segments = load_checkpoint(out)["extra"]["segments"]
    assert [(s["start_step"], s["end_step"]) for s in segments] == [(0, 6), (6, 12)]
    for s in segments:
        assert s["threads"] == torch.get_num_threads() and s["device"] == "cpu" and s["cpu"]
        assert 0 < s["train_seconds"] <= s["wall_seconds"] and s["git_sha"]
    total = load_checkpoint(out)["extra"]["seconds"]
    assert sum(s["train_seconds"] for s in segments) == pytest.approx(total)


def test_time_limited_sitting_leaves_a_resume_file(uninterrupted, train_table, tmp_path):
    out = tmp_path / "model.pt"
    first = pretrain(_config(**RUN), train_table, out, None, progress=False, time_limit_s=0.0)
    assert first.step == 1 and first.out == partial_path(out) and not out.exists()
    assert load_checkpoint(partial_path(out))["extra"]["step"] == 1
    second = pretrain(_config(**RUN), train_table, out, None, progress=False)
    assert second.resumed_from == 1 and second.step == 12
    _assert_same_state(uninterrupted.out, out, history=False)
    segments = load_checkpoint(out)["extra"]["segments"]
    assert [(s["start_step"], s["end_step"]) for s in segments] == [(0, 1), (1, 12)]


def test_edge_budget_micro_batches_give_the_same_step(train_table, tmp_path):
    """A step cut into micro-batches under pretrain.max_batch_edges takes the one-pass step: same losses, same
    weights (round-off only), while each forward pass holds fewer edges."""
    from elign.data.batching import edge_count, plan_batches

    run = {"batch_size": 16, "max_steps": 3, "checkpoint_every": 3, "log_every": 1, "ema_decay": 0.9}
    budget = int(edge_count(train_table.num_atoms).max()) + 40  # one large molecule and a small one per pass
    _, _, first = global_batch(0, len(train_table), 16, 0)
    assert len(plan_batches(train_table.num_atoms[first], 16, budget)) >= 4  # the step is really cut
    one = pretrain(_config(**run), train_table, tmp_path / "one.pt", None, progress=False)
    cut = pretrain(_config(max_batch_edges=budget, **run), train_table, tmp_path / "cut.pt", None, progress=False)
    a, b = load_checkpoint(one.out), load_checkpoint(cut.out)
    assert np.allclose(a["extra"]["history"]["loss"], b["extra"]["history"]["loss"], rtol=1e-5, atol=1e-6)
    init = build_model(a["model_config"]).state_dict()  # the same seeded initial weights for both runs
    wa, wb = a["state_dict"], b["state_dict"]
    assert max(float((wa[k] - init[k]).abs().max()) for k in wa) > 1e-3  # the steps moved the weights
    for name in wa:
        assert torch.allclose(wa[name], wb[name], rtol=1e-4, atol=1e-6), name
