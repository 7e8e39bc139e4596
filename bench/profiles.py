"""Profiles are data: bench/profiles.toml, read into one frozen settings object per dims, its
numbers grouped by concern (networks, training, pretexts, evaluation, budgets)."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ground.errors import BenchError


PROFILE_FILE = Path(__file__).with_name("profiles.toml")
# Seeds per (task, strategy) unless told otherwise: the fewest with which a strategy better on
# every seed passes the primary family (two exact signed-rank tests, Holm): 2 / 2^7 = 0.016,
# doubled 0.031 < 0.05, where six seeds give 0.0625 (bench/plan.py).
DEFAULT_SEEDS = 7
DEFAULT_RECIPE = "stabilized"


# Settings by concern. Each but the budgets (a profile's own) is a table of profiles.toml's
# [defaults]; a profile's own tables ([NAME.2d], [NAME.3d]) override any setting by name, since
# no two concerns share a name.
@dataclass(frozen=True)
class NetworkSettings:
    """The fixed G and D every strategy trains (and the pretexts' networks share)."""

    image_size: int
    ngf: int
    n_blocks: int
    ndf: int
    stem_channels: int
    z_dim: int
    noise_input: str       # how z reaches G's trunk (bench.nets.NOISE_INPUTS)
    upsample: str          # how the trunk's decoder upsamples (bench.nets.UPSAMPLINGS)


@dataclass(frozen=True)
class TrainingSettings:
    """The noise-to-image GAN's optimisation; a recipe ([recipes] in profiles.toml) sets the
    last five and may set others (stabilized sets r1_gamma)."""

    batch_size: int
    lr_g: float
    lr_d: float
    beta1: float
    beta2: float
    r1_gamma: float
    r1_every: int
    ema_decay: float
    transfer_lr_scale: float
    mbstd_group: int       # minibatch standard deviation group in D's head; 0: none
    augment: str           # DiffAugment operations on everything D sees; "none"
    augment_p: float       # each operation's probability per sample (bench/augment.py)
    r1_reduction: str      # R1 on D's patch outputs "sum"med (plain) or "mean"ed like the loss
    mode_seeking: float    # weight of the mode-seeking term in G's loss (Mao et al. 2019); 0: off


@dataclass(frozen=True)
class PretextSettings:
    """The CycleGAN (and autoencoder) pretexts' own training."""

    pretext_batch: int
    pretext_lr: float
    pretext_beta1: float
    pretext_beta2: float
    cycle_weight: float
    identity_weight: float
    pool_size: int


@dataclass(frozen=True)
class EvaluationSettings:
    """The metrics, their sample sizes and the networks they train, and the training statistics
    (divergence, saturation, collapse); the same for every strategy."""

    fid_samples: int
    domain_steps: int
    domain_features: int
    domain_batch: int
    mode_steps: int
    mode_batch: int
    kid_subsets: int
    kid_subset_size: int
    prdc_k: int
    ndb_bins: int
    msssim_pairs: int
    inception_images: int
    blowup_factor: float
    blowup_patience: int
    saturation_accuracy: float
    saturation_patience: int
    collapse_patience: int


@dataclass(frozen=True)
class BudgetSettings:
    """How long things train and how often they are evaluated."""

    steps: int
    pretext_steps: int
    eval_every: int


GROUPS = {"networks": NetworkSettings, "training": TrainingSettings, "pretexts": PretextSettings,
          "evaluation": EvaluationSettings, "budgets": BudgetSettings}


@dataclass(frozen=True)
class Settings(BudgetSettings, EvaluationSettings, PretextSettings, TrainingSettings,
               NetworkSettings):
    """Every number the harness uses for one (profile, dims); the same for every strategy. Its
    fields are those of the groups, read flat (`s.lr_g`) or by concern (`s.group("training")`)."""

    profile: str
    dims: int
    recipe: str            # the training recipe, whose values `TrainingSettings` holds
    splits: tuple[tuple[str, int], ...] | None = None

    def group(self, name: str) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(GROUPS[name])}

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["splits"] = dict(self.splits) if self.splits else None
        return d


def _group_of() -> dict[str, str]:
    return {f.name: name for name, group in GROUPS.items() for f in dataclasses.fields(group)}


def _defaults(table: dict) -> dict:
    """[defaults] flattened, each value under the table of its concern."""
    values, where = {}, _group_of()
    for name, group in table["defaults"].items():
        if name not in GROUPS or not isinstance(group, dict):
            raise BenchError(f"bench/profiles.toml: [defaults] holds the tables "
                             f"{', '.join(GROUPS)}, not {name!r}: move it into one of them")
        for key, value in group.items():
            if key not in where:
                raise BenchError(f"bench/profiles.toml: {key} in [defaults.{name}] is not a "
                                 "setting; remove it or declare it in bench/profiles.py")
            if where[key] != name:
                raise BenchError(f"bench/profiles.toml: {key} in [defaults.{name}] belongs in "
                                 f"[defaults.{where[key]}]; move it there")
            values[key] = value
    return values


@lru_cache(maxsize=1)
def _table() -> dict:
    with PROFILE_FILE.open("rb") as f:
        return tomllib.load(f)


def list_profiles() -> dict[str, str]:
    return {k: v.get("description", "") for k, v in _table().items()
            if k not in ("defaults", "recipes")}


def list_recipes() -> dict[str, str]:
    return {k: v.get("description", "") for k, v in _table()["recipes"].items()}


def get_settings(profile: str, dims: int, recipe: str = DEFAULT_RECIPE) -> Settings:
    """defaults, then the recipe's values, then the profile's, then the profile's own values for
    that recipe (a [PROFILE.Nd.RECIPE] table): later ones win."""
    table = _table()
    if profile not in list_profiles():
        raise BenchError(f"unknown profile '{profile}'; choose one of: {', '.join(list_profiles())}")
    if recipe not in list_recipes():
        raise BenchError(f"unknown recipe '{recipe}'; choose one of: {', '.join(list_recipes())}")
    recipes = table["recipes"]
    values = _defaults(table)
    values.update({k: v for k, v in recipes[recipe].items() if k != "description"})
    own = table[profile][f"{dims}d"]
    values.update({k: v for k, v in own.items() if k not in recipes})
    values.update(own.get(recipe, {}))
    unknown = sorted(set(values) - set(_group_of()) - {"splits"})
    if unknown:
        raise BenchError(f"bench/profiles.toml: {unknown[0]} (under [{profile}.{dims}d] or "
                         f"[recipes.{recipe}]) is not a setting; remove it or declare it in "
                         "bench/profiles.py")
    if "splits" in values:
        values["splits"] = tuple(sorted(values["splits"].items()))
    from bench.nets import NOISE_INPUTS, UPSAMPLINGS  # the networks' own lists of choices
    for key, choices in (("noise_input", NOISE_INPUTS), ("upsample", UPSAMPLINGS)):
        if values[key] not in choices:
            raise BenchError(f"{key} = {values[key]!r} in bench/profiles.toml is not known; "
                             f"set it to one of {', '.join(choices)}")
    return Settings(profile=profile, dims=dims, recipe=recipe, **values)
