"""The config's semantic stage (issue 29): each family of mistakes that would fail a stage hours later is
rejected when the config is read, in one message naming the key(s), the value and the fix, all at once."""

from __future__ import annotations

import pytest
import yaml

from elign.config import ConfigError, load_config, validate_config
from elign.config_rules import PRESET_ATOM_DECODERS, WORKFLOW_MODELS
from elign.model.presets import PRESETS

SMOKE = ("config/config.yaml", "config/experiments/smoke.yaml")


def smoke_with(repo_root, tmp_path, text: str):
    (tmp_path / "x.yaml").write_text(text)
    return load_config(*(repo_root / f for f in SMOKE), tmp_path / "x.yaml")


def rejected(repo_root, tmp_path, text: str) -> str:
    with pytest.raises(ConfigError) as exc:
        smoke_with(repo_root, tmp_path, text)
    return str(exc.value)


@pytest.mark.parametrize(
    "text, expected",
    [  # values a later library rejects
        ("dft: {functional: b3lpy}", "dft.functional: 'b3lpy': PySCF does not know the functional"),
        ("dft: {basis: 6-31gg}", "dft.basis: '6-31gg': PySCF does not know the basis"),
        ("pretrain: {atom_decoder: [H, C, N, O, F, I]}\ndft: {basis: 6-31g(d)}", "has no functions for I"),
        ("pretrain: {init_from: nowhere/model.pt}", "pretrain.init_from: nowhere/model.pt does not exist"),
        ("finetune: {mlff: {backend: aimnet2, model_path: no/such.jpt}}", "finetune.mlff.model_path: no/such.jpt"),
        ("pretrain: {source: {kind: edm, path: a.npy, edm_args: b.pickle}}", "pretrain.source.path: a.npy does not"),
        ("pretrain: {source: {kind: shipped, name: nope}}", "shipped backbone 'nope': models/nope/card.json does not"),
    ],
)
def test_values_a_later_library_rejects(repo_root, tmp_path, monkeypatch, text, expected):
    monkeypatch.chdir(repo_root)
    assert expected in rejected(repo_root, tmp_path, text)


@pytest.mark.parametrize(
    "text, expected",
    [  # empty or non-positive lists and counts
        ("sample: {sizes: []}", "sample.sizes: [] lists no atom count"),
        ("sample: {sizes: 0}", "sample.sizes: atom count 0: each must be 1 to 1,000"),
        ("finetune: {sizes: [5, -3]}", "finetune.sizes: atom count -3"),
        ("finetune: {sizes: [5, 6, 7]}", "finetune.sizes, finetune.prompts_per_iteration: lists 3 atom counts for"),
        ("data: {filters: {allowed_elements: []}}", "data.filters.allowed_elements: [] keeps no molecule"),
        ("data: {filters: {allowed_elements: [Cl]}}", "shares no element with data.source 'qm9pack'"),
        ("data: {source: files}", "data.files.paths: data.source is 'files' but no file is listed"),
    ],
)
def test_empty_or_non_positive(repo_root, tmp_path, text, expected):
    assert expected in rejected(repo_root, tmp_path, text)


@pytest.mark.parametrize(
    "text, expected",
    [  # cross-field contradictions (smoke: T = 20, prefix 14, 8 samples, 4 guided, 2 DFT molecules, 2 shards)
        ("finetune: {shared_prefix_steps: 20}", "finetune.shared_prefix_steps, pretrain.diffusion_steps: a shared"),
        ("finetune: {train_steps_per_rollout: 7}", "7 trained steps per rollout, but only 6 steps branch"),
        ("dft: {molecules_per_model: 9}", "dft.molecules_per_model, sample.num_molecules: 9 DFT molecules"),
        ("dft: {guided_molecules: 5}", "dft.guided_molecules, sample.guidance_num_molecules: 5 DFT molecules"),
        ("dft: {shards: 3}", "dft.shards, dft.molecules_per_model: 3 shards for 2 molecules"),
        ("pretrain: {batch_size: 257}", "pretrain.batch_size, data.subset.train: a batch of 257 molecules"),
        ("report: {baseline_model: pretrain}", "report.baseline_model: 'pretrain' is not one of the workflow's"),
        ("pretrain: {atom_decoder: [H, C, N, O]}", "lack ['F'], which the data keeps (data.source (qm9pack))"),
        ("sample: {sizes: [9, 9, 9, 9, 9, 9, 9, 9]}", "sample.sizes, sample.guidance_num_molecules: the guided"),
    ],
)
def test_cross_field_contradictions(repo_root, tmp_path, text, expected):
    assert expected in rejected(repo_root, tmp_path, text)


