"""The typed config: defaults, strictness, clear messages, schema in sync, experiments valid."""

from __future__ import annotations

import pytest
import yaml

from elign.config import ConfigError, ElignConfig, deep_merge, load_config, schema_yaml, validate_config


def test_default_config_file_is_valid_and_complete(repo_root):
    cfg = load_config(repo_root / "config/config.yaml")
    assert cfg.data.source == "qm9pack"
    assert cfg.data.dataset == "qm9"
    assert cfg.seed == 0


@pytest.mark.parametrize("name", ["smoke", "qm9_paper", "qm9_figshare"])
def test_experiments_are_valid_overrides(repo_root, name):
    path = repo_root / "config/experiments" / f"{name}.yaml"
    cfg = load_config(repo_root / "config/config.yaml", path)
    override = yaml.safe_load(path.read_text())
    assert cfg.data.dataset == override["data"]["dataset"]


def test_reward_xtb_layers_on_other_experiments(repo_root):
    """reward_xtb.yaml has no data section: it swaps the force field of finetune and the guided baseline only."""
    base = repo_root / "config/config.yaml"
    xtb = repo_root / "config/experiments/reward_xtb.yaml"
    for extra in ([], [repo_root / "config/experiments/smoke.yaml"], [repo_root / "config/experiments/qm9_paper.yaml"]):
        plain = load_config(base, *extra)
        cfg = load_config(base, *extra, xtb)
        assert cfg.finetune.mlff.backend == cfg.sample.guidance_mlff.backend == "gfn2-xtb"
        assert cfg.evaluate.mlff == plain.evaluate.mlff and cfg.finetune.mlff.device == plain.finetune.mlff.device


def test_unknown_key_names_path_and_allowed_keys():
    with pytest.raises(ConfigError) as exc:
        validate_config({"data": {"sorce": "qm9pack"}})
    msg = str(exc.value)
    assert "data.sorce: unknown key" in msg
    assert "source" in msg and "on_error" in msg  # what is allowed there


def test_unknown_nested_key_and_top_level_key():
    with pytest.raises(ConfigError, match=r"data\.filters\.max_atom: unknown key .*max_atoms"):
        validate_config({"data": {"filters": {"max_atom": 3}}})
    with pytest.raises(ConfigError, match=r"datta: unknown key"):
        validate_config({"datta": {}})


def test_bad_value_names_path_and_what_is_allowed():
    with pytest.raises(ConfigError) as exc:
        validate_config({"data": {"source": "qm10"}})
    msg = str(exc.value)
    assert "data.source" in msg and "'qm9pack'" in msg and "'qm10'" in msg


def test_bad_element_and_range_are_rejected():
    with pytest.raises(ConfigError, match="unknown element symbol 'Xx'"):
        validate_config({"data": {"filters": {"allowed_elements": ["H", "Xx"]}}})
    with pytest.raises(ConfigError, match=r"data\.filters\.max_atoms"):
        validate_config({"data": {"filters": {"max_atoms": 0}}})


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_deep_merge_overrides_leaves_only():
    base = {"a": {"b": 1, "c": {"d": 2}}, "e": [1]}
    out = deep_merge(base, {"a": {"c": {"d": 3}}, "e": [2]})
    assert out == {"a": {"b": 1, "c": {"d": 3}}, "e": [2]}
    assert base["a"]["c"]["d"] == 2  # input untouched


def test_schema_file_is_generated_from_the_models(repo_root):
    checked_in = (repo_root / "workflow/schemas/config.schema.yaml").read_text()
    assert checked_in == schema_yaml(), "schema drifted: run `elign config-schema`"


def test_schema_rejects_what_pydantic_rejects():
    import jsonschema

    schema = yaml.safe_load(schema_yaml())
    jsonschema.validate(ElignConfig().model_dump(mode="json"), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"data": {"sorce": 1}}, schema)


@pytest.mark.parametrize("name", ["config.yaml", "experiments/backbone_qm9_small.yaml"])
def test_snakemake_fills_defaults_of_optional_sections(repo_root, name):
    """Snakemake validates with set_default=True: an optional section (pretrain.lr_decay) set or null must
    not make it descend into the section's schema with None."""
    from snakemake.utils import validate

    config = yaml.safe_load((repo_root / "config" / name).read_text())
    validate(config, str(repo_root / "workflow/schemas/config.schema.yaml"), set_default=True)
    assert "lr_decay" in config["pretrain"] and config["finetune"]["iterations"] >= 1
