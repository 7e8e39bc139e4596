"""Everything the report derives from the run store, computed once: the table of units, their
curves, divergence/collapse flags, convergence, summary.csv and the comparisons."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from bench.records import UnitRecord
from reports.catalog import Metric, compared, metrics_for
from reports.comparisons import Health, PairedComparison, baseline_health, compare_task
from reports.convergence import unit_convergence
from reports.curves import load_curves
from reports.events import unit_flags
from reports.fmt import distinct
from reports.load import metric_names, to_frame
from reports.summary import index, summary_table
from reports.tables import summarize


@dataclass
class Analysis:
    frame: pd.DataFrame
    extra_metrics: list[str]  # every metric a row records; those unknown to the catalog show too
    curves: dict[str, pd.DataFrame]
    flags: pd.DataFrame
    convergence: pd.DataFrame
    summary: pd.DataFrame
    status: pd.DataFrame
    comparisons: dict[str, list[PairedComparison]]
    health: dict[str, Health]
    notes: list[str] = field(default_factory=list)

    @property
    def tasks(self) -> list[str]:
        return sorted(self.frame["task"].unique())

    def in_task(self, task: str) -> pd.DataFrame:
        return self.frame[self.frame["task"] == task]

    def metrics(self, task: str) -> list[Metric]:
        return metrics_for(distinct(self.in_task(task), "settings.dims"), self.extra_metrics)

    def value(self, task: str, strategy: str, metric: str) -> dict[str, Any] | None:
        """The summary.csv row of (task, strategy, metric), None where there is none."""
        return self._index.get((task, strategy, metric))

    def __post_init__(self) -> None:
        self._index = index(self.summary)


def analyse(rows: list[UnitRecord], notes: list[str]) -> Analysis:
    frame = to_frame(rows)
    extra = metric_names(rows)
    curves, curve_notes = load_curves(frame)
    flags = unit_flags(frame)
    convergence = unit_convergence(frame, curves)
    summary = summary_table(frame, extra, flags, convergence)
    comparisons = {}
    for task in sorted(frame["task"].unique()):
        in_task = frame[frame["task"] == task]
        comparisons[task] = compare_task(
            in_task, compared(metrics_for(distinct(in_task, "settings.dims"), extra)), curves)
    health = {task: baseline_health(frame[frame["task"] == task], curves)
              for task in sorted(frame["task"].unique())}
    return Analysis(frame, extra, curves, flags, convergence, summary, summarize(frame),
                    comparisons, health, [*notes, *curve_notes])
