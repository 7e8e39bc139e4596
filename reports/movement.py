"""How far training moved each part's weights from the start a strategy gave it (the rows'
`movement`, bench.movement): one table per task."""

from __future__ import annotations

import pandas as pd

from bench.movement import PARTS
from reports import fmt
from reports.tables import strategy_order


def _cell(units: pd.DataFrame, part: str) -> str:
    values = pd.to_numeric(units.get(f"movement.{part}", pd.Series(dtype=float)),
                           errors="coerce").dropna()
    if values.empty:
        return fmt.MISSING
    text = fmt.mean_std(values.mean(), values.std() if len(values) > 1 else None, len(values),
                        len(units), 3)
    transferred = pd.to_numeric(units.get(f"transfer.{part}", pd.Series(dtype=float)),
                                errors="coerce").fillna(0)
    return text + (" (T)" if (transferred > 0).any() else "")


def movement_table(in_task: pd.DataFrame) -> str | None:
    """None when no unit recorded it (rows from before it existed)."""
    if not any(f"movement.{p}" in in_task.columns for p in PARTS):
        return None
    rows = [[strategy, *(_cell(in_task[in_task["strategy"] == strategy], p) for p in PARTS)]
            for strategy in strategy_order(in_task["strategy"])]
    return ("Relative L2 distance of each part's weights at the common step budget (or where a "
            "unit diverged) from where its strategy started them, ‖w − w₀‖ / ‖w₀‖, mean ± std "
            "over seeds; (T): the strategy transferred that part. Far from a transferred start, "
            "it acted as a starting point; near it, as a prior training kept. Fresh parts start "
            "at N(0, 0.02): where trained weights are larger, the same change is a smaller "
            "share of them.\n\n"
            + fmt.table(["strategy", *(f"{p} ({net})" for p, (net, _) in PARTS.items())], rows))
