"""Reports: results.csv, summary.csv, comparisons.csv, report.md and figures, a pure function of the run store."""

from __future__ import annotations

from pathlib import Path

from ground.atomic import write_atomic
from reports.analysis import analyse
from reports.comparisons import comparisons_frame
from reports.figures import fid_curves, fid_flops, metric_bars, mode_histograms
from reports.load import load_results, load_rows
from reports.markdown import render
from reports.sample_figure import samples_figure
from reports.stability import is_stability, stability_figure

__all__ = ["load_results", "write_report"]


def write_report(run_dirs: list[Path], out_dir: Path | None = None) -> dict[str, Path]:
    """Merge `run_dirs` and write report.md, results.csv, summary.csv, comparisons.csv and figures/ into
    `out_dir` (default: the first run directory).

    Returns {"report", "csv", "summary", "comparisons"} plus one `<kind>:<task>` entry per figure written
    (kinds: curves, flops, metrics, modes, samples, stability).
    """
    run_dirs = [Path(d) for d in run_dirs]
    loaded = load_rows(run_dirs)  # validates and raises BenchError before anything is written
    analysis = analyse(loaded.rows, loaded.notes)
    out_dir = Path(out_dir) if out_dir is not None else run_dirs[0]
    figures: dict[str, dict[str, Path]] = {}
    for task in analysis.tasks:
        samples, notes = samples_figure(analysis.in_task(task), task, out_dir)
        analysis.notes.extend(notes)
        drawn = {"curves": fid_curves(analysis, task, out_dir),
                 "flops": fid_flops(analysis, task, out_dir),
                 "metrics": metric_bars(analysis, task, out_dir),
                 "modes": mode_histograms(analysis, task, out_dir), "samples": samples,
                 "stability": (stability_figure(analysis, task, out_dir)
                               if is_stability(analysis.frame) else None)}
        figures[task] = {kind: path for kind, path in drawn.items() if path is not None}
    paths = {
        "report": write_atomic(out_dir / "report.md", render(analysis, out_dir, run_dirs, figures)),
        "csv": write_atomic(out_dir / "results.csv", analysis.frame.to_csv(index=False)),
        "summary": write_atomic(out_dir / "summary.csv", analysis.summary.to_csv(index=False)),
        "comparisons": write_atomic(out_dir / "comparisons.csv",
                                    comparisons_frame(analysis.comparisons).to_csv(index=False)),
    }
    paths.update({f"{kind}:{task}": path for task, drawn in figures.items()
                  for kind, path in drawn.items()})
    return paths
