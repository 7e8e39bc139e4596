"""The run store's typed records: a unit's row, the evaluator's reference and the settings it
carries, each a dataclass, read and written as JSON here and nowhere else; and the points of a
unit's curve, written as its CSV's rows.

Schema versions: 1 is every row written before rows carried one (no `schema` key); 2 added the
key and `failure` (null unless the unit failed) to every row, so a version-1 row reads
unchanged; 3 added the reference's `leading` (the leading metric's registered name; rows before
it were scored with the domain FID, `fid`) and `encoders` (the further domain encoders some
metrics have of their own). A row from a newer schema is refused rather than half understood. Fields were added
to rows over time before versions existed: a field a row predates is absent, read as its default
(None, or an empty map) and written back absent unless it was set since, so an old study's
tables list what it stored and nothing it did not. A failed unit's row leaves out what only a
trained unit has (`omit`).
"""

from __future__ import annotations

import functools
import typing
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from bench.metrics.registry import LEADING, lead
from ground.errors import BenchError


SCHEMA = 3
STATUSES = ("ok", "diverged", "failed")


@dataclass
class Record:
    """JSON in and out for a dataclass; fields annotated with a Record type nest."""

    REQUIRED: ClassVar[tuple[str, ...]] = ()
    # Fields left out of the JSON, with the value each had then: one still holding it stays out.
    _absent: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False,
                                    metadata={"stored": False})

    @classmethod
    def from_json(cls, data: Any, where: str):
        if not isinstance(data, dict):
            raise BenchError(f"{where}: expected a JSON object")
        missing = [name for name in cls.REQUIRED if data.get(name) is None]
        if missing:
            raise BenchError(f"{where}: missing {', '.join(missing)}")
        names = [f.name for f in fields(cls) if f.metadata.get("stored", True)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise BenchError(f"{where}: unknown field {unknown[0]!r} in {cls.__name__} (written "
                             "by another version of bench?); remove it or upgrade gan-init-bench")
        hints = _hints(cls)
        values = {name: _nested(hints[name], data[name], f"{where} {name}")
                  for name in names if name in data}
        record = cls(**values)
        record.omit(*(n for n in names if n not in data))
        return record

    def omit(self, *names: str) -> None:
        """Leave these fields out of the JSON while they keep their present values."""
        self._absent.update({name: getattr(self, name) for name in names})

    def to_json(self) -> dict[str, Any]:
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if not f.metadata.get("stored", True) or (
                    f.name in self._absent and value == self._absent[f.name]):
                continue
            out[f.name] = value.to_json() if isinstance(value, Record) else value
        return out


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _nested(hint: Any, value: Any, where: str) -> Any:
    kinds = [t for t in typing.get_args(hint) or (hint,)
             if isinstance(t, type) and issubclass(t, Record)]
    return value if value is None or not kinds else kinds[0].from_json(value, where)


@dataclass
class EvaluatorReference(Record):
    """What a perfect generator (the other held-out split) and the untrained one score, per task:
    the leading metric's floor and ceiling, every final metric's (`floors`, `ceilings`), the
    feature networks that computed them, and the sample sizes and parameters they used."""

    # The leading metric's floor and ceiling, named by bench.metrics.registry.lead: another
    # leading metric would be another schema.
    fid_floor: float | None = None
    fid_ceiling: float | None = None
    # The leading metric's registered name; feature_net below names its encoder and version.
    leading: str | None = None
    # The further domain encoders, by their views' name: feature net / weights hash.
    encoders: dict[str, str] | None = None
    floors: dict[str, float | None] = field(default_factory=dict)
    ceilings: dict[str, float | None] = field(default_factory=dict)
    fid_bias: dict[str, dict] | None = None
    fid_samples: int | None = None
    feature_net: str | None = None
    feature_numerics: str | None = None
    domain_key: str | None = None
    domain_seconds: float | None = None
    domain_weights: str | None = None
    inception_net: str | None = None
    inception_missing: str | None = None
    inception_images: int | None = None
    inception_floor: float | None = None
    msssim_real: float | None = None
    kid_subsets: int | None = None
    kid_subset_size: int | None = None
    prdc_k: int | None = None
    ndb_bins: int | None = None
    msssim_pairs: int | None = None
    modes: dict[str, Any] | None = None


@dataclass
class UnitSettings(Record):
    """How a unit ran: profile, recipe, device and precision, its data and pretext design, and
    the harness settings it trained with (`harness`, one entry per setting)."""

    profile: str | None = None
    recipe: str | None = None  # absent from rows written before recipes: they trained `plain`
    device: str | None = None
    precision: str | None = None
    precision_reason: str | None = None
    data_fingerprint: str | None = None
    data_seed: int | None = None
    data_source: str | None = None
    data_skipped: int | None = None
    train_subjects_used: int | None = None
    pretext_seed: int | None = None
    pretext_shared: bool | None = None
    seeds: int | None = None
    image_size: int | None = None
    dims: int | None = None
    batch_size: int | None = None
    steps: int | None = None
    harness: dict[str, Any] | None = None
    # The task variant (bench.variants): the report groups variants by their base task.
    base_task: str | None = None
    train_subjects: int | None = None
    pretext_steps_scale: float | None = None


@dataclass
class Tuned(Record):
    """The tuning study and trial whose hyper-parameters a unit trained with (`--tuned`)."""

    storage: str | None = None
    study: str | None = None
    trial: int | None = None
    value: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    effort: dict[str, int] | None = None
    split: dict[str, Any] | None = None  # the tuning split's identity (bench.unit.split_identity)
    unit_seed: int | None = None
    pretext_seed: int | None = None
    recipe: str | None = None
    precision: str | None = None


@dataclass
class Draw(Record):
    """A stability study's draw: the hyper-parameters seed `index` trained with."""

    index: int | None = None
    seed: int | None = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class UnitRecord(Record):
    """One finished (or failed) unit: what ran, where, on which data, and what came of it.
    Name -> value maps (metrics, budgets, transfer, movement, versions, ...) stay dicts: their
    keys are metric, part and package names, data rather than schema."""

    REQUIRED: ClassVar[tuple[str, ...]] = ("unit", "task", "strategy", "seed", "status")

    unit: str | None = None
    task: str | None = None
    strategy: str | None = None
    seed: int | None = None
    status: str | None = None
    schema: int | None = SCHEMA
    failure: str | None = None  # "pretext" or "error", for failed units
    reason: str | None = None
    diverged_step: int | None = None
    steps: int | None = None
    resumed_step: int | None = None
    train_seconds: float | None = None
    seconds: float | None = None
    finished_at: str | None = None
    metrics: dict[str, float | None] = field(default_factory=dict)
    metrics_missing: dict[str, str] = field(default_factory=dict)
    budgets: dict[str, dict] | None = None
    events: dict[str, Any] | None = None
    mode_counts: dict[str, Any] | None = None
    compute: dict[str, Any] | None = None
    transfer: dict[str, int] | None = None
    movement: dict[str, float] | None = None
    pretexts: dict[str, dict] = field(default_factory=dict)
    strategy_origin: str | None = None
    tuned: Tuned | None = None
    draw: Draw | None = None
    settings: UnitSettings | None = None
    reference: EvaluatorReference | None = None
    versions: dict[str, str | None] | None = None
    hardware: dict[str, Any] | None = None
    files: dict[str, str | None] | None = None
    # Where a reader found the row (not stored: the report records which run directory).
    run_dir: str | None = field(default=None, metadata={"stored": False})

    @classmethod
    def from_json(cls, data: Any, where: str) -> UnitRecord:
        if isinstance(data, dict):
            version = data.get("schema", 1)
            if not isinstance(version, int) or isinstance(version, bool) or version < 1:
                raise BenchError(f"{where}: record schema {version!r} is not a version number; "
                                 "fix or delete that line")
            if version > SCHEMA:
                raise BenchError(f"{where}: written with record schema {version!r}, newer than "
                                 f"this bench reads ({SCHEMA}); upgrade gan-init-bench")
        record = super().from_json(data, where)
        if "schema" in record._absent:
            record.schema = 1
            record.omit("schema")
        if record.status not in STATUSES:
            raise BenchError(f"{where}: unknown status {record.status!r} "
                             f"(expected one of {', '.join(STATUSES)})")
        return record

    @property
    def finished(self) -> bool:
        """A final status: failed units (exceptions) are retried on a rerun."""
        return self.status in ("ok", "diverged")


@dataclass
class Evaluation:
    """What one evaluation during training measured (Evaluator.track): the leading metric, or
    why it has none, the registry's curve metrics, and D's accuracy on real and generated
    images."""

    value: float | None
    missing: str | None = None
    metrics: dict[str, float | None] = field(default_factory=dict)
    d_acc_real: float | None = None
    d_acc_fake: float | None = None


# The columns of a curve row that are not a curve metric's.
_POINT_COLUMNS = ("step", "seconds", "loss_g", "loss_d", "flops", LEADING, lead("missing"),
                  "d_acc_real", "d_acc_fake")


@dataclass
class CurvePoint:
    """One point of a unit's curve: an evaluation with the losses of the step it follows, or,
    without an evaluation, the closing point of a divergence, which records the losses alone."""

    step: int
    seconds: float
    loss_g: float | None = None
    loss_d: float | None = None
    evaluation: Evaluation | None = None

    def get(self, column: str) -> float | None:
        """A column of the point's row: the step, seconds and losses, or the leading metric, a
        curve metric or D's accuracy (None without an evaluation)."""
        if column in ("step", "seconds", "loss_g", "loss_d"):
            return getattr(self, column)
        e = self.evaluation
        if e is None:
            return None
        if column == LEADING:
            return e.value
        if column in ("d_acc_real", "d_acc_fake"):
            return getattr(e, column)
        return e.metrics.get(column)

    def row(self) -> dict[str, Any]:
        """The point as a row of the curve's CSV (and of a checkpoint)."""
        out = {"step": self.step, "seconds": self.seconds, "loss_g": self.loss_g,
               "loss_d": self.loss_d, LEADING: None}
        e = self.evaluation
        if e is not None:
            out.update({LEADING: e.value, **e.metrics})
            if e.missing is not None:
                out[lead("missing")] = e.missing
            out.update(d_acc_real=e.d_acc_real, d_acc_fake=e.d_acc_fake)
        return out

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> CurvePoint:
        """The inverse of `row`, for the rows a checkpoint keeps (older checkpoints' too: an
        evaluation is a row with D's accuracy, a value of the leading metric or the reason it
        has none)."""
        evaluation = None
        if "d_acc_real" in row or row.get(LEADING) is not None or lead("missing") in row:
            evaluation = Evaluation(
                row.get(LEADING), row.get(lead("missing")),
                {k: v for k, v in row.items() if k not in _POINT_COLUMNS},
                row.get("d_acc_real"), row.get("d_acc_fake"))
        return cls(row["step"], row.get("seconds"), row.get("loss_g"), row.get("loss_d"),
                   evaluation)
