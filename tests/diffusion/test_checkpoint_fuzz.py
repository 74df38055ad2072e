"""Damaged and mismatched checkpoints (issue 14): one CheckpointError naming the file and the mismatch.

Generated: files cut at any byte (0 bytes included), random bytes, a folder, foreign pickles, and
checkpoints whose weights do not fit their own ``model_config`` (a tensor missing, one too many, another
architecture's shapes, non-finite values, a broken model_config) in ``state_dict`` or ``ema_state_dict``.
``load_checkpoint`` and ``load_model`` (what sample, finetune and pretrain's init_from/resume use) raise
the same message; torch's ``size mismatch`` never reaches the user. Intact checkpoints load as saved.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from elign.diffusion.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from elign.diffusion.factory import build_model
from elign.io.errors import DataFormatError
from elign.model.presets import make_model_config

CONFIG = make_model_config("small_cpu", hidden_nf=8, n_layers=1)
OTHER = make_model_config("small_cpu", hidden_nf=16, n_layers=2)


class Saved(tuple):
    def __repr__(self) -> str:  # hypothesis prints fixtures of a failing example: not the bytes
        return f"Saved({self[0]})"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(path, raw bytes, state dict) of an intact checkpoint with EMA weights."""
    torch.manual_seed(0)
    model = build_model(CONFIG)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    path = save_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt", CONFIG, state, state, extra={"step": 3})
    return Saved((path, path.read_bytes(), state))


def expect_error(path, *fragments: str) -> str:
    for load in (load_checkpoint, load_model):
        with pytest.raises(CheckpointError) as exc:
            load(path)
        msg = str(exc.value)
        assert isinstance(exc.value, DataFormatError) and msg.startswith(f"{path}: ") and "\n" not in msg, msg
        assert all(f in msg for f in fragments), msg
    return msg


def test_intact_checkpoint_loads_as_saved(saved):
    path, _, state = saved
    model = load_model(path)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, state[name])


@given(data=st.data())
def test_truncated_file(fuzz_dir, saved, data):
    _, raw, _ = saved
    cut = data.draw(st.integers(0, len(raw) - 1))
    path = fuzz_dir / "cut.pt"
    path.write_bytes(raw[:cut])
    expect_error(path, "is empty" if cut == 0 else "")


@given(blob=st.binary(min_size=1, max_size=2000))
def test_random_bytes(fuzz_dir, blob):
    path = fuzz_dir / "noise.pt"
    path.write_bytes(blob)
    expect_error(path)


@given(
    obj=st.one_of(
        st.lists(st.integers(), max_size=3),
        st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
        st.just({"format": "elign.checkpoint/0"}),
        st.just({"format": "elign.checkpoint/1"}),
    )
)
def test_foreign_pickles(fuzz_dir, obj):
    path = fuzz_dir / "foreign.pt"
    torch.save(obj, path)
    expect_error(path)


def test_folder_is_named_as_a_folder(tmp_path, saved):
    (tmp_path / "pretrained.pt").write_bytes(saved[1])
    expect_error(tmp_path, "is a folder", "pretrained.pt")


def _mismatched(state: dict, how: str, data) -> tuple[dict, str]:
    names = sorted(state)
    name = data.draw(st.sampled_from(names))
    state = dict(state)
    if how == "missing":
        del state[name]
        return state, "missing tensors"
    if how == "unexpected":
        state[name + ".extra"] = torch.zeros(2)
        return state, "unexpected tensors"
    if how == "non_finite":
        bad = state[name].clone().to(torch.float64 if not state[name].is_floating_point() else state[name].dtype)
        bad.view(-1)[data.draw(st.integers(0, bad.numel() - 1))] = data.draw(
            st.sampled_from([float("nan"), float("inf")])
        )
        state[name] = bad
        return state, "non-finite"
    other = build_model(OTHER).state_dict()  # another architecture's weights under this model_config
    return other, "does not fit"


@given(
    data=st.data(),
    how=st.sampled_from(["missing", "unexpected", "non_finite", "architecture"]),
    which=st.sampled_from(["state_dict", "ema_state_dict"]),
)
def test_weights_that_do_not_fit_the_model_config(fuzz_dir, saved, data, how, which):
    _, _, state = saved
    damaged, fragment = _mismatched(state, how, data)
    path = fuzz_dir / "mismatch.pt"
    weights = {
        "state_dict": damaged if which == "state_dict" else state,
        "ema_state_dict": damaged if which == "ema_state_dict" else state,
    }
    save_checkpoint(path, CONFIG, weights["state_dict"], weights["ema_state_dict"])
    expect_error(path, which, fragment)


@given(
    key=st.sampled_from(["atom_decoder", "include_charges", "dynamics", "diffusion"]),
    drop=st.booleans(),
    value=st.one_of(st.none(), st.integers(-3, 3), st.text(max_size=4), st.just({})),
)
def test_broken_model_config(fuzz_dir, saved, key, drop, value):
    _, _, state = saved
    config = dict(CONFIG)
    if drop:
        del config[key]
    else:
        config[key] = value
    path = fuzz_dir / "config.pt"
    save_checkpoint(path, config, state)
    try:
        expected = build_model(config).state_dict()
    except Exception:  # noqa: BLE001 (any failure: the config does not describe a model)
        expect_error(path, "model_config does not describe a model")
        return
    if {k: v.shape for k, v in expected.items()} != {k: v.shape for k, v in state.items()}:
        expect_error(path, "state_dict does not fit")
        return
    model = load_model(path)  # e.g. diffusion: {} means the defaults: a model, with the weights as saved
    assert all(torch.equal(t, state[k]) for k, t in model.state_dict().items())
