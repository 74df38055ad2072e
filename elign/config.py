"""The typed configuration of elign: one pydantic model per stage; unknown keys are errors.

This module is the single source of truth. ``elign config-schema`` writes the JSON schema the Snakefile
validates against (``workflow/schemas/config.schema.yaml``); a test keeps the two identical.
Experiments are small YAML override files deep-merged onto ``config/config.yaml``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from elign.data.elements import atomic_number


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, values are checked strictly."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


# ----------------------------------------------------------------------------------------- data sources
class FigshareFiles(Section):
    """The three original QM9 files on figshare (Ramakrishnan et al., Sci. Data 1, 140022, 2014)."""

    xyz_archive: str = Field("3195389", description="figshare file id of dsgdb9nsd.xyz.tar.bz2")
    uncharacterized: str = Field("3195404", description="figshare file id of uncharacterized.txt")
    atomref: str = Field("3195395", description="figshare file id of atomref.txt")


class FigshareSha256(Section):
    """Expected sha256 of each downloaded file (the published originals by default)."""

    xyz_archive: str = "3a63848ac80691bdb8d41834b575afad345b9300d7a2db0c38adb7f6eaa8360c"
    uncharacterized: str = "3aa5115d540b356de94791d4a74c3bf1ed91c469ecf52a4f5d7cc0506fe02e24"
    atomref: str = "af739d4a0fbe894a56f346ad6045ee1b74c58f8a8c9ef3fbfed920c9ad8b00f9"


class FigshareSource(Section):
    """QM9 from the original figshare archive, downloaded (or read from ``local_dir``) and sha256-checked."""

    base_url: str = Field("https://ndownloader.figshare.com/files",
                          description="download URL prefix; a file is fetched from {base_url}/{file id}")
    file_ids: FigshareFiles = FigshareFiles()
    sha256: FigshareSha256 = FigshareSha256()
    cache_dir: str = Field("resources/qm9/figshare", description="where downloads are kept")
    local_dir: str | None = Field(None, description="read the three files from this folder instead of downloading")
    retries: int = Field(3, ge=1, le=20)
    timeout_s: float = Field(60.0, gt=0)


class GeomDrugsSource(Section):
    """GEOM-Drugs (Axelrod & Gomez-Bombarelli, Sci. Data 9, 185, 2022) from ``drugs_crude.msgpack``.

    Download: Harvard Dataverse, doi:10.7910/DVN/JNGTDF, file 4360331 (rdkit_folder.tar.gz, ~50 GB),
    then extract ``drugs_crude.msgpack``.
    """

    path: str = "resources/geom/drugs_crude.msgpack"
    conformers_per_molecule: int = Field(30, ge=1, description="lowest-energy conformers kept (EDM: 30)")
    valid_fraction: float = Field(0.1, ge=0, lt=1)
    test_fraction: float = Field(0.1, ge=0, lt=1)


class FilesSource(Section):
    """The user's own molecules: SDF, multi-frame XYZ/extxyz, or Parquet (our molecule schema)."""

    paths: list[str] = Field(default_factory=list, description="input files; format from the extension")
    format: Literal["auto", "sdf", "xyz", "extxyz", "parquet"] = "auto"
    split_column: str | None = Field(None, description="SDF property / Parquet column holding train|valid|test")
    valid_fraction: float = Field(0.1, ge=0, lt=1)
    test_fraction: float = Field(0.1, ge=0, lt=1)


class DataFilters(Section):
    """Molecules outside these limits are dropped and counted in stats.json."""

    allowed_elements: list[str] | None = Field(
        None, description="element symbols to keep, e.g. what the force field can score; null keeps all")
    max_atoms: int | None = Field(None, ge=1, description="drop molecules with more atoms; null keeps all")

    @field_validator("allowed_elements")
    @classmethod
    def _known_elements(cls, value: list[str] | None) -> list[str] | None:
        for s in value or []:
            try:
                atomic_number(s)
            except KeyError as exc:
                raise ValueError(f"unknown element symbol {s!r}") from exc
        return value