@pytest.mark.parametrize(
    "text, expected",
    [  # absurd magnitudes: the bound is named
        ("pretrain: {batch_size: 1.0e+30}", "pretrain.batch_size: 1e+30 is beyond the bound of 1,048,576"),
        ("sample: {num_molecules: 1000000000000}", "sample.num_molecules: 1e+12 is beyond the bound of 10,000,000"),
        ("finetune: {iterations: 10000000}", "finetune.iterations: 1e+07 is beyond the bound of 1,000,000"),
        ("finetune: {prompts_per_iteration: 2048, rollouts_per_prompt: 1024}", "2,097,152 rollouts run as one batch"),
        ("evaluate: {mlff: {batch_size: 99999999}}", "evaluate.mlff.batch_size: 1e+08 is beyond"),
    ],
)
def test_absurd_magnitudes(repo_root, tmp_path, text, expected):
    assert expected in rejected(repo_root, tmp_path, text)


def test_yaml_1_1_surprises(repo_root, tmp_path):
    msg = rejected(repo_root, tmp_path, "finetune: {shared_prefix_steps: 1:30}\nseed: 010\ndata: {dataset: no}\n")
    assert "finetune.shared_prefix_steps: 1:30: YAML 1.1 reads 1:30 as the sexagesimal (base 60) number 90" in msg
    assert "seed: 010: YAML 1.1 reads 010 as the octal (base 8) number 8" in msg
    assert "data.dataset: " in msg and "YAML 1.1 reads no as false: quote it, 'no'" in msg
    # a boolean key reads yes/no as meant; quoted text is text
    cfg = smoke_with(repo_root, tmp_path, "sample: {use_ema: no}\ndata: {dataset: 'no'}\n")
    assert cfg.sample.use_ema is False and cfg.data.dataset == "no"


def test_all_errors_at_once_even_beside_a_type_error(repo_root, tmp_path):
    msg = rejected(repo_root, tmp_path, "seed: abc\nsample: {sizes: []}\ndft: {shards: 3, functional: xyz}\n")
    for key in ("seed:", "sample.sizes:", "dft.shards, dft.molecules_per_model:", "dft.functional:"):
        assert f"\n  {key}" in msg, msg
    assert "[in " in msg


def test_quoted_numbers_are_refused_with_the_fix_everywhere(repo_root, tmp_path):
    for text in ("dft: {molecules_per_model: '2'}", "seed: '1'", "finetune: {lr: '1e-4'}"):
        assert "without quotes" in rejected(repo_root, tmp_path, text) or "1.0e-4" in rejected(
            repo_root, tmp_path, text
        )


def test_shipped_configs_and_an_empty_experiment_stay_valid(repo_root, tmp_path):
    base = load_config(repo_root / "config/config.yaml")
    for text in ("", "# no overrides\n", "{}\n"):
        assert smoke_with(repo_root, tmp_path, text) == load_config(*(repo_root / f for f in SMOKE))
        (tmp_path / "e.yaml").write_text(text)
        assert load_config(repo_root / "config/config.yaml", tmp_path / "e.yaml") == base


