"""The report folder: metric and statistics tables, PNG figures, example molecules, report.md, index.html."""

from elign.report.build import FIGURES, ReportResult, build_report
from elign.report.inputs import ReportPaths

__all__ = ["FIGURES", "ReportPaths", "ReportResult", "build_report"]