class DataSubset(Section):
    """Keep only the first N molecules of each split after splitting (smoke tests); null keeps all."""

    train: int | None = Field(None, ge=1)
    valid: int | None = Field(None, ge=1)
    test: int | None = Field(None, ge=1)


class DataConfig(Section):
    """The data stage: where molecules come from, how they are split, filtered and checked."""

    dataset: str = Field("qm9", pattern=r"^[A-Za-z0-9_\-]+$", description="name used in results/ paths")
    source: Literal["qm9pack", "figshare", "geom_drugs", "files"] = "qm9pack"
    on_error: Literal["raise", "skip"] = Field(
        "raise", description="bad input record: stop with file/record/problem, or skip and count it")
    filters: DataFilters = DataFilters()
    subset: DataSubset = DataSubset()
    figshare: FigshareSource = FigshareSource()
    geom_drugs: GeomDrugsSource = GeomDrugsSource()
    files: FilesSource = FilesSource()


# ------------------------------------------------------------------------------- later stages (shape)
class PretrainConfig(Section):
    """EDM backbone pretraining (filled in by the backbone issue)."""


class FinetuneConfig(Section):
    """FED-GRPO post-training (filled in by the FED-GRPO issue)."""


class SampleConfig(Section):
    """Sampling from a model (filled in by the backbone issue)."""


class EvaluateConfig(Section):
    """Metrics and MLFF scoring (filled in by the evaluation issue)."""


class DftConfig(Section):
    """PySCF validation (filled in by the DFT issue)."""


class ReportConfig(Section):
    """Tables and plots (filled in by the DFT/report issue)."""


class ElignConfig(Section):
    """The whole run. Every section has defaults; ``config/config.yaml`` is the embedded default run."""

    seed: int = Field(0, ge=0, description="master seed; each stage derives its own from it")
    data: DataConfig = DataConfig()
    pretrain: PretrainConfig = PretrainConfig()
    finetune: FinetuneConfig = FinetuneConfig()
    sample: SampleConfig = SampleConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    dft: DftConfig = DftConfig()
    report: ReportConfig = ReportConfig()


# ---------------------------------------------------------------------------------------- loading
class ConfigError(ValueError):
    """A config that does not validate; the message names each key path and what is allowed."""


def deep_merge(base: dict, override: dict) -> dict:
    """Recursively merge ``override`` onto a copy of ``base`` (dicts merge, everything else replaces)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return data


def load_config(*paths: str | Path) -> ElignConfig:
    """Read and deep-merge YAML files in order (later ones override), then validate."""
    merged: dict = {}
    for path in paths:
        merged = deep_merge(merged, read_yaml(path))
    return validate_config(merged, source=" + ".join(str(p) for p in paths) or "config")


def validate_config(data: dict[str, Any], source: str = "config") -> ElignConfig:
    try:
        return ElignConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def format_validation_error(exc: ValidationError, source: str) -> str:
    """One line per problem: ``key.path: problem (allowed: ...)``."""
    lines = [f"invalid config ({source}):"]
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "<top level>"
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(_allowed_keys(err["loc"][:-1]))
            lines.append(f"  {path}: unknown key (allowed here: {allowed})")
        else:
            lines.append(f"  {path}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)


def _allowed_keys(loc: tuple) -> list[str]:
    model: type[BaseModel] = ElignConfig
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return []
        model = field.annotation
    return list(model.model_fields)


def json_schema() -> dict:
    """The JSON schema of :class:`ElignConfig` (what the Snakefile validates against)."""
    schema = ElignConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def schema_yaml() -> str:
    header = "# Generated by `elign config-schema` from elign/config.py. Do not edit by hand.\n"
    return header + yaml.safe_dump(json_schema(), sort_keys=False, width=100)
