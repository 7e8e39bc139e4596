"""Reports: results.csv, report.md and FID-curve figures, a pure function of the run store."""

from __future__ import annotations

from pathlib import Path

from reports.figures import plot_fid_curves
from bench.atomic import write_atomic
from reports.load import load_results, load_rows, to_frame
from reports.markdown import render

__all__ = ["load_results", "write_report"]


def write_report(run_dirs: list[Path], out_dir: Path | None = None) -> dict[str, Path]:
    """Merge `run_dirs` and write report.md, results.csv and figures/ into `out_dir`.

    `out_dir` defaults to the first run directory. Returns {"report": ..., "csv": ...} plus
    one `figure:<task>` entry per FID-curve figure written.
    """
    run_dirs = [Path(d) for d in run_dirs]
    loaded = load_rows(run_dirs)  # validates and raises BenchError before anything is written
    frame = to_frame(loaded.rows)
    out_dir = Path(out_dir) if out_dir is not None else run_dirs[0]
    figures, figure_notes = plot_fid_curves(frame, out_dir)
    text = render(frame, out_dir, run_dirs, loaded.notes + figure_notes, figures)
    paths = {
        "report": write_atomic(out_dir / "report.md", text),
        "csv": write_atomic(out_dir / "results.csv", frame.to_csv(index=False)),
    }
    paths.update({f"figure:{task}": path for task, path in figures.items()})
    return paths
