"""Task variants: one task run with fewer training subjects (`--train-subjects N`) or a longer or
shorter pretext (`--pretext-steps-scale S`). Each variant is a task of its own in results and
reports (`phantom-2d@25`, `phantom-2d@pretext4`), with its own pretexts; its metrics are those of
the full task (feature networks, floors and ceilings from the full training split), so they do
not change along an axis.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from bench.profiles import Settings
from ground.errors import BenchError


@dataclass(frozen=True)
class Variant:
    spec: object  # datasets.TaskSpec: the task as declared
    train_subjects: int | None = None  # None: the whole training split
    pretext_scale: float | None = None  # None: the profile's pretext steps

    @property
    def name(self) -> str:
        name = self.spec.name
        if self.train_subjects is not None:
            name += f"@{self.train_subjects}"
        if self.pretext_scale is not None:
            name += f"@pretext{self.pretext_scale:g}"
        return name

    @property
    def dims(self) -> int:
        return self.spec.dims

    @property
    def source(self) -> str:
        return self.spec.source

    @property
    def is_variant(self) -> bool:
        return self.train_subjects is not None or self.pretext_scale is not None

    def settings(self, s: Settings) -> Settings:
        if self.pretext_scale is None:
            return s
        return dataclasses.replace(s, pretext_steps=max(1, round(self.pretext_scale * s.pretext_steps)))

    def data(self, full):
        """What the GAN and the pretexts train on (the evaluator keeps `full`)."""
        if self.train_subjects is None:
            return full
        from datasets.subsets import train_subset
        return train_subset(full, self.train_subjects)

    def record(self) -> dict:
        """What rows store under `settings`: the report groups variants by `base_task`."""
        return {"base_task": self.spec.name, "train_subjects": self.train_subjects,
                "pretext_steps_scale": self.pretext_scale}


def parse_values(text: str | None, kind: type, what: str) -> list | None:
    """'10,25,100' -> [10, 25, 100] (distinct, ascending, positive); None stays None."""
    if text is None:
        return None
    try:
        values = sorted({kind(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise BenchError(f"--{what} {text!r}: expected comma-separated {kind.__name__} values, "
                         f"e.g. {'10,25,100' if kind is int else '0.25,1,4'}") from None
    if not values or values[0] <= 0:
        raise BenchError(f"--{what} {text!r}: give positive values")
    return values


def plan_variants(specs: list, train_subjects: list[int] | None = None,
                  pretext_scales: list[float] | None = None) -> list[Variant]:
    """Every task with every value of each axis (a task file's `train_subjects` when the run
    gives none); a task without axes is its own single variant."""
    out = []
    for spec in specs:
        counts = train_subjects or list(getattr(spec, "train_subjects", ())) or [None]
        for n in counts:
            for scale in pretext_scales or [None]:
                out.append(Variant(spec, n, scale))
    names = [v.name for v in out]
    if len(set(names)) < len(names):
        raise BenchError(f"task variant {max(names, key=names.count)} planned twice")
    return out
