# Helpers only (no rules): config validation, the per-stage config passed to the CLI, targets.
import json

from elign.config import ConfigError, validate_config


SCHEMA = "../schemas/config.schema.yaml"  # relative to this file

try:  # the typed config names every bad key path and what is allowed, in one message
    validate_config(config, source="snakemake config")
except ConfigError as err:
    raise WorkflowError(str(err)) from None
validate(config, SCHEMA)

DATASET = config["data"]["dataset"]
SPLITS = ["train", "valid", "test"]


def stage_config(*sections):
    """JSON of the config sections a stage reads (plus the seed): its params, so a change reruns it."""
    return json.dumps({"seed": config["seed"], **{s: config[s] for s in sections}}, sort_keys=True)


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


MODELS = ["pretrained"]
REFERENCE = "reference"  # the evaluate row of a data split (evaluate.reference_split)
EVAL_NAMES = [REFERENCE] + MODELS


def evaluate_input(wildcards):
    """The molecules evaluated under a name: the reference data split, or a model's samples."""
    if wildcards.name == REFERENCE:
        return f"results/data/{wildcards.dataset}/{config['evaluate']['reference_split']}.parquet"
    return f"results/samples/{wildcards.dataset}/{wildcards.name}.parquet"


def evaluate_limit(wildcards):
    limit = config["evaluate"]["reference_max_molecules"]
    return f"--max-molecules {limit}" if wildcards.name == REFERENCE and limit else ""


def final_targets():
    samples = [f"results/samples/{DATASET}/{model}.{ext}" for model in MODELS for ext in ("parquet", "sdf", "xyz")]
    metrics = [f"results/metrics/{DATASET}/summary.csv"]
    return data_outputs(DATASET) + samples + metrics


wildcard_constraints:
    dataset=DATASET,
    model="|".join(MODELS),
    name="|".join(EVAL_NAMES),
