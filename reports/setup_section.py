"""The report's "Set-up" section: where and how it ran, the data, what each metric was computed
from (sample counts, feature networks), every harness number, and the pretext models' cost."""

from __future__ import annotations

import pandas as pd

from reports import fmt
from reports.comparisons import leading_scale
from reports.fmt import table, values_text


def _keyed_values(frame: pd.DataFrame, prefix: str, missing: str) -> str:
    """`name value` for every `prefix.name` column, e.g. versions.torch -> `torch 2.13.0`."""
    parts = []
    for column in (c for c in frame.columns if c.startswith(prefix)):
        values = fmt.distinct(frame, column)
        parts.append(f"{column[len(prefix):]} {' / '.join(map(str, values)) or missing}")
    return ", ".join(parts) or fmt.MISSING


def _recipe(frame: pd.DataFrame) -> str:
    """The recipe and what it sets (rows from before recipes existed trained with `plain`)."""
    if "settings.recipe" not in frame:
        return "plain"
    parts = []
    for name in fmt.distinct(frame, "settings.recipe"):
        rows = frame[frame["settings.recipe"] == name]
        what = [f"{k} {_per_task(rows, f'settings.harness.{k}')}"
                for k in ("mbstd_group", "augment", "r1_reduction", "mode_seeking")
                if f"settings.harness.{k}" in rows]
        parts.append(f"{name} ({', '.join(what)})" if what else name)
    return "; ".join(parts)


def _per_task(rows: pd.DataFrame, column: str) -> str:
    """One value, or each task's when they differ (profiles may set a recipe's value per
    dimensionality)."""
    if len(fmt.distinct(rows, column)) <= 1:
        return values_text(fmt.distinct(rows, column))
    return " / ".join(f"{task} {values_text(fmt.distinct(group, column))}"
                      for task, group in rows.groupby("task", sort=True))


def _values(in_task: pd.DataFrame, column: str) -> str:
    return values_text([fmt.num(v, 0) if isinstance(v, float) else v
                        for v in fmt.distinct(in_task, column)])


def _inception(in_task: pd.DataFrame) -> str:
    nets = fmt.distinct(in_task, "reference.inception_net")
    if nets:
        return values_text(nets)
    # The evaluator records why it has no network; older runs only the per-metric reason.
    reasons = [*fmt.distinct(in_task, "reference.inception_missing"),
               *fmt.distinct(in_task, "metrics_missing.inception_fid")]
    return "none: " + values_text(list(dict.fromkeys(reasons)), "no reason recorded")


def _domain(in_task: pd.DataFrame) -> str:
    name, key = _values(in_task, "reference.feature_net"), _values(in_task, "reference.domain_key")
    details = [] if key in (fmt.MISSING, "") or key in name else [f"key {key}"]
    seconds = fmt.distinct(in_task, "reference.domain_seconds")
    if seconds:
        details.append(f"trained in {' / '.join(fmt.num(s, 1) for s in seconds)} s")
    return name + (f" ({', '.join(details)})" if details else "")


def _kid(in_task: pd.DataFrame) -> str:
    subsets, size = (fmt.distinct(in_task, f"reference.kid_{k}")
                     for k in ("subsets", "subset_size"))
    if not subsets and not size:
        return fmt.MISSING
    return f"{values_text(subsets)} subsets of {values_text(size)}"


def _leading(in_task: pd.DataFrame) -> str:
    """The leading metric the rows were scored with (rows before schema 3 name none: the domain
    FID) and the thresholds calibrated for its encoder."""
    names = fmt.distinct(in_task, "reference.leading") or ["fid"]
    scale = leading_scale(in_task)
    return (f"{values_text(names)}: noise from {scale.noise:g} of the way from floor to "
            f"ceiling, smallest effect {scale.smallest_effect:g}")


EVALUATION_ROWS = (
    ("leading metric (the encoder below)", _leading),
    ("samples per side (domain FID, KID, PRDC, NDB, MS-SSIM)",
     lambda t: _values(t, "reference.fid_samples")),
    ("domain encoder (self-supervised on the task's training images)", _domain),
    ("Inception network", _inception),
    ("Inception images (3D: per orthogonal plane)",
     lambda t: _values(t, "reference.inception_images")),
    ("KID", _kid),
    ("PRDC k", lambda t: _values(t, "reference.prdc_k")),
    ("NDB bins", lambda t: _values(t, "reference.ndb_bins")),
    ("MS-SSIM pairs", lambda t: _values(t, "reference.msssim_pairs")),
)


def _by_task(frame: pd.DataFrame, rows: list[tuple[str, object]]) -> str:
    tasks = sorted(frame["task"].unique())
    in_tasks = [frame[frame["task"] == t] for t in tasks]
    return table(["", *tasks], [[label, *(cell(t) for t in in_tasks)] for label, cell in rows])


def _harness_table(frame: pd.DataFrame) -> str:
    prefix = "settings.harness."
    keys = [c[len(prefix):] for c in frame.columns if c.startswith(prefix)]
    if not keys:
        return "The rows do not record the harness settings (an older harness version)."
    return _by_task(frame, [(key, lambda t, c=prefix + key: values_text(fmt.distinct(t, c)))
                            for key in keys])


