"""Profiles are data: bench/profiles.toml, read into one frozen settings object per dims."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from bench.errors import BenchError

PROFILE_FILE = Path(__file__).with_name("profiles.toml")
# Seeds per (task, strategy) unless told otherwise: the fewest with which a strategy better on
# every seed passes the primary family (two exact signed-rank tests, Holm): 2 / 2^7 = 0.016,
# doubled 0.031 < 0.05, where six seeds give 0.0625 (bench/plan.py).
DEFAULT_SEEDS = 7
DEFAULT_RECIPE = "stabilized"


@dataclass(frozen=True)
class Settings:
    """Every number the harness uses for one (profile, dims); the same for every strategy."""

    profile: str
    dims: int
    image_size: int
    ngf: int
    n_blocks: int
    ndf: int
    stem_channels: int
    noise_input: str       # how z reaches G's trunk (bench.nets.NOISE_INPUTS)
    upsample: str          # how the trunk's decoder upsamples (bench.nets.UPSAMPLINGS)
    batch_size: int
    steps: int
    eval_every: int
    pretext_steps: int
    pretext_batch: int
    fid_samples: int
    z_dim: int
    lr_g: float
    lr_d: float
    beta1: float
    beta2: float
    r1_gamma: float
    r1_every: int
    ema_decay: float
    transfer_lr_scale: float
    pretext_lr: float
    pretext_beta1: float
    pretext_beta2: float
    cycle_weight: float
    identity_weight: float
    pool_size: int
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
    # The training recipe ([recipes] in profiles.toml): what `plain` and `stabilized` change.
    recipe: str
    mbstd_group: int       # minibatch standard deviation group in D's head; 0: none
    augment: str           # DiffAugment operations on everything D sees; "none"
    augment_p: float       # each operation's probability per sample (bench/augment.py)
    r1_reduction: str      # R1 on D's patch outputs "sum"med (plain) or "mean"ed like the loss
    mode_seeking: float    # weight of the mode-seeking term in G's loss (Mao et al. 2019); 0: off
    splits: tuple[tuple[str, int], ...] | None = None

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["splits"] = dict(self.splits) if self.splits else None
        return d


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
    values = dict(table["defaults"])
    values.update({k: v for k, v in recipes[recipe].items() if k != "description"})
    own = table[profile][f"{dims}d"]
    values.update({k: v for k, v in own.items() if k not in recipes})
    values.update(own.get(recipe, {}))
    if "splits" in values:
        values["splits"] = tuple(sorted(values["splits"].items()))
    from bench.nets import NOISE_INPUTS, UPSAMPLINGS  # the networks' own lists of choices
    for key, choices in (("noise_input", NOISE_INPUTS), ("upsample", UPSAMPLINGS)):
        if values[key] not in choices:
            raise BenchError(f"{key} = {values[key]!r} in bench/profiles.toml is not known; "
                             f"set it to one of {', '.join(choices)}")
    return Settings(profile=profile, dims=dims, recipe=recipe, **values)
