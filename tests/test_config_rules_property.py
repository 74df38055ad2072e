"""Property (issue 29): a config mutated at one key, or a pair, is either rejected with a message naming
the key, or every check the affected stage runs before its work passes: nothing in between.

The stage checks replayed here are the stages' own functions (sizes, trained steps, DFT level and counts);
the dry run of accepted mutants goes through Snakemake in tests/workflow/test_workflow_config_errors.py.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from elign.config import ConfigError, deep_merge, load_config, validate_config
from elign.config_resources import pyscf_level_problems
from elign.data.sizes import resolve_sizes
from elign.rl.rollout import choose_trained_steps

KEYS = [
    ("finetune", "shared_prefix_steps"),
    ("finetune", "train_steps_per_rollout"),
    ("finetune", "prompts_per_iteration"),
    ("finetune", "sizes"),
    ("sample", "num_molecules"),
    ("sample", "guidance_num_molecules"),
    ("sample", "sizes"),
    ("pretrain", "diffusion_steps"),
    ("pretrain", "batch_size"),
    ("dft", "molecules_per_model"),
    ("dft", "guided_molecules"),
    ("dft", "shards"),
    ("data", "subset", "train"),
    ("report", "n_bootstrap"),
]
VALUES = st.one_of(
    st.sampled_from([0, 1, 2, 3, 6, 8, 14, 19, 20, 21, 256, 10**7, 10**30, None, [], "histogram", "1:30"]),
    st.integers(-3, 40),
    st.lists(st.integers(-1, 30), max_size=9),
)


def nested(path: tuple, value) -> dict:
    for key in reversed(path):
        value = {key: value}
    return value


def stage_checks(cfg) -> None:
    """What the finetune, sample and DFT stages check before their work (raises if one would fail)."""
    fc, sc, dft = cfg.finetune, cfg.sample, cfg.dft
    hist = {9: 3, 12: 5}
    resolve_sizes(fc.sizes, fc.prompts_per_iteration, 0, hist)
    resolve_sizes(sc.sizes, sc.num_molecules, 0, hist)
    resolve_sizes(sc.sizes, sc.guidance_num_molecules or sc.num_molecules, 0, hist)
    steps = cfg.pretrain.diffusion_steps  # smoke trains its backbone: T is this
    assert 0 <= fc.shared_prefix_steps < steps
    branched = steps - fc.shared_prefix_steps
    trained = choose_trained_steps(branched, 2, fc.train_steps_per_rollout, np.random.default_rng(0))
    assert trained.shape[1] == (fc.train_steps_per_rollout or branched)
    assert dft.shards <= min(dft.molecules_per_model, dft.guided_molecules or dft.molecules_per_model)
    assert dft.molecules_per_model <= sc.num_molecules
    assert (dft.guided_molecules or dft.molecules_per_model) <= (sc.guidance_num_molecules or sc.num_molecules)
    assert cfg.pretrain.batch_size <= (cfg.data.subset.train or 100_000)
    assert not pyscf_level_problems(dft.functional, dft.basis, ["H", "C", "N", "O", "F"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations=st.lists(st.tuples(st.sampled_from(KEYS), VALUES), min_size=1, max_size=2))
def test_one_or_two_mutations_are_rejected_by_key_or_pass_the_stage_checks(repo_root, mutations):
    base = load_config(repo_root / "config/config.yaml", repo_root / "config/experiments/smoke.yaml")
    data = base.model_dump(mode="json")
    for path, value in mutations:
        data = deep_merge(data, nested(path, value))
    try:
        cfg = validate_config(data)
    except ConfigError as exc:
        assert any(".".join(path) in str(exc) for path, _ in mutations), str(exc)
        return
    stage_checks(cfg)
