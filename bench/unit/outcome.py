"""What a trained unit's curve and samples say: the leading metric's summaries and the
final-sample metrics, and the compute it cost; for the baseline, the same at every other
strategy's compute budget."""

from __future__ import annotations

import strategies
from bench.compute import evaluation_flops, gan_flops, steps_for
from bench.metrics.evaluation import Evaluator
from bench.metrics.events import convergence
from bench.pretext import pretext_flops
from bench.profiles import Settings
from bench.train import UnitResult


def _why_no_fid(rows: list[dict]) -> str:
    """Why the last of these evaluations without a domain FID has none, as the evaluator
    recorded it (rows of older checkpoints and a divergence's closing row have no reason)."""
    reasons = [r["fid_missing"] for r in rows if r.get("fid") is None and r.get("fid_missing")]
    return reasons[-1] if reasons else "reason not recorded"


def final_fid(result: UnitResult) -> tuple[float | None, str | None]:
    """The leading metric at the last step of a finished unit, or None and why there is none:
    the one final value that `bench run` records and `bench tune` optimizes."""
    last = [r for r in result.curve if r["step"] == result.steps and r["fid"] is not None]
    if result.status == "ok" and last:
        return last[-1]["fid"], None
    at_end = [r for r in result.curve if r["step"] == result.steps]
    return None, result.reason or f"the final evaluation: {_why_no_fid(at_end)}"


def unit_metrics(result: UnitResult, evaluator: Evaluator) -> tuple[dict, dict]:
    """Domain-FID curve summaries, then the final-sample metrics (only for a finished unit)."""
    fids = result.fids()
    metrics = {"fid_init": None, "fid_final": None, "fid_best": None, "fid_best_step": None,
               "fid_gap": None, **convergence(result.curve)}
    missing: dict[str, str] = {}
    first = result.curve[0] if result.curve else None
    if first is not None and first["step"] == 0 and first["fid"] is not None:
        metrics["fid_init"] = first["fid"]
    else:
        missing["fid_init"] = (_why_no_fid([first]) if first is not None and first["step"] == 0
                               else "the initialized generator was not evaluated")
    if fids:
        step, best = min(fids, key=lambda sf: sf[1])
        metrics["fid_best"], metrics["fid_best_step"] = best, step
    else:
        why = f"no evaluation gave a domain FID: {_why_no_fid(result.curve)}"
        for name in ("fid_best", "fid_best_step", "fid_auc"):
            missing[name] = why
    metrics["fid_final"], reason = final_fid(result)
    if reason is None:
        metrics["fid_gap"] = metrics["fid_final"] - metrics["fid_best"]
        final, final_missing = evaluator.final(result.samples)
        metrics.update(final)
        missing.update(final_missing)
    else:
        # An area over a curve cut short is not comparable with full-length ones.
        metrics["fid_auc"] = None
        missing["fid_final"] = missing["fid_gap"] = missing["fid_auc"] = reason
        missing["final_samples"] = f"no final-sample metrics: {reason}"
    return metrics, missing


def unit_compute(s: Settings, needs) -> dict:
    """FLOPs a unit of a strategy needing `needs` costs, pretexts included."""
    gan = gan_flops(s, s.steps)
    pretexts = {name: pretext_flops(name, s) for name in needs}
    return {"gan_flops": gan, "pretext_flops": pretexts, "total_flops": gan + sum(pretexts.values())}


def baseline_budgets(s: Settings, names: list[str]) -> dict[str, dict]:
    """Per other strategy of the run: its (pretext + GAN) FLOPs, and the baseline's training
    steps that first reach them (never fewer than the common step budget)."""
    out = {}
    for name in names:
        if name != strategies.BASELINE and strategies.applies(name, s.dims):
            flops = unit_compute(s, strategies.get_strategy(name).needs)["total_flops"]
            out[name] = {"flops": flops, "step": max(s.steps, steps_for(s, flops))}
    return out


def metrics_at_budgets(result: UnitResult, metrics: dict, budgets: dict, s: Settings,
                       evaluator: Evaluator) -> dict:
    """The baseline's leading metric and final-sample metrics at each strategy's budget."""
    rows = [r for r in [*result.curve, *result.extension] if "d_acc_real" in r]  # evaluations
    evaluated = {r["step"] for r in rows}
    fids = {r["step"]: r["fid"] for r in rows if r.get("fid") is not None}
    stopped = result.extension_diverged_step
    finals: dict[int, dict] = {}
    out = {}
    for name, budget in budgets.items():
        step = budget["step"]
        entry = {"flops": budget["flops"], "step": step, "gan_flops": gan_flops(s, step)}
        if step not in fids:
            # Diverged before it (or its images were not finite): lost, counted at the worst.
            # Never evaluated there (a checkpoint of a run planned with other budgets): missing.
            lost = (result.status != "ok" or step in evaluated
                    or (stopped is not None and step > stopped))
            out[name] = {**entry, "status": "diverged" if lost else "not evaluated"}
            continue
        if step == s.steps:
            # The step-matched values themselves; the curve's summaries are not final metrics.
            values = {k: v for k, v in metrics.items() if k == "fid_final" or not k.startswith("fid_")}
        else:
            if step not in finals:
                finals[step] = evaluator.final(result.budget_samples[step])[0]
            values = {"fid_final": fids[step], **finals[step]}
        out[name] = {**entry, "status": "ok", **values}
    return out


def spent(result: UnitResult, s: Settings, G, evaluator: Evaluator, pretexts: dict) -> dict:
    """What the unit cost: the GAN's FLOPs and seconds, each pretext's, the evaluations' FLOPs
    and, past the common budget (the baseline), the extension's."""
    used = {n: {"flops": pretext_flops(n, s), "seconds": a.info.get("seconds")}
            for n, a in pretexts.items()}
    compute = {"gan_flops": gan_flops(s, result.steps),
               "gan_seconds": round(result.train_seconds, 2), "pretexts": used,
               "evaluation_flops": evaluation_flops(G, s, evaluator, sum(
                   "d_acc_real" in r for r in [*result.curve, *result.extension]))}
    compute["total_flops"] = compute["gan_flops"] + sum(p["flops"] for p in used.values())
    return compute


def extension_spent(result: UnitResult, s: Settings) -> dict:
    last = max([s.steps, *(r["step"] for r in result.extension)])
    return {"steps": last - s.steps, "flops": gan_flops(s, last) - gan_flops(s, s.steps),
            "seconds": round(result.extension_seconds, 2),
            "diverged_step": result.extension_diverged_step}


def with_flops(curve: list[dict], s: Settings, before: int) -> list[dict]:
    """Curve rows with the cumulative FLOPs at each step, `before` (the pretexts') included."""
    return [{**row, "flops": before + gan_flops(s, row["step"])} for row in curve]
