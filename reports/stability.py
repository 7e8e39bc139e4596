"""The report of a stability study (`bench stability`): per strategy, how many of the same N
hyper-parameter draws trained a GAN that learned without collapsing or diverging (with Wilson
intervals), the leading metric's spread over the draws (as Lucic et al. 2018 show it), and
each strategy against the baseline draw by draw.

A unit's health is the metrics issue's one definition (bench.metrics.states), applied to that
unit's own final values and its own floor and ceiling.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.metrics import states
from bench.plan import ALPHA, BASELINE, PRIMARY_METRIC
from reports import fmt
from reports.analysis import Analysis
from reports.catalog import bound_columns, metric
from reports.comparisons import leading_scale, paired, strategy_side
from reports.figures import new_figure, save_png
from reports.stats import holm, wilson


def is_stability(frame: pd.DataFrame) -> bool:
    return "draw.index" in frame and frame["draw.index"].notna().any()


def _value(unit: pd.Series, column: str) -> float | None:
    v = unit.get(column)
    return None if fmt.is_missing(v) else float(v)


def unit_health(unit: pd.Series) -> str:
    """diverged | failed | noise | collapsed | healthy | unknown."""
    if unit["status"] in ("diverged", "failed"):
        return unit["status"]
    name = PRIMARY_METRIC
    scale = states.scale_of([unit.get("reference.feature_net")])
    learned = states.learned(_value(unit, name), *(_value(unit, c) for c in bound_columns(name)),
                             scale)
    if learned is None:
        return "unknown"
    if not learned:
        return "noise"
    collapsed = states.collapsed(_value(unit, "coverage"),
                                 _value(unit, "reference.floors.coverage"),
                                 _value(unit, "modes_covered"),
                                 _value(unit, "reference.floors.modes_covered"))
    return "unknown" if collapsed is None else ("collapsed" if collapsed else "healthy")


def health_table(in_task: pd.DataFrame) -> pd.DataFrame:
    """One row per unit: strategy, draw, health, the leading metric."""
    name = PRIMARY_METRIC
    return pd.DataFrame([{"strategy": u["strategy"], "draw": int(u["draw.index"]),
                          "health": unit_health(u), "value": _value(u, name)}
                         for _, u in in_task.iterrows()])


def _rate_cell(k: int, n: int) -> str:
    low, high = wilson(k, n)
    return f"{k} of {n}" + ("" if low is None else f" ({fmt.num(100 * low, 0)}–"
                                                     f"{fmt.num(100 * high, 0)}%)")


def _spread(values: pd.Series) -> str:
    v = values.dropna().to_numpy(dtype=float)
    if not len(v):
        return fmt.MISSING
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return f"{fmt.num(med)} ({fmt.num(q1)}–{fmt.num(q3)})"


def _pairs(in_task: pd.DataFrame, strategies: list[str]) -> list[str]:
    """Each strategy minus the baseline on the leading metric, draw against draw (lost units
    at the worst, as in every comparison), Holm over the strategies compared."""
    name = PRIMARY_METRIC
    base = strategy_side(in_task[in_task["strategy"] == BASELINE], name)
    ceiling = _value(in_task.iloc[0], bound_columns(name)[1])
    found = {st: paired(strategy_side(in_task[in_task["strategy"] == st], name), base,
                        ceiling, higher_is_better=False) for st in strategies}
    tested = [st for st in strategies if found[st].get("p") is not None]
    adjusted = dict(zip(tested, holm([found[st]["p"] for st in tested])))
    lines = []
    for st in strategies:
        r = found[st]
        if not r["n_pairs"]:
            lines.append(f"- {st} − {BASELINE}: no paired draws.")
            continue
        p = adjusted.get(st)
        interval = (f", 95% CI {fmt.num(r['ci_low'])} to {fmt.num(r['ci_high'])}"
                    if r.get("ci_low") is not None else "")
        clear = (p is not None and p < ALPHA and r.get("ci_low") is not None
                 and (r["ci_low"] > 0 or r["ci_high"] < 0))
        word = ("lower (better)" if r["diff_mean"] < 0 else "higher (worse)") if clear else \
            "no clear difference"
        lines.append(f"- {st} − {BASELINE}: **{word}**: mean difference "
                     f"{fmt.num(r['diff_mean'])}{interval} over {r['n_pairs']} draws"
                     + (f" ({r['n_diverged']} lost unit(s) at the worst)" if r["n_diverged"] else "")
                     + (f", Holm p {fmt.p_value(p)}" if p is not None else "") + ".")
    return lines


def _draw_table(in_task: pd.DataFrame, table: pd.DataFrame) -> str:
    """Each draw's values and, per strategy, its unit's health and leading metric."""
    names = sorted(set(table["strategy"]), key=lambda s: (s != BASELINE, s))
    params = sorted(c[len("draw.params."):] for c in in_task.columns
                    if c.startswith("draw.params."))
    rows = []
    for k, group in in_task.groupby("draw.index"):
        first = group.iloc[0]
        cells = [str(int(k))] + [f"{float(first[f'draw.params.{p}']):.3g}" for p in params]
        for st in names:
            mine = table[(table["strategy"] == st) & (table["draw"] == int(k))]
            cells.append(fmt.MISSING if mine.empty else
                         f"{mine.iloc[0]['health']} {fmt.num(mine.iloc[0]['value'])}")
        rows.append(cells)
    return fmt.table(["draw", *params, *names], rows)


def stability_figure(analysis: Analysis, task: str, out_dir: Path) -> Path | None:
    """The leading metric per draw and strategy, each draw's points joined (pairs)."""
    table = health_table(analysis.in_task(task))
    if table["value"].notna().sum() == 0:
        return None
    names = [BASELINE] + sorted(set(table["strategy"]) - {BASELINE})
    names = [n for n in names if n in set(table["strategy"])]
    fig = new_figure(1.6 + 1.2 * len(names), 3.2)
    ax = fig.add_subplot()
    wide = table.pivot(index="draw", columns="strategy", values="value")[names]
    for _, row in wide.iterrows():
        ax.plot(range(len(names)), row.to_numpy(dtype=float), color="0.8", lw=0.8, zorder=1)
    colours = {"healthy": "tab:green", "collapsed": "tab:orange", "noise": "tab:red"}
    for i, st in enumerate(names):
        mine = table[table["strategy"] == st]
        for health, group in mine.groupby("health"):
            ax.scatter([i] * len(group), group["value"], s=14, zorder=2,
                       color=colours.get(health, "0.4"), label=health)
    handles = dict(zip(*ax.get_legend_handles_labels()[::-1]))
    ax.legend(handles.values(), handles.keys(), fontsize=7, loc="best")
    ax.set_xticks(range(len(names)), names, fontsize=8)
    ax.set_ylabel(metric(PRIMARY_METRIC).label)
    ax.set_title(f"{task}: one point per hyper-parameter draw", fontsize=9)
    return save_png(fig, out_dir, "stability", task)


