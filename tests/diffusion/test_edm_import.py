"""EDM args/state-dict import: safe unpickling, refusal of mismatches, and our checkpoint round trip."""

from __future__ import annotations

import argparse
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from elign.diffusion.checkpoint import CHECKPOINT_FORMAT, load_checkpoint, load_model, save_checkpoint
from elign.diffusion.edm_import import EDMImportError, edm_args_to_model_config, import_edm, load_edm_args, map_edm_key
from elign.diffusion.factory import build_model, model_config_of
from elign.model.presets import make_model_config

REF = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "edm"


@pytest.fixture(scope="module")
def edm_small():
    assert REF.is_dir(), f"EDM reference files not found at {REF}"
    args = load_edm_args(REF / "edm_small_args.pickle")
    state = torch.load(REF / "edm_small_generative_model.npy", weights_only=True)
    return args, state


def test_pickle_and_json_args_agree(edm_small):
    args, _ = edm_small
    from_json = load_edm_args(REF / "edm_small_args.json")
    assert isinstance(args, argparse.Namespace)
    assert edm_args_to_model_config(args) == edm_args_to_model_config(from_json)


def test_published_args_map_onto_presets():
    qm9 = edm_args_to_model_config(load_edm_args(REF / "edm_qm9_args.pickle"))
    geom = edm_args_to_model_config(load_edm_args(REF / "edm_geom_drugs_args.pickle"))
    assert qm9 == make_model_config("edm_qm9")
    assert geom == make_model_config("edm_geom")


def test_pickle_with_other_classes_is_refused(tmp_path):
    marker = tmp_path / "executed"
    evil = tmp_path / "evil.pickle"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil.write_bytes(pickle.dumps(argparse.Namespace(nf=32, payload=Evil())))
    with pytest.raises(EDMImportError, match="only contain argparse.Namespace"):
        load_edm_args(evil)
    assert not marker.exists()
    other = tmp_path / "other.pickle"
    other.write_bytes(pickle.dumps({"nf": 32, "path": Path("/x")}))
    with pytest.raises(EDMImportError, match="refusing to unpickle"):
        load_edm_args(other)
    plain = tmp_path / "plain.pickle"
    plain.write_bytes(pickle.dumps({"nf": 32}))
    with pytest.raises(EDMImportError, match="expected an argparse.Namespace"):
        load_edm_args(plain)


@pytest.mark.parametrize(
    "change,message",
    [
        ({"n_layers": 3}, "2 equivariant blocks.*n_layers=3"),
        ({"nf": 64}, r"'dynamics.egnn.embedding.weight'.*\(32, 7\).*\(64, 7\).*nf=64"),
        ({"include_charges": False}, r"embedding.weight.*\(32, 7\).*\(32, 6\)"),
        ({"inv_sublayers": 2}, "lacks 'dynamics.egnn.blocks.0.gcls.1"),
        ({"attention": False}, "att_mlp"),
        ({"diffusion_steps": 500}, r"gamma.gamma.*\(1001,\).*\(501,\)"),
        ({"diffusion_noise_schedule": "polynomial_3"}, "noise schedule differs"),
        ({"model": "gnn_dynamics"}, "only 'egnn_dynamics'"),
    ],
)
def test_mismatched_architecture_is_refused(edm_small, change, message):
    args, state = edm_small
    bad = argparse.Namespace(**{**vars(args), **change})
    with pytest.raises(EDMImportError, match=message):
        import_edm(bad, state)


def test_unknown_state_dict_key_is_refused(edm_small):
    args, state = edm_small
    with pytest.raises(EDMImportError, match="unexpected key 'gamma.l1.weight'"):
        import_edm(args, {**state, "gamma.l1.weight": torch.zeros(1, 1)})
    assert (
        map_edm_key("dynamics.egnn.e_block_3.gcl_equiv.coord_mlp.4.weight")
        == "dynamics.egnn.blocks.3.coord_update.coord_mlp.4.weight"
    )


def test_checkpoint_round_trip(edm_small, tmp_path):
    args, state = edm_small
    model, config = import_edm(args, state)
    path = save_checkpoint(
        tmp_path / "sub" / "model.pt",
        config,
        model.state_dict(),
        ema_state_dict=model.state_dict(),
        extra={"source": "edm_small"},
    )
    assert sorted(os.listdir(path.parent)) == ["model.pt"]  # no temp files left
    ckpt = load_checkpoint(path)
    assert ckpt["format"] == CHECKPOINT_FORMAT and ckpt["extra"] == {"source": "edm_small"}
    loaded = load_model(path)
    assert model_config_of(loaded) == config
    g = {k: torch.from_numpy(v) for k, v in np.load(REF / "edm_small_golden.npz").items()}
    with torch.no_grad():
        mu, sigma = loaded.p_zs_given_zt(g["s"], g["t"], g["z_t"], g["node_mask"])
    assert np.abs(mu.numpy() - g["mu"].numpy()).max() / np.abs(g["mu"].numpy()).max() < 1e-10


def test_failed_save_leaves_nothing(tmp_path):
    config = make_model_config("small_cpu", hidden_nf=8, n_layers=1)
    model = build_model(config)
    target = tmp_path / "model.pt"
    with pytest.raises(Exception):  # noqa: B017 (whatever torch raises on an unpicklable value)
        save_checkpoint(target, config, model.state_dict(), extra={"bad": lambda: None})
    assert os.listdir(tmp_path) == []


def test_load_checkpoint_rejects_foreign_files(tmp_path):
    path = tmp_path / "edm.npy"
    torch.save({"buffer": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="not an elign checkpoint"):
        load_checkpoint(path)
