"""The config's semantic stage: what the types allow but a stage would reject (or quietly change) hours later.

:func:`semantic_problems` runs every rule below on a typed config and returns all problems at once, each as
(the keys it names, a message with their values and the fix). Families (issue 29):

* **outside the config**: files that must exist (``pretrain.init_from``, the backbone source's files, the
  aligned model's source and the backbone it was aligned from, an MLFF ``model_path``, the data source's
  files) and PySCF's functional and basis names (:mod:`elign.config_resources`, shared with the stages that
  use them);
* **empty or non-positive**: ``sizes`` lists, atom counts, ``allowed_elements``, ``data.files.paths``;
* **cross-field contradictions**: shared prefix vs diffusion steps, trained vs branched steps, DFT vs sampled
  molecules, DFT shards vs molecules, batch vs training split, a ``sizes`` list vs its molecule count, the
  report's baseline vs the workflow's models, the atom decoder vs the elements the data keeps;
* **absurd magnitudes**: the bounds of :mod:`elign.config_bounds`.

A rule declares the keys it reads (``reads``). The loader runs a rule only when it can trust each of them: a
key whose own value was rejected is skipped, and so is, for a stage given a slice of the run's config
(``elign <stage> --config-json``, as the Snakemake rules call it), a key the slice does not set, whose default
is not the run's value. The Snakefile checks the whole config first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from elign.config_bounds import BOUNDS, MAX_ATOMS
from elign.config_resources import file_problem, pyscf_level_problems, shipped_card
from elign.elements import GEOM_ATOM_DECODER, QM9_ATOM_DECODER

Problem = tuple[tuple[str, ...], str]  # (the keys it names, message: values and the fix)

#: The models the workflow samples, evaluates and compares (workflow/rules/common.smk reads this).
WORKFLOW_MODELS = ("pretrained", "aligned", "guided")
#: Atom types of each backbone preset (elign.model.presets; a test keeps them equal).
PRESET_ATOM_DECODERS = {"small_cpu": QM9_ATOM_DECODER, "edm_qm9": QM9_ATOM_DECODER, "edm_geom": GEOM_ATOM_DECODER}
#: Elements each built-in data source holds, and the size of its training split (EDM's split).
SOURCE_ELEMENTS = {"qm9pack": QM9_ATOM_DECODER, "figshare": QM9_ATOM_DECODER, "geom_drugs": GEOM_ATOM_DECODER}
SOURCE_TRAIN_MOLECULES = {"qm9pack": 100_000, "figshare": 100_000}
MLFF_SECTIONS = ("finetune.mlff", "sample.guidance_mlff", "evaluate.mlff")


@dataclass(frozen=True)
class Rule:
    reads: tuple[str, ...]
    check: Callable[[Any], Iterable[Problem]]


RULES: list[Rule] = []


def rule(*reads: str):
    def register(fn: Callable[[Any], Iterable[Problem]]):
        RULES.append(Rule(reads, fn))
        return fn

    return register


def semantic_problems(config: Any, trusted: Callable[[str], bool] = lambda key: True) -> list[Problem]:
    """Every problem of the typed ``config`` (an :class:`elign.config.ElignConfig`) from the rules whose keys
    are all ``trusted``."""
    return [p for r in RULES if all(map(trusted, r.reads)) for p in r.check(config)]


def get(config: Any, key: str) -> Any:
    for part in key.split("."):
        config = getattr(config, part)
    return config


# ----------------------------------------------------------------------------- what a stage will see
def diffusion_steps(config: Any) -> tuple[int, str] | None:
    """(T of the pretrained model the run fine-tunes, the key that sets it), when the config can tell."""
    src = config.pretrain.source
    if src.kind == "train":
        return config.pretrain.diffusion_steps, "pretrain.diffusion_steps"
    if src.kind == "shipped" and isinstance(card := shipped_card(src.models_dir, src.name), dict):
        steps = card["architecture"]["model_config"].get("diffusion", {}).get("timesteps")
        return (int(steps), f"pretrain.source.name (the card of {src.name})") if steps else None
    return None


def atom_decoder(config: Any) -> tuple[tuple[str, ...], str] | None:
    """(the backbone's atom types, the key that sets them), when the config can tell."""
    pc = config.pretrain
    if pc.source.kind == "train":
        if pc.atom_decoder is not None:
            return tuple(pc.atom_decoder), "pretrain.atom_decoder"
        return PRESET_ATOM_DECODERS[pc.preset], f"pretrain.preset ({pc.preset}'s atom types)"
    if pc.source.kind == "shipped" and isinstance(card := shipped_card(pc.source.models_dir, pc.source.name), dict):
        return tuple(card["architecture"]["model_config"]["atom_decoder"]), f"pretrain.source.name ({pc.source.name})"
    return None


def kept_elements(config: Any) -> tuple[set[str], str] | None:
    """(elements the prepared data can hold, the key that decides), when the config can tell."""
    data = config.data
    source = SOURCE_ELEMENTS.get(data.source)
    allowed = data.filters.allowed_elements
    if allowed is not None:
        canon = {s.strip().capitalize() for s in allowed}
        return (canon & set(source) if source else canon), "data.filters.allowed_elements"
    return (set(source), f"data.source ({data.source})") if source else None


# ---------------------------------------------------------------------------------- outside the config
@rule("pretrain.source", "pretrain.init_from")
def _backbone_files(config: Any) -> Iterator[Problem]:
    pc, src = config.pretrain, config.pretrain.source
    if src.kind == "train" and pc.init_from is not None and (why := file_problem(pc.init_from)):
        yield ("pretrain.init_from",), f"{why}; fix the path, or null to start from a fresh model"
    if src.kind == "shipped" and isinstance(why := shipped_card(src.models_dir, src.name), str):
        yield ("pretrain.source.name", "pretrain.source.models_dir"), why
    for key in ("path", "edm_args") if src.kind in ("file", "edm") else ():
        if src.kind == "file" and key == "edm_args":
            continue
        if why := file_problem(getattr(src, key)):
            yield (f"pretrain.source.{key}",), f"{why} (pretrain.source.kind {src.kind!r} reads it); fix the path"


@rule("finetune.source", "pretrain.source")
def _aligned_source(config: Any) -> Iterator[Problem]:
    """The aligned model a run reads must exist, be an aligned model, and come from this run's backbone."""
    src, backbone = config.finetune.source, config.pretrain.source
    if src.kind == "file" and (why := file_problem(src.path)):
        yield ("finetune.source.path",), f"{why} (finetune.source.kind 'file' reads it); fix the path, or kind train"
    if src.kind != "shipped":
        return
    card = shipped_card(src.models_dir, src.name, "aligned model")
    if isinstance(card, str):
        yield ("finetune.source.name", "finetune.source.models_dir"), card
        return
    start = card.get("backbone") if card.get("kind") == "aligned" else None
    if not isinstance(start, dict) or not start.get("sha256"):
        yield (
            ("finetune.source.name",),
            (
                f"{src.name!r} is not an aligned model (its card has no kind 'aligned' with the backbone it started "
                "from); name a model `elign models ship-aligned` wrote, or set finetune.source.kind: train"
            ),
        )
        return
    origin = f"{src.name!r} was aligned from {start.get('name', 'a backbone')} (weights sha256 {start['sha256'][:12]})"
    if backbone.kind == "train":
        yield (
            ("finetune.source.name", "pretrain.source.kind"),
            (
                f"{origin}, but this run trains its own backbone (pretrain.source.kind 'train'): the aligned model "
                "would be compared with a model it did not start from; set finetune.source.kind: train"
            ),
        )
    elif backbone.kind == "shipped" and isinstance(b := shipped_card(backbone.models_dir, backbone.name), dict):
        if b["weights"]["sha256"] != start["sha256"]:
            yield (
                ("finetune.source.name", "pretrain.source.name"),
                (
                    f"{origin}, not from this run's backbone {backbone.name!r} ({b['weights']['sha256'][:12]}); use "
                    f"pretrain.source.name: {start.get('name')!r}, or finetune.source.kind: train"
                ),
            )


def _mlff_model_files(section: str):
    @rule(f"{section}.model_path")
    def check(config: Any) -> Iterator[Problem]:
        path = get(config, f"{section}.model_path")
        if path is not None and (why := file_problem(path)):
            yield (f"{section}.model_path",), f"{why}; point it at the force field's weights file, or null"

    return check


for _section in MLFF_SECTIONS:
    _mlff_model_files(_section)


@rule(
    "data.source", "data.files.paths", "data.geom_drugs.path", "data.geom_drugs.download_url", "data.figshare.local_dir"
)
def _data_files(config: Any) -> Iterator[Problem]:
    data = config.data
    if data.source == "files":
        if not data.files.paths:
            yield ("data.files.paths",), "data.source is 'files' but no file is listed; list the SDF/XYZ/Parquet files"
        for i, path in enumerate(data.files.paths):
            if why := file_problem(path):
                yield (f"data.files.paths.{i}",), f"{why}; fix or remove the entry"
    geom = data.geom_drugs  # a missing file with a download URL is fetched by the workflow (rule geom_drugs_download)
    if data.source == "geom_drugs" and not geom.download_url and (why := file_problem(geom.path)):
        yield ("data.geom_drugs.path",), f"{why}; download drugs_crude.msgpack (see elign.config.GeomDrugsSource)"
    local = data.figshare.local_dir
    if data.source == "figshare" and local is not None and (why := file_problem(local, folder=True)):
        yield ("data.figshare.local_dir",), f"{why}; the folder of the three figshare files, or null to download"


@rule("dft.functional")
def _dft_functional(config: Any) -> Iterator[Problem]:
    for key, why in pyscf_level_problems(config.dft.functional, "sto-3g", ()):
        yield (key,), f"{config.dft.functional!r}: {why}"


@rule("dft.basis", "pretrain.source", "pretrain.preset", "pretrain.atom_decoder")
def _dft_basis(config: Any) -> Iterator[Problem]:
    decoder = atom_decoder(config)  # the elements the samples can hold
    for key, why in pyscf_level_problems("b3lypg", config.dft.basis, decoder[0] if decoder else QM9_ATOM_DECODER):
        yield (key,), f"{config.dft.basis!r}: {why}"


# -------------------------------------------------------------------------- empty or non-positive
def _sizes_problems(key: str, sizes: Any, count: int, count_key: str) -> Iterator[Problem]:
    if isinstance(sizes, str):
        return
    listed = [sizes] if isinstance(sizes, int) else list(sizes)
    if not listed:
        yield (key,), "[] lists no atom count; give one or more counts, one size, or 'histogram'"
        return
    if (low := min(listed)) < 1 or (high := max(listed)) > MAX_ATOMS:
        value = low if low < 1 else high
        yield (key,), f"atom count {value}: each must be 1 to {MAX_ATOMS:,} (GEOM-Drugs' largest molecule has 181)"
    if isinstance(sizes, list) and len(listed) != count:
        yield (
            (key, count_key),
            (
                f"lists {len(listed)} atom counts for {count_key} = {count} molecules; list one per molecule, "
                "or give one size or 'histogram'"
            ),
        )


@rule("sample.sizes", "sample.num_molecules", "sample.guidance_num_molecules")
def _sample_sizes(config: Any) -> Iterator[Problem]:
    sc = config.sample
    yield from _sizes_problems("sample.sizes", sc.sizes, sc.num_molecules, "sample.num_molecules")
    if isinstance(sc.sizes, list) and sc.sizes and sc.guidance_num_molecules not in (None, len(sc.sizes)):
        yield (
            ("sample.sizes", "sample.guidance_num_molecules"),
            (
                f"the guided baseline samples {sc.guidance_num_molecules} molecules but sample.sizes lists "
                f"{len(sc.sizes)}; set sample.guidance_num_molecules to null (= num_molecules)"
            ),
        )


@rule("finetune.source", "finetune.sizes", "finetune.prompts_per_iteration")
def _finetune_sizes(config: Any) -> Iterator[Problem]:
    fc = config.finetune
    if fc.source.kind != "train":
        return
    yield from _sizes_problems("finetune.sizes", fc.sizes, fc.prompts_per_iteration, "finetune.prompts_per_iteration")


@rule("data.filters.allowed_elements", "data.source")
def _allowed_elements(config: Any) -> Iterator[Problem]:
    allowed = config.data.filters.allowed_elements
    if allowed is not None and not allowed:
        yield ("data.filters.allowed_elements",), "[] keeps no molecule; list the elements to keep, or null for all"
    elif allowed and (kept := kept_elements(config)) is not None and not kept[0]:
        yield (
            ("data.filters.allowed_elements", "data.source"),
            (
                f"{allowed} shares no element with data.source {config.data.source!r} "
                f"({', '.join(SOURCE_ELEMENTS[config.data.source])}): no molecule would be kept"
            ),
        )


# ---------------------------------------------------------------------------- cross-field contradictions
@rule(
    "finetune.source",
    "finetune.shared_prefix_steps",
    "finetune.train_steps_per_rollout",
    "pretrain.source",
    "pretrain.diffusion_steps",
)
def _prefix_and_trained_steps(config: Any) -> Iterator[Problem]:
    fc, found = config.finetune, diffusion_steps(config)
    if found is None or fc.source.kind != "train":  # the training keys apply to FED-GRPO run here only
        return
    steps, steps_key = found
    prefix = fc.shared_prefix_steps
    if prefix >= steps:
        yield (
            ("finetune.shared_prefix_steps", steps_key.split(" ")[0]),
            (
                f"a shared prefix of {prefix} steps leaves no branched step of the {steps} diffusion steps "
                f"({steps_key}): FED-GRPO trains only branched steps; set it below {steps}"
            ),
        )
    elif fc.train_steps_per_rollout is not None and fc.train_steps_per_rollout > steps - prefix:
        yield (
            ("finetune.train_steps_per_rollout", "finetune.shared_prefix_steps"),
            (
                f"{fc.train_steps_per_rollout} trained steps per rollout, but only {steps - prefix} steps branch "
                f"({steps} diffusion steps from {steps_key} minus a shared prefix of {prefix}); set it to at most "
                f"{steps - prefix}, or null to train every branched step"
            ),
        )


@rule(
    "dft.molecules_per_model",
    "dft.guided_molecules",
    "dft.shards",
    "sample.num_molecules",
    "sample.guidance_num_molecules",
)
def _dft_counts(config: Any) -> Iterator[Problem]:
    dft, sc = config.dft, config.sample
    guided_sampled = sc.guidance_num_molecules or sc.num_molecules
    guided_key = "sample.guidance_num_molecules" if sc.guidance_num_molecules else "sample.num_molecules"
    guided_dft = dft.guided_molecules or dft.molecules_per_model
    guided_dft_key = "dft.guided_molecules" if dft.guided_molecules else "dft.molecules_per_model"
    if dft.molecules_per_model > sc.num_molecules:
        yield (
            ("dft.molecules_per_model", "sample.num_molecules"),
            (
                f"{dft.molecules_per_model} DFT molecules per model, but each model samples {sc.num_molecules}; "
                f"set dft.molecules_per_model to at most {sc.num_molecules}"
            ),
        )
    if guided_dft > guided_sampled:
        yield (
            (guided_dft_key, guided_key),
            (
                f"{guided_dft} DFT molecules of the guided baseline, but it samples {guided_sampled} ({guided_key}); "
                f"set dft.guided_molecules to at most {guided_sampled}"
            ),
        )
    for count, key in ((dft.molecules_per_model, "dft.molecules_per_model"), (guided_dft, guided_dft_key)):
        if dft.shards > count:
            yield (
                ("dft.shards", key),
                (
                    f"{dft.shards} shards for {count} molecules ({key}) leave a shard with nothing to compute; "
                    f"set dft.shards to at most {count}"
                ),
            )
            break


@rule("pretrain.source", "pretrain.batch_size", "data.subset.train", "data.source")
def _batch_and_split(config: Any) -> Iterator[Problem]:
    pc, data = config.pretrain, config.data
    split, key = data.subset.train, "data.subset.train"
    if split is None:
        split, key = SOURCE_TRAIN_MOLECULES.get(data.source), f"data.source ({data.source}: EDM's training split)"
    if pc.source.kind == "train" and split is not None and pc.batch_size > split:
        yield (
            ("pretrain.batch_size", key.split(" ")[0]),
            (
                f"a batch of {pc.batch_size} molecules is larger than the training split ({split}, {key}); "
                f"set pretrain.batch_size to at most {split}"
            ),
        )


@rule("report.baseline_model")
def _baseline_model(config: Any) -> Iterator[Problem]:
    if config.report.baseline_model not in WORKFLOW_MODELS:
        yield (
            ("report.baseline_model",),
            (
                f"{config.report.baseline_model!r} is not one of the workflow's models; choose one of "
                f"{', '.join(WORKFLOW_MODELS)}"
            ),
        )


@rule("pretrain.source", "pretrain.preset", "pretrain.atom_decoder", "data.source", "data.filters.allowed_elements")
def _decoder_covers_data(config: Any) -> Iterator[Problem]:
    decoder, kept = atom_decoder(config), kept_elements(config)
    if decoder is None or kept is None:
        return
    missing = sorted(kept[0] - {s.strip().capitalize() for s in decoder[0]})
    if missing:
        yield (
            (decoder[1].split(" ")[0], kept[1].split(" ")[0]),
            (
                f"the backbone's atom types {list(decoder[0])} ({decoder[1]}) lack {missing}, which the data keeps "
                f"({kept[1]}); add them to pretrain.atom_decoder, or drop them with data.filters.allowed_elements"
            ),
        )


# ------------------------------------------------------------------------------------ absurd magnitudes
def _bounded(key: str, bound: int, why: str) -> None:
    @rule(key)
    def check(config: Any) -> Iterator[Problem]:
        value = get(config, key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > bound:
            yield (key,), f"{value:g} is beyond the bound of {why}; set it to at most {bound:,}"


for _key, (_bound, _why) in BOUNDS.items():
    _bounded(_key, _bound, _why)


@rule("finetune.source", "finetune.prompts_per_iteration", "finetune.rollouts_per_prompt")
def _rollout_batch(config: Any) -> Iterator[Problem]:
    fc = config.finetune
    if fc.source.kind != "train":
        return
    rollouts = fc.prompts_per_iteration * fc.rollouts_per_prompt
    if rollouts > (bound := BOUNDS["finetune.rollouts_per_prompt"][0]):
        yield (
            ("finetune.prompts_per_iteration", "finetune.rollouts_per_prompt"),
            (
                f"{fc.prompts_per_iteration} x {fc.rollouts_per_prompt} = {rollouts:,} rollouts run as one batch, "
                f"beyond the bound of {bound:,} molecules per batch; make them fewer"
            ),
        )
