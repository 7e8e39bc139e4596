"""report.md: header, the answer, set-up, one section per task, other findings, notes. Every number comes from the
analysis of the run store."""

from __future__ import annotations

from pathlib import Path

from reports import fmt
from reports.analysis import Analysis
from reports.answer import answer_section
from reports.axes import axes_section
from reports.findings import findings_section
from reports.setup_section import setup_section
from reports.stability import is_stability, stability_section
from reports.task_section import task_section

TITLE = "# Initialization strategies for noise-to-image GANs: benchmark report"


def _header(analysis: Analysis, run_dirs: list[Path], out_dir: Path) -> str:
    dirs = ", ".join(f"`{fmt.relative(d, out_dir)}`" for d in run_dirs)
    counts = analysis.frame["status"].value_counts()
    status = ", ".join(f"{counts.get(s, 0)} {s}" for s in ("ok", "diverged", "failed"))
    return (f"{TITLE}\n\nRun directories: {dirs}. {len(analysis.frame)} units ({status}). "
            "Every number per strategy is over seeds; `summary.csv` holds them with their "
            "intervals, `results.csv` every unit.")


def render(analysis: Analysis, out_dir: Path, run_dirs: list[Path],
           figures: dict[str, dict[str, Path]]) -> str:
    """The whole report as markdown text; `figures` maps task -> {kind: PNG path}."""
    # A stability study answers how often each strategy trains well, not which is better.
    first = (stability_section(analysis) if is_stability(analysis.frame)
             else answer_section(analysis))
    parts = [_header(analysis, run_dirs, out_dir), first]
    axes = axes_section(analysis, out_dir)
    parts += ([axes] if axes else []) + [setup_section(analysis.frame)]
    parts += [task_section(analysis, task, out_dir, figures.get(task, {}))
              for task in analysis.tasks]
    parts.append(findings_section(analysis))
    if analysis.notes:
        parts.append("## Notes on the run store\n\n" + "\n".join(f"- {n}" for n in analysis.notes))
    return "\n\n".join(parts) + "\n"
