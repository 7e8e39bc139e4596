"""The metric validation suite: does each metric order graded degradations of real images, and does
it tell noise from anatomy? A metric is trusted only where it passes here.

Every draw splits the task's VALIDATION subjects in two halves (the test images stay for the
benchmark): one half is the reference the metrics measure against, the other the real images that
are degraded. The training images serve the memorization case only.

Pass rules are paired: within a draw, a degraded set is the same half of real images as that
draw's undegraded set, measured against the same reference, so each draw gives a paired
difference (degraded minus undegraded, signed so that worse is up) free of which subjects formed
the halves. Per (metric, degradation) its registry entry requires (`must_order`,
`must_tell_fakes`; bench.metrics.registry): Spearman rho = 1 between strength (0 = undegraded,
difference 0, then 1..K) and the mean paired difference over draws; and the strongest level's
mean paired difference more than SEPARATION standard deviations of its paired differences over
draws. Per (metric, fake) case: the same separation of its paired differences. With the default
5 draws, a separation of 3 is a one-sided paired t of 3 x sqrt(5) = 6.7 (p = 0.001, 4 degrees
of freedom). The unpaired rule it replaced used the spread of the undegraded values over draws,
mostly which subjects formed each half (docs/evaluation.md keeps its table).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr
from tqdm.auto import tqdm

from bench.device import seeded_generator
from bench.metrics import degrade
from bench.metrics.fid import even_subset
from bench.metrics.memorization import copies
from bench.metrics.modes import ModeReference
from bench.metrics import states
from bench.metrics.scores import MetricError
from bench.metrics.registry import HIGHER, LEADING, Reference, Sample, list_metrics, nearest
from bench.nets import build_networks
from ground.errors import BenchError

SEPARATION = 3.0
RHO_ONE = 1 - 1e-9  # spearmanr's 1.0 can come back as 0.9999999999999999
CASES = ("shuffled", "checkerboard", "filled", "untrained")
CASE_LABELS = {"shuffled": "brain-masked voxel shuffle", "checkerboard":
               f"checkerboard (period {degrade.UPSAMPLING_PERIOD}) in the brain mask",
               "filled": "real outlines filled without inner anatomy (smoothed inside the mask)",
               "untrained": "untrained generator"}
MIN_POOL = 8  # degraded-set images: fewer and the dropped-mode strengths drop equal counts


@dataclass
class SuiteResult:
    raw: pd.DataFrame  # metric, check, level, strength, draw, value
    table: pd.DataFrame  # metric, check, kind, required, rho, separation, passed
    flags: pd.DataFrame  # memorization flag of the real and the all-training sets, per draw
    states: pd.DataFrame  # state, set, expected, draws, hits, passed (see state_checks)
    image_size: int = 64
    positions: pd.DataFrame | None = None  # check, level, strength, mean, low, high
    # metric, required, draws, held, margin, closest_mild, closest_fake (see anatomy_order)
    anatomy: pd.DataFrame | None = None
    dims: int = 2

    def _failing(self) -> list[str]:
        bad = self.table[self.table["required"] & ~self.table["passed"]]
        names = list(dict.fromkeys(bad["metric"]))
        if self.anatomy is not None and len(self.anatomy):
            bad = self.anatomy[self.anatomy["required"] & ~self.anatomy["passed"]]
            names += [m for m in bad["metric"] if m not in names]
        return names

    def failures(self) -> list[str]:
        """What the registry trusts and fails a required check: the leading metric, the metrics
        marked validated in these dims, the states and the memorization flag. Exit status 1."""
        trusted = {m.name for m in list_metrics(dims=self.dims)
                   if m.name == LEADING or self.dims in m.validated}
        names = [m for m in self._failing() if m in trusted]
        if len(self.states) and not self.states["passed"].all():
            names.append("states (noise / collapsed thresholds)")
        if len(self.flags) and (self.flags["real"].any() or not self.flags["training"].all()):
            names.append("memorization flag")
        return names

    def unvalidated(self) -> list[str]:
        """Metrics that fail a check they would need but that the registry does not trust: listed,
        never an exit status."""
        failures = set(self.failures())
        return [m for m in self._failing() if m not in failures]


def _halves(split, gen: torch.Generator, n: int):
    """(reference images, pool images, pool subjects, pool labels): the subjects split in two at
    random, each half thinned evenly to at most n images (the benchmark's sample count)."""
    subjects = split.subject.unique()
    order = subjects[torch.randperm(len(subjects), generator=gen)]
    half = set(order[: len(order) // 2].tolist())
    in_ref = torch.tensor([int(s) in half for s in split.subject])
    ref, pool = (even_subset(torch.nonzero(mask).flatten(), n) for mask in (in_ref, ~in_ref))
    labels = None if split.modes is None else split.modes[pool]
    return split.t1[ref], split.t1[pool], split.subject[pool], labels


def _untrained(s, n: int, draw: int) -> torch.Tensor:
    G, _ = build_networks(s, 10_000 + draw)
    z = torch.randn(n, s.z_dim, generator=seeded_generator(draw, 11))
    with torch.no_grad():
        return torch.cat([G.eval()(chunk) for chunk in z.split(16)])


def check_size(data) -> None:
    """One-line error before any work when a draw's halves would be too small to grade."""
    subjects = data.val.subject.unique()
    per_subject = len(data.val) / max(1, len(subjects))
    pool = int(len(subjects) - len(subjects) // 2) * per_subject
    if len(subjects) < 2 or pool < MIN_POOL:
        raise BenchError(f"validate-metrics splits the {len(subjects)} validation subjects of "
                         f"{data.spec.name} ({len(data.val)} images) in two halves and needs at "
                         f"least {MIN_POOL} images in each; give the task more validation "
                         "subjects (its [splits])")


def run_suite(data, s, domain, inception_extractor=None, draws: int = 3, seed: int = 0,
              progress: bool = True, names: list[str] | None = None,
              mode_classifier=None, checks: list[str] | None = None,
              encoders: dict | None = None) -> SuiteResult:
    """Every registered metric (or those `names`) on every degradation, strength and fake case
    (or those `checks`; the real sets and the untrained generator, floor and ceiling, always),
    `draws` times. `mode_classifier` (bench.metrics.modes) reads the known modes; without one
    the mode metrics are recorded as missing. `encoders`: the further domain encoders metrics
    have of their own (bench.metrics.domain.get_encoders)."""
    from bench.metrics.inception import InceptionFID
    metrics = [m for m in list_metrics(inception_extractor is not None, s.dims)
               if names is None or m.name in names]
    check_size(data)
    kinds = [k for k in degrade.degradations(s.image_size) if checks is None or k.name in checks]
    cases = [c for c in CASES if checks is None or c in checks or c == "untrained"]
    records, flags = [], []
    total = draws * (1 + sum(len(k.levels) for k in kinds)
                     + any(k.name == "dropped_modes" for k in kinds) + len(cases))
    bar = tqdm(total=total, desc=f"validate {data.spec.name}", disable=not progress, leave=False)

    for draw in range(draws):
        gen = seeded_generator(seed, draw, 12)
        ref_images, pool_images, pool_subjects, pool_labels = _halves(data.val, gen,
                                                                      s.fid_samples)
        inception = (InceptionFID(inception_extractor, ref_images, s.dims, s.inception_images)
                     if inception_extractor is not None else None)
        ref = Reference(ref_images, data.train.t1, domain, s, inception,
                        ModeReference.of(data, mode_classifier), encoders or {})
        pool = degrade.Pool(pool_images,
                            degrade.mode_coordinate(pool_images, pool_subjects, pool_labels),
                            data.train.t1)
        n = len(pool_images)

        def measure(check: str, level: int, strength: float, images: torch.Tensor) -> Sample:
            sample = Sample(images)
            for m in metrics:
                try:
                    value = m.value(ref, sample)
                except MetricError:  # cannot be computed for this set: recorded as missing
                    value = None
                value = None if value is None or not math.isfinite(value) else float(value)
                records.append((m.name, check, level, strength, draw, value))
            bar.update(1)
            return sample

        real = degrade.undegraded(pool, n, gen)
        real_sample = measure("real", 0, 0.0, real)
        for kind in kinds:
            size = n
            if kind.name == "dropped_modes":  # room to draw distinct images at every strength
                size = n - int(round(max(kind.levels) * n))
                measure(kind.name, 0, 0.0, degrade.undegraded(pool, size, gen))
            for level, strength in enumerate(kind.levels, start=1):
                sample = measure(kind.name, level, strength, kind.apply(pool, size, strength, gen))
                if kind.name == "memorized" and level == len(kind.levels):
                    for space in ("features", "pixels"):
                        flags.append({"space": space, "draw": draw, "n": n,
                                      "real": copies(*nearest(ref, real_sample, space)),
                                      "training": copies(*nearest(ref, sample, space))})
        fakes = {"shuffled": lambda: degrade.voxel_shuffle(pool, n, gen),
                 "checkerboard": lambda: degrade.checkerboard(pool, n, gen),
                 "filled": lambda: degrade.filled(pool, n, gen),
                 "untrained": lambda: _untrained(s, n, draw)}
        for case in cases:
            measure(case, 1, 1.0, fakes[case]())
    bar.close()
    raw = pd.DataFrame(records, columns=["metric", "check", "level", "strength", "draw", "value"])
    # Full-size degradations share the draw's real set as their strength 0.
    zero = raw[raw["check"] == "real"]
    extra = [zero.assign(check=kind.name) for kind in kinds if kind.name != "dropped_modes"]
    raw = pd.concat([raw[raw["check"] != "real"], *extra], ignore_index=True)
    raw = pd.concat([raw, zero.assign(check="real")], ignore_index=True)
    return SuiteResult(raw, judge(raw, metrics), pd.DataFrame(flags), state_checks(raw),
                       s.image_size, positions(raw), anatomy_order(raw, metrics), s.dims)


def anatomy_order(raw: pd.DataFrame, metrics) -> pd.DataFrame:
    """Anatomy before grain: per metric, whether on every draw every set without anatomy
    (degrade.WITHOUT_ANATOMY) lies farther from the real set than every mild degradation that
    keeps it (degrade.mild_levels). `margin` is the worst draw's gap (the nearest fake minus the
    farthest mild set) on that draw's scale from its real set (0) to its untrained generator
    (1), so metrics compare; `closest_mild` and `closest_fake` name that draw's pair. Sets the
    suite did not run are left out; a metric needs at least one of each kind to be judged."""
    mild = {(check, level) for check, levels in degrade.mild_levels().items() for level in levels}
    fakes = set(degrade.WITHOUT_ANATOMY)
    rows = []
    for m in metrics:
        sign = 1.0 if m.worsens == HIGHER else -1.0
        mine = raw[raw["metric"] == m.name]
        margins = []
        for draw, part in mine.groupby("draw"):
            value = {(c, int(lv)): sign * v for c, lv, v in
                     zip(part["check"], part["level"], part["value"]) if v is not None
                     and math.isfinite(v)}
            real, untrained = value.get(("real", 0)), value.get(("untrained", 1))
            near_mild = [(value[k], k) for k in mild if k in value]
            near_fake = [(value[k], k) for k in fakes if k in value]
            if real is None or untrained is None or untrained == real or not near_mild \
                    or not near_fake:
                continue
            (far, mild_set), (near, fake_set) = max(near_mild), min(near_fake)
            margins.append(((near - far) / (untrained - real), mild_set, fake_set))
        if not margins:
            continue
        worst = min(margins)
        rows.append((m.name, m.must_rank_anatomy, len(margins),
                     sum(g > 0 for g, _, _ in margins), worst[0],
                     f"{worst[1][0]} {worst[1][1]}", f"{worst[2][0]}" +
                     (f" {worst[2][1]}" if worst[2][0] == "texture" else ""),
                     all(g > 0 for g, _, _ in margins)))
    return pd.DataFrame(rows, columns=["metric", "required", "draws", "held", "margin",
                                       "closest_mild", "closest_fake", "passed"])


def state_checks(raw: pd.DataFrame) -> pd.DataFrame:
    """The one definition of noise and collapse (bench.metrics.states) on the suite's sets, each
    draw on its own; floors and ceilings are the means over draws of the real sets and of the
    untrained generators. Collapse is judged by known modes where they were measured, else by
    coverage. Empty when the leading metric or both collapse measures are missing."""

    def values(metric: str, check: str, level: int) -> pd.Series:
        part = raw[(raw["metric"] == metric) & (raw["check"] == check) & (raw["level"] == level)]
        return part.set_index("draw")["value"]

    by_modes = values("modes_covered", "real", 0).notna().any()
    measure = "modes_covered" if by_modes else "coverage"
    if values(LEADING, "real", 0).empty or not values(measure, "real", 0).notna().any():
        return pd.DataFrame(columns=["state", "set", "expected", "draws", "hits", "passed"])
    floor, ceiling = values(LEADING, "real", 0).mean(), values(LEADING, "untrained", 1).mean()
    real_level = values(measure, "real", 0).mean()
    duplicated = raw.loc[raw["check"] == "duplicated", "level"]

    def is_noise(v: float) -> bool | None:
        return states.noise(v, floor, ceiling)

    def is_collapsed(v: float) -> bool | None:
        return (states.collapsed(None, None, v, real_level) if by_modes
                else states.collapsed(v, real_level))

    mild = [values(LEADING, check, level) for check, levels in degrade.mild_levels().items()
            for level in levels if ((raw["check"] == check) & (raw["level"] == level)).any()]
    cases = [("noise", "real", False, values(LEADING, "real", 0), is_noise),
             *([("noise", "mild degradations (every set)", False, pd.concat(mild), is_noise)]
               if mild else []),
             *[("noise", c, True, values(LEADING, c, 1), is_noise) for c in CASES
               if (raw["check"] == c).any()],
             ("collapsed", "real", False, values(measure, "real", 0), is_collapsed)]
    if len(duplicated):
        cases.append(("collapsed", "duplicated (strongest)", True,
                      values(measure, "duplicated", int(duplicated.max())), is_collapsed))
    rows = []
    for state, name, expected, series, judge_one in cases:
        hits = [judge_one(v) for v in series.dropna()]
        rows.append((state, name, expected, len(hits), sum(bool(h) for h in hits),
                     bool(hits) and all(h == expected for h in hits)))
    return pd.DataFrame(rows, columns=["state", "set", "expected", "draws", "hits", "passed"])


def positions(raw: pd.DataFrame) -> pd.DataFrame:
    """Every degradation level and fake on the leading metric's scale: 0 at the real sets (the
    floor), 1 at the untrained generator (the ceiling), per draw against that draw's own floor
    and ceiling; mean, lowest and highest over draws. What "noise" is calibrated on."""
    values = raw[raw["metric"] == LEADING]
    if values.empty:
        return pd.DataFrame(columns=["check", "level", "strength", "mean", "low", "high"])
    bounds = {d: (g.loc[g["check"] == "real", "value"].mean(),
                  g.loc[g["check"] == "untrained", "value"].mean())
              for d, g in values.groupby("draw")}
    where = values.assign(position=[states.position(v, *bounds[d])
                                    for v, d in zip(values["value"], values["draw"])])
    where = where[where["check"] != "real"]
    out = (where.groupby(["check", "level", "strength"], sort=False)["position"]
           .agg(["mean", "min", "max"]).reset_index()
           .rename(columns={"min": "low", "max": "high"}))
    return out


def calibration(result_positions: pd.DataFrame) -> dict | None:
    """Where "noise" may start on the leading metric: the mild set's highest draw and the sets
    without anatomy's lowest, each with the set that holds it, and the threshold halfway
    between them (bench.metrics.states.noise_threshold; None when they overlap). None when the
    suite ran no mild degradation or no set without anatomy."""
    p = result_positions
    if p is None or p.empty:
        return None
    key = list(zip(p["check"], p["level"].astype(int)))
    mild = {(c, lv) for c, levels in degrade.mild_levels().items() for lv in levels}
    in_mild = p[[k in mild for k in key]]
    fakes = p[[k in set(degrade.WITHOUT_ANATOMY) for k in key]]
    if in_mild.empty or fakes.empty:
        return None
    high, low = in_mild.loc[in_mild["high"].idxmax()], fakes.loc[fakes["low"].idxmin()]
    out = {"mild_high": float(high["high"]), "mild_set": f"{high['check']} {int(high['level'])}",
           "fakes_low": float(low["low"]), "fake_set": f"{low['check']} {int(low['level'])}"}
    try:
        out["threshold"] = states.noise_threshold(out["mild_high"], out["fakes_low"])
    except ValueError:
        out["threshold"] = None
    return out


def _separation(base: pd.Series, worse: pd.Series) -> float:
    """The mean paired difference `worse - base` (indexed by draw, signed so that worse is
    larger) in standard deviations of those differences over draws; inf when every draw moved
    by the same amount."""
    diff = (worse - base).dropna()
    if len(diff) < 2:
        return float("nan")
    gap, sd = float(diff.mean()), float(diff.std(ddof=1))
    if sd == 0:
        return math.copysign(math.inf, gap) if gap else 0.0
    return gap / sd


def judge(raw: pd.DataFrame, metrics) -> pd.DataFrame:
    rows = []
    for m in metrics:
        required, cases_required = m.must_order, m.must_tell_fakes
        sign = 1.0 if m.worsens == HIGHER else -1.0
        mine = raw[raw["metric"] == m.name].assign(value=lambda f: sign * f["value"])

        def by_draw(check: str, level: int) -> pd.Series:
            part = mine[(mine["check"] == check) & (mine["level"] == level)]
            return part.set_index("draw")["value"]

        for check in mine["check"].unique():
            if check == "real":
                continue
            if check in CASES:
                sep = _separation(by_draw("real", 0), by_draw(check, 1))
                rows.append((m.name, check, "case", cases_required, float("nan"), sep,
                             bool(sep > SEPARATION)))
                continue
            levels = sorted(mine.loc[mine["check"] == check, "level"].unique())
            base = by_draw(check, 0)
            diffs = [by_draw(check, level) - base for level in levels]
            complete = all(d.notna().sum() == len(base) > 0 for d in diffs)
            signed = np.array([d.mean() for d in diffs], dtype=float)
            rho = (float(spearmanr(levels, signed).statistic)
                   if complete and np.isfinite(signed).all() and np.ptp(signed) > 0 else float("nan"))
            sep = _separation(base, by_draw(check, int(levels[-1])))
            rows.append((m.name, check, "degradation", check in required, rho, sep,
                         bool(rho > RHO_ONE and sep > SEPARATION)))
    return pd.DataFrame(rows, columns=["metric", "check", "kind", "required", "rho", "separation",
                                       "passed"])


def _cell(row: pd.Series) -> str:
    mark = ("pass" if row["passed"] else "FAIL") if row["required"] else (
        "(sees it)" if row["passed"] else "-")
    rho = "" if math.isnan(row["rho"]) else f"rho {row['rho']:.2f}, "
    sep = row["separation"]
    sep_text = "n/a" if math.isnan(sep) else ("inf" if math.isinf(sep) else f"{sep:.1f}")
    return f"{rho}{sep_text} sd {mark}"


def table_text(result: SuiteResult) -> str:
    """The markdown table: one row per metric, one column per degradation and fake case."""
    t = result.table
    checks = [c for c in [k.name for k in degrade.degradations(result.image_size)] + list(CASES)
              if c in set(t["check"])]
    lines = ["| metric | " + " | ".join(checks) + " | verdict |",
             "|---" * (len(checks) + 2) + "|"]
    for metric in dict.fromkeys(t["metric"]):
        mine = t[t["metric"] == metric].set_index("check")
        cells = [_cell(mine.loc[c]) if c in mine.index else "" for c in checks]
        required = mine[mine["required"]]
        verdict = ("descriptive" if required.empty else
                   "passes" if required["passed"].all() else "FAILS")
        lines.append(f"| {metric} | " + " | ".join(cells) + f" | {verdict} |")
    lines += ["", "Strengths 1-4: " + "; ".join(
        f"{k.name} ({k.label}), {k.unit} {', '.join(f'{v:g}' for v in k.levels)}"
        for k in degrade.degradations(result.image_size)) + ". Fakes: " + "; ".join(
        f"{c}: {label}" for c, label in CASE_LABELS.items()) + "."]
    if len(result.flags):
        f = result.flags
        lines += ["", "Memorization flag (bench.metrics.memorization.copies), per space: held-out "
                      "real sets flagged in " + ", ".join(
                          f"{s} {int(g['real'].sum())} of {len(g)}" for s, g in f.groupby("space"))
                  + " draws; all-training sets flagged in " + ", ".join(
                      f"{s} {int(g['training'].sum())} of {len(g)}" for s, g in f.groupby("space"))
                  + " draws."]
    if result.positions is not None and len(result.positions):
        lines += ["", "Positions on the leading metric (0: the real sets, 1: the untrained "
                      "generator; mean over draws, lowest to highest):", "",
                  "| set | level | strength | position |", "|---|---|---|---|"]
        for _, r in result.positions.iterrows():
            lines.append(f"| {r['check']} | {r['level']} | {r['strength']:g} | "
                         f"{r['mean']:.3f} ({r['low']:.3f} to {r['high']:.3f}) |")
    if result.anatomy is not None and len(result.anatomy):
        lines += ["", "Anatomy before grain: every set without anatomy ("
                  + ", ".join(f"{c}" + (f" {lv}" if c == "texture" else "")
                              for c, lv in degrade.WITHOUT_ANATOMY)
                  + ") farther from the real set than every mild degradation ("
                  + "; ".join(f"{c} {', '.join(map(str, lv))}"
                              for c, lv in degrade.mild_levels().items())
                  + "), on every draw. Margin: the worst draw's nearest set without anatomy minus "
                    "its farthest mild set, 0 at the real set and 1 at the untrained generator.",
                  "", "| metric | draws held | worst margin | farthest mild | nearest without "
                      "anatomy | verdict |", "|---|---|---|---|---|---|"]
        for _, r in result.anatomy.iterrows():
            mark = ("pass" if r["passed"] else "FAIL") if r["required"] else (
                "(holds)" if r["passed"] else "-")
            lines.append(f"| {r['metric']} | {r['held']} of {r['draws']} | {r['margin']:.3f} | "
                         f"{r['closest_mild']} | {r['closest_fake']} | {mark} |")
    found = calibration(result.positions)
    if found is not None:
        threshold = ("none: they overlap" if found["threshold"] is None
                     else f"{found['threshold']:.3f}")
        lines += ["", f"Calibration of \"noise\" on the leading metric: the mild set's highest "
                      f"draw {found['mild_high']:.3f} ({found['mild_set']}), the sets without "
                      f"anatomy's lowest {found['fakes_low']:.3f} ({found['fake_set']}); halfway: "
                      f"{threshold} (the states use {states.NOISE_POSITION:g})."]
    if len(result.states):
        by_modes = (result.raw["metric"] == "modes_covered").any() and result.raw.loc[
            result.raw["metric"] == "modes_covered", "value"].notna().any()
        collapse = (f"fewer than {states.COLLAPSE_MODES} of the known modes the real sets cover"
                    if by_modes else f"coverage below {states.COLLAPSE_COVERAGE} of the real sets'")
        lines += ["", f"States (bench.metrics.states: noise from position "
                      f"{states.NOISE_POSITION} of the leading metric, collapse: {collapse}):", "",
                  "| state | set | expected | draws with the state | verdict |", "|---|---|---|---|---|"]
        for _, r in result.states.iterrows():
            lines.append(f"| {r['state']} | {r['set']} | {'yes' if r['expected'] else 'no'} | "
                         f"{r['hits']} of {r['draws']} | {'pass' if r['passed'] else 'FAIL'} |")
    return "\n".join(lines)


def figure(result: SuiteResult, path: Path, title: str) -> Path:
    """Each metric's mean (bars: sd over draws) against strength, one line per degradation."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    raw = result.raw
    metrics = list(dict.fromkeys(raw["metric"]))
    cols = 4
    rows = math.ceil(len(metrics) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        mine = raw[raw["metric"] == metric]
        for check in dict.fromkeys(mine["check"]):
            if check == "real":
                continue
            part = mine[mine["check"] == check].groupby("level")["value"].agg(["mean", "std"])
            if check in CASES:  # beside each other, right of the strongest degradation
                ax.errorbar([5 + 0.5 * CASES.index(check)], part["mean"], part["std"], fmt="x",
                            label=check)
            else:
                ax.errorbar(part.index, part["mean"], part["std"], marker="o", ms=3, label=check)
        ax.set_title(metric, fontsize=9)
        ax.set_xlabel("level (0 = real, 1-4 = strengths); right: fake cases", fontsize=7)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(metrics):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6)
    fig.suptitle(title)
    fig.tight_layout()
    from ground.atomic import atomic_path
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return path


def write_outputs(result: SuiteResult, out_dir: Path, title: str) -> dict[str, Path]:
    """validation.csv (the judged table), values.csv (every measured value), memorization.csv
    (the copy flags), states.csv (the noise and collapse checks), positions.csv (every set on
    the leading metric's floor-to-ceiling scale) and validation.png, each written atomically."""
    from ground.atomic import write_atomic
    out_dir = Path(out_dir)
    paths = {"table": out_dir / "validation.csv", "values": out_dir / "values.csv",
             "memorization": out_dir / "memorization.csv", "states": out_dir / "states.csv",
             "positions": out_dir / "positions.csv"}
    for key, frame in (("table", result.table), ("values", result.raw),
                       ("memorization", result.flags), ("states", result.states),
                       ("positions", result.positions if result.positions is not None
                        else pd.DataFrame())):
        write_atomic(paths[key], frame.to_csv(index=False))
    paths["figure"] = figure(result, out_dir / "validation.png", title)
    return paths
