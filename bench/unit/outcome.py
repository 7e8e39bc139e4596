"""What a trained unit's curve and samples say: the leading metric's summaries and the
final-sample metrics, and the compute it cost; for the baseline, the same at every other
strategy's compute budget."""

from __future__ import annotations

import strategies
from bench.compute import evaluation_flops, gan_flops, steps_for
from bench.metrics.evaluation import Evaluator
from bench.metrics.events import convergence, evaluations
from bench.metrics.registry import LEADING, REGISTRY, lead
from bench.pretext import pretext_flops
from bench.profiles import Settings
from bench.records import CurvePoint
from bench.train import UnitResult


def _why_missing(points: list[CurvePoint]) -> str:
    """Why the last of these evaluations without the leading metric has none, as the evaluator
    recorded it (rows of older checkpoints and a divergence's closing point have no reason)."""
    reasons = [p.evaluation.missing for p in evaluations(points)
               if p.evaluation.value is None and p.evaluation.missing]
    return reasons[-1] if reasons else "reason not recorded"


def final_fid(result: UnitResult) -> tuple[float | None, str | None]:
    """The leading metric at the last step of a finished unit, or None and why there is none:
    the one final value that `bench run` records and `bench tune` optimizes."""
    last = [p for p in result.curve if p.step == result.steps and p.get(LEADING) is not None]
    if result.status == "ok" and last:
        return last[-1].get(LEADING), None
    at_end = [p for p in result.curve if p.step == result.steps]
    return None, result.reason or f"the final evaluation: {_why_missing(at_end)}"


def unit_metrics(result: UnitResult, evaluator: Evaluator) -> tuple[dict, dict]:
    """The leading metric's curve summaries, then the final-sample metrics (only for a finished
    unit)."""
    fids = result.fids()
    metrics = {lead("init"): None, lead("final"): None, lead("best"): None,
               lead("best_step"): None, lead("gap"): None, **convergence(result.curve)}
    missing: dict[str, str] = {}
    first = result.curve[0] if result.curve else None
    if first is not None and first.step == 0 and first.get(LEADING) is not None:
        metrics[lead("init")] = first.get(LEADING)
    else:
        missing[lead("init")] = (_why_missing([first]) if first is not None and first.step == 0
                                 else "the initialized generator was not evaluated")
    if fids:
        step, best = min(fids, key=lambda sf: sf[1])
        metrics[lead("best")], metrics[lead("best_step")] = best, step
    else:
        why = f"no evaluation gave a {REGISTRY[LEADING].label}: {_why_missing(result.curve)}"
        for name in ("best", "best_step", "auc"):
            missing[lead(name)] = why
    metrics[lead("final")], reason = final_fid(result)
    if reason is None:
        metrics[lead("gap")] = metrics[lead("final")] - metrics[lead("best")]
        final, final_missing = evaluator.final(result.samples)
        metrics.update(final)
        missing.update(final_missing)
    else:
        # An area over a curve cut short is not comparable with full-length ones.
        metrics[lead("auc")] = None
        for name in ("final", "gap", "auc"):
            missing[lead(name)] = reason
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
    points = evaluations([*result.curve, *result.extension])
    evaluated = {p.step for p in points}
    fids = {p.step: p.get(LEADING) for p in points if p.get(LEADING) is not None}
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
            values = {k: v for k, v in metrics.items()
                      if k == lead("final") or not k.startswith(f"{LEADING}_")}
        else:
            if step not in finals:
                finals[step] = evaluator.final(result.budget_samples[step])[0]
            values = {lead("final"): fids[step], **finals[step]}
        out[name] = {**entry, "status": "ok", **values}
    return out


def spent(result: UnitResult, s: Settings, G, evaluator: Evaluator, pretexts: dict) -> dict:
    """What the unit cost: the GAN's FLOPs and seconds, each pretext's, the evaluations' FLOPs
    and, past the common budget (the baseline), the extension's."""
    used = {n: {"flops": pretext_flops(n, s), "seconds": a.info.get("seconds")}
            for n, a in pretexts.items()}
    compute = {"gan_flops": gan_flops(s, result.steps),
               "gan_seconds": round(result.train_seconds, 2), "pretexts": used,
               "evaluation_flops": evaluation_flops(
                   G, s, evaluator, len(evaluations([*result.curve, *result.extension])))}
    compute["total_flops"] = compute["gan_flops"] + sum(p["flops"] for p in used.values())
    return compute


def extension_spent(result: UnitResult, s: Settings) -> dict:
    last = max([s.steps, *(p.step for p in result.extension)])
    return {"steps": last - s.steps, "flops": gan_flops(s, last) - gan_flops(s, s.steps),
            "seconds": round(result.extension_seconds, 2),
            "diverged_step": result.extension_diverged_step}


def with_flops(curve: list[CurvePoint], s: Settings, before: int) -> list[dict]:
    """The curve's CSV rows with the cumulative FLOPs at each step, `before` (the pretexts')
    included."""
    return [{**p.row(), "flops": before + gan_flops(s, p.step)} for p in curve]
