"""The typed configuration of elign: one pydantic model per stage; unknown keys are errors.

This package is the single source of truth. ``elign config-schema`` writes the JSON schema the Snakefile
validates against (``workflow/schemas/config.schema.yaml``); a test keeps the two identical.
Experiments are small YAML override files deep-merged onto ``config/config.yaml``.

One module per part of the run: :mod:`~elign.config.data`, :mod:`~elign.config.pretrain`,
:mod:`~elign.config.finetune`, :mod:`~elign.config.evaluation` (sample, evaluate, dft, report) and
:mod:`~elign.config.mlff` (the force field of several sections) on :mod:`~elign.config.base`; the whole run,
reading and validating in :mod:`~elign.config.load`. The checks beside it: :mod:`elign.config_checks` (reading
strictly, messages), :mod:`elign.config_rules` (the semantic rules), :mod:`elign.config_bounds` and
:mod:`elign.config_resources`. Import from here: ``from elign.config import ElignConfig, load_config``.
"""

from __future__ import annotations

from elign.config.base import SEED_MAX, Section, require_for_kind
from elign.config.data import (
    DataConfig,
    DataFilters,
    DataSubset,
    FigshareFiles,
    FigshareSha256,
    FigshareSource,
    FilesSource,
    GeomDrugsSource,
)
from elign.config.evaluation import (
    DftConfig,
    EvaluateConfig,
    RelaxConfig,
    ReportConfig,
    SampleConfig,
    SamplingTiming,
)
from elign.config.finetune import AlignedSource, FinetuneConfig, FinetuneLrSchedule, RewardSpec
from elign.config.load import (
    ElignConfig,
    deep_merge,
    format_validation_error,
    json_schema,
    load_config,
    schema_yaml,
    snakemake_overrides,
    validate_config,
)
from elign.config.mlff import MLFFConfig
from elign.config.pretrain import LrDecay, ModelArchitecture, PretrainConfig, PretrainedSource
from elign.config_checks import ConfigError, ConfigMapping, read_yaml
from elign.config_rules import WORKFLOW_MODELS  # the workflow's model names (workflow/rules/common.smk)

__all__ = [
    "SEED_MAX",
    "WORKFLOW_MODELS",
    "AlignedSource",
    "ConfigError",
    "ConfigMapping",
    "DataConfig",
    "DataFilters",
    "DataSubset",
    "DftConfig",
    "ElignConfig",
    "EvaluateConfig",
    "FigshareFiles",
    "FigshareSha256",
    "FigshareSource",
    "FilesSource",
    "FinetuneConfig",
    "FinetuneLrSchedule",
    "GeomDrugsSource",
    "LrDecay",
    "MLFFConfig",
    "ModelArchitecture",
    "PretrainConfig",
    "PretrainedSource",
    "RelaxConfig",
    "ReportConfig",
    "RewardSpec",
    "SampleConfig",
    "SamplingTiming",
    "Section",
    "deep_merge",
    "format_validation_error",
    "json_schema",
    "load_config",
    "read_yaml",
    "require_for_kind",
    "schema_yaml",
    "snakemake_overrides",
    "validate_config",
]