def stability_section(analysis: Analysis) -> str:
    frame = analysis.frame
    seeds = fmt.distinct(frame, "draw.seed")
    lines = ["## Stability over hyper-parameter draws", "",
             f"Each strategy trained with the same {frame['draw.index'].nunique()} draw(s) of "
             "the harness's search space (`bench tune`'s: learning rates, beta1, R1 weight, "
             f"EMA), draw seed {fmt.values_text(seeds)}; draw k trains with seed k. Healthy: "
             "finished, learned (the leading metric below the noise level "
             f"{leading_scale(frame).noise:g} of the way from floor to ceiling) and not collapsed "
             f"(at least {states.COLLAPSE_MODES} of the known modes real images cover, where the "
             f"task knows its modes; elsewhere coverage at least {states.COLLAPSE_COVERAGE} of "
             "the real level). Rates with 95% "
             "Wilson intervals; the leading metric as median (interquartile range) over draws.",
             ""]
    for task in analysis.tasks:
        in_task = analysis.in_task(task)
        table = health_table(in_task)
        rows = []
        for st in sorted(set(table["strategy"]), key=lambda s: (s != BASELINE, s)):
            mine = table[table["strategy"] == st]
            n = len(mine)
            count = lambda h: int((mine["health"] == h).sum())  # noqa: E731
            rows.append([st, _rate_cell(count("healthy"), n), str(count("collapsed")),
                         str(count("noise")), str(count("diverged")),
                         str(count("failed") + count("unknown")), _spread(mine["value"])])
        label = metric(PRIMARY_METRIC).label
        lines += [f"### {fmt.task_label(in_task, task)}", "",
                  fmt.table(["strategy", "healthy", "collapsed", "noise", "diverged",
                             "failed or unknown", label], rows), ""]
        others = sorted(set(table["strategy"]) - {BASELINE})
        if BASELINE in set(table["strategy"]) and others:
            lines += _pairs(in_task, others) + [""]
        lines += [_draw_table(in_task, table), ""]
    return "\n".join(lines).rstrip()