def test_a_stage_slice_checks_only_what_it_sets():
    """--config-json of one section: rules reading other sections' defaults do not run (a run with T = 2000
    fine-tunes with a prefix of 1500; the finetune slice does not carry pretrain.diffusion_steps)."""
    from elign.config_checks import ConfigMapping

    data = {"finetune": {"shared_prefix_steps": 1500, "train_steps_per_rollout": None}}
    origins = [("--config-json", ConfigMapping(data))]
    assert validate_config(data, origins=origins, whole=False).finetune.shared_prefix_steps == 1500
    with pytest.raises(ConfigError, match="finetune.shared_prefix_steps, pretrain.diffusion_steps"):
        validate_config({**data, "pretrain": {"source": {"kind": "train"}}}, origins=origins, whole=True)


def test_preset_decoders_and_models_agree_with_their_sources(repo_root):
    assert {k: tuple(p.default_atom_decoder) for k, p in PRESETS.items()} == PRESET_ATOM_DECODERS
    common = (repo_root / "workflow/rules/common.smk").read_text()
    assert "MODELS = list(WORKFLOW_MODELS)" in common and WORKFLOW_MODELS == ("pretrained", "aligned", "guided")
    assert yaml.safe_load((repo_root / "config/config.yaml").read_text())["finetune"]["train_steps_per_rollout"] is None


def _shipped(folder, card: dict) -> None:
    folder.mkdir(parents=True)
    (folder / "weights.pt").write_bytes(b"weights")
    (folder / "card.json").write_text(__import__("json").dumps(card))


@pytest.fixture
def models_dir(repo_root, tmp_path):
    """A models folder with a backbone 'bb', an aligned model 'al' started from it, and 'other', aligned from
    another backbone."""
    import json

    backbone = json.loads((repo_root / "models/qm9-small/card.json").read_text())
    backbone["weights"]["sha256"] = "b" * 64
    _shipped(tmp_path / "models/bb", backbone)
    aligned = dict(backbone, kind="aligned", weights={"file": "weights.pt", "sha256": "a" * 64})
    _shipped(tmp_path / "models/al", dict(aligned, backbone={"name": "bb", "sha256": "b" * 64}))
    _shipped(tmp_path / "models/other", dict(aligned, backbone={"name": "xx", "sha256": "c" * 64}))
    return tmp_path / "models"


def _sources(models_dir, aligned: str, backbone: str = "{kind: shipped, name: bb}") -> str:
    return (
        f"pretrain: {{source: {backbone[:-1]}, models_dir: {models_dir}}}}}\n"
        f"finetune: {{source: {{kind: shipped, name: {aligned}, models_dir: {models_dir}}}}}\n"
    )


def test_a_shipped_aligned_model_from_the_runs_backbone_is_accepted(repo_root, tmp_path, models_dir):
    cfg = smoke_with(repo_root, tmp_path, _sources(models_dir, "al"))
    assert cfg.finetune.source.name == "al" and cfg.pretrain.source.name == "bb"


@pytest.mark.parametrize(
    "aligned, backbone, expected",
    [
        ("other", "{kind: shipped, name: bb}", "'other' was aligned from xx (weights sha256 cccccccccccc), not from"),
        ("bb", "{kind: shipped, name: bb}", "finetune.source.name: 'bb' is not an aligned model"),
        ("nope", "{kind: shipped, name: bb}", "shipped aligned model 'nope':"),
        ("al", "{kind: train}", "but this run trains its own backbone (pretrain.source.kind 'train')"),
    ],
)
def test_an_aligned_model_that_cannot_be_compared_is_refused_when_read(
    repo_root, tmp_path, models_dir, aligned, backbone, expected
):
    """finetune.source names an aligned model: it must exist, be aligned, and start from this run's backbone
    (else the pretrained-vs-aligned comparison compares unrelated models), caught before any stage runs."""
    assert expected in rejected(repo_root, tmp_path, _sources(models_dir, aligned, backbone))


def test_an_aligned_checkpoint_file_must_exist(repo_root, tmp_path):
    msg = rejected(repo_root, tmp_path, "finetune: {source: {kind: file, path: no/aligned.pt}}")
    assert "finetune.source.path: no/aligned.pt does not exist" in msg
