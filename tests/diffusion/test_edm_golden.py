"""Our backbone reproduces EDM's own outputs (``shared/reference/edm``) to float64 round-off.

The reference was produced by running EDM's code (ehoogeboom/e3_diffusion_for_molecules, fce07d7) with a
small random model on three QM9 molecules; see the README beside the files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from elign.diffusion.edm_import import import_edm, load_edm_args
from elign.model.graph import fully_connected_edge_mask

REF = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "edm"
RTOL = 1e-10


def _rel(ours: torch.Tensor, ref: np.ndarray) -> float:
    """max |ours − ref| / max |ref| (the scale of the quantity)."""
    return float(np.abs(ours.detach().numpy() - ref).max() / np.abs(ref).max())


@pytest.fixture(scope="module")
def golden():
    assert REF.is_dir(), f"EDM reference files not found at {REF} (shared/ beside the checkout)"
    model, config = import_edm(load_edm_args(REF / "edm_small_args.pickle"), REF / "edm_small_generative_model.npy")
    data = {k: torch.from_numpy(v) for k, v in np.load(REF / "edm_small_golden.npz").items()}
    return model, config, data


def test_model_is_float64_and_uses_stored_gamma_table(golden):
    model, config, _ = golden
    assert config["dynamics"]["n_layers"] == 2 and config["dynamics"]["hidden_nf"] == 32
    assert model.dynamics.egnn.embedding.weight.dtype == torch.float64
    stored = torch.load(REF / "edm_small_generative_model.npy", weights_only=True)["gamma.gamma"]
    assert torch.equal(model.schedule.gamma, stored)


def test_gamma_grid(golden):
    model, _, d = golden
    gamma = model.gamma(d["t_grid"] / model.T)
    assert _rel(gamma, d["gamma_grid"].numpy()) < RTOL


def test_eps_pred(golden):
    model, _, d = golden
    with torch.no_grad():
        eps = model.phi(d["z_t"], d["t"], d["node_mask"])
    assert _rel(eps, d["eps_pred"].numpy()) < RTOL
    assert np.abs(eps.numpy() - d["eps_pred"].numpy()).max() < 1e-12


def test_eps_pred_with_edm_edge_mask(golden):
    model, _, d = golden
    with torch.no_grad():
        eps = model.phi(d["z_t"], d["t"], d["node_mask"], edge_mask=fully_connected_edge_mask(d["node_mask"]))
    assert _rel(eps, d["eps_pred"].numpy()) < RTOL


def test_reverse_step_mu_sigma(golden):
    model, _, d = golden
    with torch.no_grad():
        mu, sigma = model.p_zs_given_zt(d["s"], d["t"], d["z_t"], d["node_mask"])
    assert _rel(mu, d["mu"].numpy()) < RTOL
    assert _rel(sigma, d["sigma"].numpy()) < RTOL
    assert sigma.shape == (3, 1, 1)


def test_forward_noising_reproduces_z_t(golden):
    model, _, d = golden
    gamma_t = model.gamma(d["t"])
    z_t = model.alpha(gamma_t, d["eps"]) * d["xh_normalized"] + model.sigma(gamma_t, d["eps"]) * d["eps"]
    assert _rel(z_t, d["z_t"].numpy()) < RTOL


def test_normalize_matches_edm(golden):
    """EDM casts features to float32 before scaling (charge/10 is rounded there); we do not, hence 1e-7."""
    model, _, d = golden
    mask = d["node_mask"]
    z = d["atomic_numbers"].long()
    type_index = torch.tensor([0, 0, 0, 0, 0, 0, 1, 2, 3, 4])  # Z -> column of H C N O F (Z=1,6,7,8,9)
    one_hot = F.one_hot(type_index[z.clamp(max=9)], 5).to(torch.float64) * mask
    charges = z[..., None].to(torch.float64) * mask
    x, h_cat, h_int, dlp = model.normalize(d["positions_ang"], one_hot, charges, mask)
    xh = torch.cat([x, h_cat, h_int], dim=2)
    assert np.abs(xh.numpy() - d["xh_normalized"].numpy()).max() < 1e-7
    assert np.array_equal(dlp.numpy(), d["delta_log_px"].numpy())