def _spread(values: list[float], digits: int) -> str:
    x = [float(v) for v in values if not fmt.is_missing(v)]
    if not x:
        return fmt.MISSING
    if len(x) == 1:
        return fmt.num(x[0], digits)
    mean = sum(x) / len(x)
    sd = (sum((v - mean) ** 2 for v in x) / (len(x) - 1)) ** 0.5
    return (f"{fmt.num(mean, digits)} ± {fmt.num(sd, digits)} "
            f"(range {fmt.num(min(x), digits)}–{fmt.num(max(x), digits)})")


def _pretext_table(frame: pd.DataFrame) -> str:
    """One line per pretext artifact (by default one per seed), then the spread of translation
    quality over seeds: the pretext's own variance, part of every interval over seeds."""
    names = sorted({c.split(".")[1] for c in frame.columns
                    if c.startswith("pretexts.") and c.count(".") >= 2})
    rows, spreads = [], []
    for task in sorted(frame["task"].unique()):
        in_task = frame[frame["task"] == task]
        for name in names:
            prefix = f"pretexts.{name}."
            columns = [c for c in in_task.columns if c.startswith(prefix)]
            used = in_task[in_task[columns].notna().any(axis=1)]
            # Strategies (and, with --pretext-seed, seeds) share artifacts: one line per key.
            key = prefix + "key"
            used = used.drop_duplicates(subset=[key]) if key in columns else used.head(1)
            for _, unit in used.iterrows():
                seed = unit.get(prefix + "seed", unit.get("settings.pretext_seed"))
                rows.append([task, name, fmt.integer(seed), fmt.cell(unit.get(prefix + "key")),
                             fmt.num(unit.get(prefix + "steps"), 0),
                             fmt.num(unit.get(prefix + "seconds"), 1),
                             _rate(unit.get(f"compute.pretexts.{name}.flops"),
                                   unit.get(prefix + "seconds")),
                             fmt.num(unit.get(prefix + "ssim"), 3),
                             fmt.num(unit.get(prefix + "psnr"), 2)])
            if len(used) > 1 and prefix + "ssim" in columns:
                spreads.append(f"- {task} {name}, over {len(used)} pretext seeds: SSIM "
                               f"{_spread(list(used[prefix + 'ssim']), 3)}, PSNR "
                               f"{_spread(list(used[prefix + 'psnr']), 2)} dB")
    if not rows:
        return "No pretext models were used."
    shared = fmt.distinct(frame, "settings.pretext_shared")
    note = ("One pretext per seed: seed k of every strategy started from pretext seed k."
            if shared == [False] else
            "One pretext shared by every seed (`--pretext-seed`): intervals over seeds leave "
            "out the pretext's own variance." if shared == [True] else "")
    return "\n\n".join(part for part in (note, table(
        ["task", "pretext", "seed", "key", "steps", "seconds", "GFLOP/s", "SSIM", "PSNR (dB)"],
        rows), "\n".join(spreads), _gan_rates(frame)) if part)


def _rate(flops, seconds) -> str:
    if fmt.is_missing(flops) or fmt.is_missing(seconds) or not seconds > 0:
        return fmt.MISSING
    return fmt.num(flops / seconds / 1e9, 0)


def _gan_rates(frame: pd.DataFrame) -> str:
    """The GAN's training throughput beside the pretexts', from the same FLOP count."""
    if "compute.gan_flops" not in frame or "compute.gan_seconds" not in frame:
        return ""
    parts = []
    for task in sorted(frame["task"].unique()):
        units = frame[(frame["task"] == task) & (pd.to_numeric(frame["compute.gan_seconds"],
                                                               errors="coerce") > 0)]
        if len(units):
            rate = (pd.to_numeric(units["compute.gan_flops"])
                    / pd.to_numeric(units["compute.gan_seconds"])).median() / 1e9
            parts.append(f"{task} {fmt.num(rate, 0)}")
    text = ("GAN training (FLOPs counted as above, over training seconds), median over units, "
            f"GFLOP/s: {', '.join(parts)}." if parts else "")
    overhead = _overhead(frame)
    return f"{text} {overhead}".strip()


def _overhead(frame: pd.DataFrame) -> str:
    """The share of a unit's seconds that neither trained nor computed the final metrics: the
    evaluations during training and the bookkeeping."""
    if "compute.final_metrics_seconds" not in frame:
        return ""

    def col(name: str) -> pd.Series:
        values = frame[name] if name in frame else pd.Series(0.0, index=frame.index)
        return pd.to_numeric(values, errors="coerce").fillna(0.0)

    rest = col("seconds") - col("compute.final_metrics_seconds")
    trained = col("compute.gan_seconds") + col("compute.extension.seconds")
    timed = (rest > 0) & frame["compute.final_metrics_seconds"].notna()
    share = ((rest - trained) / rest).where(timed)
    by_task = {task: share[frame["task"] == task] for task in sorted(frame["task"].unique())}
    parts = [f"{task} {fmt.num(100 * values.median(), 0)}%"
             for task, values in by_task.items() if values.notna().any()]
    return ("Share of a unit's seconds spent evaluating during training and on bookkeeping "
            f"(the final metrics excepted), median over units: {', '.join(parts)}."
            if parts else "")


