"""The code's defaults (elign/config/) are the default run's values (config/config.yaml).

A newcomer reads one value per key: a key set in config/config.yaml has the same default in the pydantic
model, unless it is on :data:`DIFFERENT`, the one list of deliberate differences, each with its reason.
"""

from __future__ import annotations

from pydantic import BaseModel

from elign.config import ElignConfig, load_config, read_yaml

#: key path -> (code default, config/config.yaml value, why they differ). The one place that says so.
DIFFERENT: dict[str, tuple[object, object, str]] = {
    "pretrain.source.kind": (
        "train",
        "shipped",
        "the default run starts from the shipped QM9 backbone (models/qm9-small); without a source a run trains "
        "its own, which works for any dataset",
    ),
    "pretrain.source.name": (None, "qm9-small", "the shipped backbone's name (see pretrain.source.kind)"),
    "finetune.source.kind": (
        "train",
        "shipped",
        "the default run starts from the shipped aligned model (models/qm9-small-elign, FED-GRPO at the paper's "
        "settings on qm9-small); without a source a run trains FED-GRPO itself, from any backbone",
    ),
    "finetune.source.name": (None, "qm9-small-elign", "the shipped aligned model's name (see finetune.source.kind)"),
    "pretrain.ema_decay": (
        0.9999,
        0.995,
        "the code keeps EDM's EMA; the default run's pretrain keys describe a 1,200-step from-scratch run "
        "(used only with source kind train), too short for EDM's 0.9999",
    ),
    "finetune.device": (
        "auto",
        "cpu",
        "every device key defaults to auto (the GPU when there is one); the default run pins FED-GRPO to the CPU, "
        "whose kernels elign pins (elign/numerics.py), so that it gives the same bits on any machine",
    ),
    "finetune.mlff.device": (
        "auto",
        "cpu",
        "MLFFConfig is shared with evaluate.mlff and sample.guidance_mlff, which stay auto; FED-GRPO's reward "
        "MLFF runs on the CPU with the policy (see finetune.device)",
    ),
    "sample.guidance_num_molecules": (
        None,
        64,
        "null = sample.num_molecules, which any list of sample.sizes needs; the default run's 45-minute budget "
        "cuts the guided baseline (about 2x the sampling cost) to 64 molecules",
    ),
    "dft.basis": (
        "6-31g(2df,p)",
        "6-31g(d)",
        "the code's default is QM9's own level (it reproduces QM9's energies); the default run uses the "
        "official Elign code's 6-31G(d), about 4x cheaper (docs/tuning.md, DFT)",
    ),
    "dft.grid_level": (3, 2, "QM9's level uses grid 3; grid 2 saves 16.5 % CPU at 6-31G(d) (docs/tuning.md, DFT)"),
    "dft.max_cycles": (
        100,
        40,
        "the code's SCF caps are those of QM9's level in elign.dft.level.DftLevel (its default, which the tests "
        "and the isolated-atom references use); the default run caps each molecule's work tighter for its budget",
    ),
    "dft.newton_cycles": (30, 10, "see dft.max_cycles"),
}


def _leaves(node: object, path: tuple[str, ...] = ()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, (*path, str(key)))
    else:
        yield ".".join(path), node


def _code_default(path: str) -> object:
    node: object = ElignConfig()
    for part in path.split("."):
        node = getattr(node, part)
    return node.model_dump(mode="json") if isinstance(node, BaseModel) else node


def _file(repo_root) -> dict:
    return read_yaml(repo_root / "config/config.yaml")


def test_code_defaults_are_the_default_runs_values(repo_root):
    differ = {}
    for path, value in _leaves(_file(repo_root)):
        code = _code_default(path)
        if code != value or isinstance(code, bool) != isinstance(value, bool):
            differ[path] = (code, value)
    unexplained = {path: pair for path, pair in differ.items() if path not in DIFFERENT}
    assert not unexplained, f"code default vs config/config.yaml (fix one, or add it to DIFFERENT): {unexplained}"
    for path, (code, value) in differ.items():  # the list states the values it explains
        assert DIFFERENT[path][:2] == (code, value), f"{path}: DIFFERENT says {DIFFERENT[path][:2]}"


def test_the_list_of_differences_has_no_stale_entries(repo_root):
    file_values = dict(_leaves(_file(repo_root)))
    for path, (code, value, why) in DIFFERENT.items():
        assert path in file_values, f"{path} is not set in config/config.yaml: drop it from DIFFERENT"
        assert _code_default(path) == code and file_values[path] == value, f"{path}: values changed"
        assert code != value and why.strip(), f"{path}: not a difference, or no reason given"


def test_the_default_run_equals_the_code_defaults_apart_from_the_listed_keys(repo_root):
    """The same check on the resolved configs: outside DIFFERENT, loading config/config.yaml changes nothing."""
    code = dict(_leaves(ElignConfig().model_dump(mode="json")))
    run = dict(_leaves(load_config(repo_root / "config/config.yaml").model_dump(mode="json")))
    assert code.keys() == run.keys()
    assert {path for path in code if code[path] != run[path]} == set(DIFFERENT)
