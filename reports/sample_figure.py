"""Per task, one figure that sets each strategy's generated samples (its lowest seed with a
samples PNG) beside the held-out real images: 2D grids and 3D tri-planar PNGs alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from reports import fmt
from reports.figures import new_figure, save_png
from reports.tables import strategy_order


def _image(path: Path) -> np.ndarray | None:
    from matplotlib.image import imread

    try:
        return imread(path)
    except Exception:  # any unreadable file (absent, truncated, not a PNG) becomes a note
        return None


def _panels(in_task: pd.DataFrame) -> list[tuple[str, Path]]:
    """(title, PNG path): the real images first, then one per strategy."""
    panels = []
    for _, unit in in_task.iterrows():
        real = unit.get("files.real_samples")
        if not fmt.is_missing(real):
            panels.append(("real (held-out)", Path(unit["run_dir"]) / real))
            break
    for strategy in strategy_order(in_task["strategy"]):
        mine = in_task[in_task["strategy"] == strategy].sort_values("seed", kind="mergesort")
        for _, unit in mine.iterrows():
            samples = unit.get("files.samples")
            if not fmt.is_missing(samples) and (Path(unit["run_dir"]) / samples).is_file():
                panels.append((f"{strategy} (seed {unit['seed']})",
                               Path(unit["run_dir"]) / samples))
                break
    return panels


def samples_figure(in_task: pd.DataFrame, task: str,
                   out_dir: Path) -> tuple[Path | None, list[str]]:
    notes, images = [], []
    for title, path in _panels(in_task):
        image = _image(path)
        if image is None:
            notes.append(f"samples image {path} is unreadable; left out of the {task} figure")
        else:
            images.append((title, image))
    if not images:
        return None, notes
    # All panels of a task are the same kind of image: tall tri-planar columns (3D) sit in one
    # row, wide grids (2D) two to a row, so neither ends up a sliver.
    ratio = float(np.median([image.shape[1] / image.shape[0] for _, image in images]))
    columns = len(images) if ratio <= 1 else min(len(images), 2)
    rows = -(-len(images) // columns)
    height = 3.0 if ratio > 1 else 4.5
    figure = new_figure(columns * height * max(ratio, 0.6), rows * (height + 0.5))
    for i, (title, image) in enumerate(images):
        axes = figure.add_subplot(rows, columns, i + 1)
        axes.imshow(image, cmap="gray" if image.ndim == 2 else None)
        axes.set_title(title.replace(" (", "\n("), fontsize="small")
        axes.axis("off")
    return save_png(figure, out_dir, "samples", task), notes
