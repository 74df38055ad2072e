# Helpers only (no rules): config validation, the per-stage config passed to the CLI, targets.
import json

from elign.config import (
    WORKFLOW_MODELS,
    ConfigError,
    deep_merge,
    read_yaml,
    snakemake_overrides,
    validate_config,
)

SCHEMA = "../schemas/config.schema.yaml"  # relative to this file


def _config_origins(overrides):
    """(source, its mapping) in Snakemake's merge order: the Snakefile's configfile, --configfile, --config."""
    cli = [str(f) for f in workflow.config_settings.configfiles]
    files = [str(f) for f in workflow.configfiles if str(f) not in cli] + cli
    return [(f, read_yaml(f)) for f in dict.fromkeys(files)] + ([("--config", overrides)] if overrides else [])


try:  # the typed config names every bad key path, what is allowed, and the file that set it
    # --config values as typed: Snakemake reads a nested one with YAML's BaseLoader (every scalar a string)
    _overrides = snakemake_overrides(dict(workflow.config_settings.config))
    config.update(deep_merge(config, _overrides))
    _typed = validate_config(config, source="snakemake config", origins=_config_origins(_overrides))
except ConfigError as err:
    raise WorkflowError(str(err)) from None
validate(config, SCHEMA)
# Every stage sees the full config: keys the files leave out take the typed defaults (elign/config/).
config.update(_typed.model_dump(mode="json"))

DATASET = config["data"]["dataset"]
SPLITS = ["train", "valid", "test"]


def stage_config(*keys):
    """JSON of the config a stage reads (the seed, whole sections, or single keys like "sample.use_ema").

    It is the rule's params, so changing exactly these keys reruns the stage and what follows it.
    """
    out = {"seed": config["seed"]}
    for key in keys:
        section, _, name = key.partition(".")
        if name:
            out.setdefault(section, {})[name] = config[section][name]
        else:
            out[section] = config[section]
    return json.dumps(out, sort_keys=True)


ENV = "../../envs/elign.yaml"  # the pipeline's environment (relative to the rule files)
UMA_ENV = "../../envs/uma.yaml"  # fairchem's UMA needs e3nn >= 0.5, which mace-torch's pin excludes


def mlff_env(mlff):
    """Conda env for the jobs that score molecules with the MLFF config ``mlff`` (e.g. the finetune section's
    mlff): UMA's own env when its backend is uma, else the pipeline's."""
    return UMA_ENV if str(mlff["backend"]).lower() == "uma" else ENV


def named_inputs(*flags):
    """A ``params`` function: ``--FLAG NAME=PATH`` for each (flag, names, input key), one per input file of that
    key, in order (names[i] labels input[key][i]); e.g. ("metrics", MODELS, "metrics")."""

    def args(wildcards, input):
        return " ".join(
            f"--{flag} {name}={path}" for flag, names, key in flags for name, path in zip(names, getattr(input, key))
        )

    return args


def pretrain_launcher(wildcards, resources):
    """`elign`, or torchrun with one data-parallel process per GPU the job has (pretrain.gpus > 1)."""
    gpus = int(resources.get("gpu", 0) or 0)
    if gpus > 1:
        return f"torchrun --standalone --nproc_per_node {gpus} -m elign.cli.main"
    return "elign"


def pretrain_inputs(wildcards):
    """The pretrain rule's inputs by pretrain.source.kind: the training split to train on, or the files of the
    backbone (a shipped one's weights and card, a checkpoint, EDM's weights and args); stats.json always
    (the backbone's atom types are checked against the data)."""
    src = config["pretrain"]["source"]
    stats = f"results/data/{wildcards.dataset}/stats.json"
    if src["kind"] == "train":
        init = config["pretrain"]["init_from"]  # the starting weights, when given, are an input too
        inputs = {"train": f"results/data/{wildcards.dataset}/train.parquet", "stats": stats}
        return {**inputs, "init": init} if init else inputs
    if src["kind"] == "shipped":
        folder = f"{src['models_dir']}/{src['name']}"
        return {"weights": f"{folder}/weights.pt", "card": f"{folder}/card.json", "stats": stats}
    if src["kind"] == "edm":
        return {"weights": src["path"], "edm_args": src["edm_args"], "stats": stats}
    return {"weights": src["path"], "stats": stats}


def data_source_files(wildcards):
    """Input files of the data stage for sources that read local files (none for qm9pack/downloads)."""
    data = config["data"]
    if data["source"] == "files":
        return data["files"]["paths"]
    if data["source"] == "geom_drugs":
        return [data["geom_drugs"]["path"]]
    if data["source"] == "figshare" and data["figshare"]["local_dir"]:
        return [data["figshare"]["local_dir"]]
    return []


def data_outputs(dataset):
    return [f"results/data/{dataset}/{split}.parquet" for split in SPLITS] + [f"results/data/{dataset}/stats.json"]


MODELS = list(WORKFLOW_MODELS)  # guided = the pretrained checkpoint sampled with MLFF guidance
REFERENCE = "reference"  # the evaluate row of a data split (evaluate.reference_split)
EVAL_NAMES = [REFERENCE] + MODELS


def evaluate_input(wildcards):
    """The molecules evaluated under a name: the reference data split, or a model's samples."""
    if wildcards.name == REFERENCE:
        return f"results/data/{wildcards.dataset}/{config['evaluate']['reference_split']}.parquet"
    return f"results/samples/{wildcards.dataset}/{wildcards.name}.parquet"


def evaluate_limit(wildcards):
    """``--max-molecules N`` for the reference row: a seeded random N of the split (seed +
    evaluate.reference_seed_offset, in the rule's params), not its first N rows; nothing for the models' samples."""
    limit = config["evaluate"]["reference_max_molecules"]
    return f"--max-molecules {limit}" if wildcards.name == REFERENCE and limit else ""


DFT_SHARDS = list(range(config["dft"]["shards"]))
DFT_BASELINE = config["report"]["baseline_model"]  # the DFT molecules are chosen from its sample (rule dft_select)


def dft_molecules(wildcards):
    """``--molecules N`` for the guided baseline when dft.guided_molecules is set (its params, so a change reruns
    it): the first N of the selection; nothing for the other models (dft.molecules_per_model)."""
    n = config["dft"]["guided_molecules"]
    return f"--molecules {n}" if wildcards.model == "guided" and n else ""


def final_targets():
    samples = [f"results/samples/{DATASET}/{model}.{ext}" for model in MODELS for ext in ("parquet", "sdf", "xyz")]
    metrics = [f"results/metrics/{DATASET}/summary.csv", f"results/timing/{DATASET}/sampling.json"]
    dft = [f"results/dft/{DATASET}/{model}.parquet" for model in MODELS]
    report_files = [f"results/report/{DATASET}/index.html", f"results/report/{DATASET}/statistics.md"]
    return data_outputs(DATASET) + samples + metrics + dft + report_files


wildcard_constraints:
    dataset=DATASET,
    model="|".join(MODELS),
    name="|".join(EVAL_NAMES),
    shard=r"\d+",