def _effort(unit: pd.Series) -> str:
    # Rows of an older harness lack `diverged` and `retried`: unknown, not zero.
    count = {key: unit.get(f"tuned.effort.{key}")
             for key in ("complete", "pruned", "fail", "diverged", "retried")}
    text = (f"{fmt.integer(count['complete'])} / {fmt.integer(count['pruned'])} / "
            f"{fmt.integer(count['fail'])} ({fmt.integer(count['diverged'])})")
    retried = count["retried"]
    return text if fmt.is_missing(retried) or retried == 0 else f"{text}, {int(retried)} retried"


def _tuning_table(frame: pd.DataFrame) -> str | None:
    """Per (task, strategy): the study and best trial a tuned run used, its parameters and the
    tuning effort; None for runs without `--tuned`."""
    if "tuned.study" not in frame.columns or frame["tuned.study"].isna().all():
        return None
    params = sorted(c for c in frame.columns if c.startswith("tuned.params."))
    units = frame.dropna(subset=["tuned.study"]).drop_duplicates(subset=["task", "strategy"])
    rows = []
    for _, unit in units.iterrows():
        chosen = ", ".join(
            f"{c.removeprefix('tuned.params.')} "
            + (f"{unit[c]:.3g}" if isinstance(unit[c], float) else fmt.cell(unit[c]))
            for c in params if not fmt.is_missing(unit[c]))
        # Untuned rows in the frame make the trial number a float column.
        study = f"{unit['tuned.study']} #{fmt.integer(unit['tuned.trial'])}"
        rows.append([unit["task"], unit["strategy"], study,
                     fmt.num(unit.get("tuned.value")), chosen,
                     _effort(unit), fmt.num(unit.get("tuned.effort.train_seconds"), 1)])
    return ("Each strategy ran with the best trial of its own study (`bench tune`, the same "
            "number of trials per study; objective: final domain FID against validation "
            "images). A trial whose losses or images became non-finite failed (diverged); "
            "retried: records of killed workers whose trial ran again, not counted.\n\n"
            + table(["task", "strategy", "study and trial", "tuning FID", "parameters",
                     "trials: complete / pruned / failed (of which diverged)",
                     "tuning train seconds"], rows))


def _precision(frame: pd.DataFrame) -> str:
    """The precision and why it was chosen (rows from before `auto` existed say only which)."""
    names = values_text(fmt.distinct(frame, "settings.precision"))
    reasons = fmt.distinct(frame, "settings.precision_reason")
    return f"{names} ({'; '.join(reasons)})" if reasons else names


def setup_section(frame: pd.DataFrame) -> str:
    lines = [
        "## Set-up",
        "",
        f"- Profile: {values_text(fmt.distinct(frame, 'settings.profile'))}",
        f"- Device: {values_text(fmt.distinct(frame, 'settings.device'))}",
        f"- Precision: {_precision(frame)}",
        f"- Training recipe: {_recipe(frame)}",
        f"- Versions: {_keyed_values(frame, 'versions.', fmt.MISSING)}",
        # A null hardware field means "not present" (e.g. gpu: null on a CPU machine).
        f"- Hardware: {_keyed_values(frame, 'hardware.', 'none')}",
        "",
    ]
    rows = []
    for task in sorted(frame["task"].unique()):
        in_task = frame[frame["task"] == task]
        rows.append([task] + [values_text(fmt.distinct(in_task, c)) for c in (
            "settings.data_source", "settings.data_skipped", "settings.dims",
            "settings.image_size", "settings.steps", "settings.batch_size",
            "settings.data_fingerprint", "settings.data_seed", "settings.pretext_seed")])
    lines.append(table(["task", "source", "skipped scans", "dims", "image size", "steps",
                        "batch size", "data fingerprint", "data seed", "pretext seed"], rows))
    lines += ["", "Skipped scans: subjects or files of a real source left out (one contrast "
              "missing, unreadable, corrupt, non-finite or constant images, ...); "
              "`bench data inspect` lists each with its reason."]
    lines += ["", "### Evaluation: sample counts and feature networks", "",
              "Generated samples are compared with held-out real test images; the domain "
              "encoder is trained only on the task's training images.", "",
              _by_task(frame, list(EVALUATION_ROWS)),
              "", "### Harness settings (the same for every strategy)", "", _harness_table(frame),
              "", "### Pretext models: cost and translation quality", "", _pretext_table(frame)]
    tuning = _tuning_table(frame)
    if tuning is not None:
        lines[lines.index("### Harness settings (the same for every strategy)")] = \
            "### Harness settings (the same for every strategy, except the tuned values below)"
        lines += ["", "### Tuned hyper-parameters", "", tuning]
    return "\n".join(lines)
