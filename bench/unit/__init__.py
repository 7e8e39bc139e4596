"""One unit's whole lifecycle, the same for `bench run`, `bench tune`, `bench stability` and the
launchers' workers, so that their defaults cannot drift apart:

- build.py: the task (data, evaluator, pretexts) and the unit (the fixed G and D, started where
  the strategy puts them), and its training;
- outcome.py: what the trained unit's curve and samples say, and what it cost;
- record.py: its row in the run store;
- lifecycle.py: `open_task`, what a task's units share in a run, and `run_unit`, all of the
  above in order for one (task, strategy, seed), a failed record when it cannot finish.

`cfg` in these modules is what every command is told (`bench.config.UnitsConfig`): a
`bench.run.RunConfig` for a row, which also records its seeds and pretext design.
"""

from bench.unit.build import (HARNESS, SETTINGS, TUNING_SEEDS, PretextFailed, Task, Unit,
                              apply_tuned, build_unit, check_inputs, prepare_task,
                              split_identity, suggest_harness, task_data, train)
from bench.unit.lifecycle import OpenTask, open_task, reference_record, run_unit
from bench.unit.outcome import (baseline_budgets, final_fid, metrics_at_budgets, unit_compute,
                                unit_metrics)
from bench.unit.record import failed_row, pretext_seed, unit_row

__all__ = ["HARNESS", "SETTINGS", "TUNING_SEEDS", "PretextFailed", "Task", "Unit", "apply_tuned",
           "build_unit", "check_inputs", "prepare_task", "split_identity", "suggest_harness",
           "task_data", "train", "OpenTask", "open_task", "reference_record", "run_unit",
           "metrics_at_budgets", "baseline_budgets", "final_fid", "unit_compute", "unit_metrics",
           "failed_row", "pretext_seed", "unit_row"]
