"""Statistics of models against a baseline: bootstrap intervals, Welch and Mann-Whitney tests per metric."""

from elign.stats.compare import METRICS, BootstrapSettings, MetricSpec, statistics_table
from elign.stats.display import markdown_table
from elign.stats.inference import (
    RatioResult,
    bootstrap_diff_ci,
    bootstrap_mean_ci,
    drop_failed,
    mann_whitney_test,
    ratio_inference,
    welch_test,
)

__all__ = [
    "METRICS",
    "BootstrapSettings",
    "MetricSpec",
    "RatioResult",
    "markdown_table",
    "statistics_table",
    "bootstrap_diff_ci",
    "bootstrap_mean_ci",
    "drop_failed",
    "mann_whitney_test",
    "ratio_inference",
    "welch_test",
]
