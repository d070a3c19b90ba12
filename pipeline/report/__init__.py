"""Run reports: `python -m pipeline.report --run DIR` (see pipeline.report.build)."""

from pipeline.report.build import write_report

__all__ = ["write_report"]
