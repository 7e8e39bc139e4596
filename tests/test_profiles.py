"""Profiles are data, their settings grouped by concern: every setting in exactly one group,
[defaults] in profiles.toml laid out by the same groups, a misplaced value a one-line error."""

from __future__ import annotations

import dataclasses

import pytest

from bench import profiles
from bench.profiles import GROUPS, Settings, get_settings
from ground.errors import BenchError


def test_every_harness_setting_belongs_to_exactly_one_concern():
    grouped = [f.name for group in GROUPS.values() for f in dataclasses.fields(group)]
    assert len(grouped) == len(set(grouped))
    own = {"profile", "dims", "recipe", "splits"}  # what a run is, not a number it trains with
    assert set(grouped) | own == {f.name for f in dataclasses.fields(Settings)}
    assert not set(grouped) & own


def test_a_group_reads_the_same_values_as_the_flat_settings():
    s = get_settings("quick", 3, "stabilized")
    assert s.group("budgets") == {"steps": s.steps, "pretext_steps": s.pretext_steps,
                                  "eval_every": s.eval_every}
    merged = {k: v for name in GROUPS for k, v in s.group(name).items()}
    assert merged == {k: v for k, v in s.as_dict().items() if k in merged}
    assert s.group("training")["mode_seeking"] == s.mode_seeking  # a recipe's value


def test_the_defaults_are_laid_out_by_concern():
    defaults = profiles._table()["defaults"]
    assert set(defaults) <= set(GROUPS)
    for name, table in defaults.items():
        assert set(table) <= {f.name for f in dataclasses.fields(GROUPS[name])}, name


@pytest.mark.parametrize("edit, message", [
    (lambda d: {**d, "networks": {**d["networks"], "lr_g": 1.0}},
     "lr_g in [defaults.networks] belongs in [defaults.training]; move it there"),
    (lambda d: {**d, "evaluation": {**d["evaluation"], "fid_samples_extra": 3}},
     "fid_samples_extra in [defaults.evaluation] is not a setting; remove it or declare it"),
    (lambda d: {**d, "z_dim": 64}, "[defaults] holds the tables networks, training"),
])
def test_a_misplaced_default_is_a_one_line_error(monkeypatch, edit, message):
    table = {**profiles._table(), "defaults": edit(profiles._table()["defaults"])}
    monkeypatch.setattr(profiles, "_table", lambda: table)
    with pytest.raises(BenchError) as err:
        get_settings("quick", 2)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_an_unknown_setting_under_a_profile_is_a_one_line_error(monkeypatch):
    table = profiles._table()
    quick = {**table["quick"], "2d": {**table["quick"]["2d"], "stepz": 10}}
    monkeypatch.setattr(profiles, "_table", lambda: {**table, "quick": quick})
    with pytest.raises(BenchError, match=r"stepz \(under \[quick.2d\] or \[recipes.stabilized\]\) "
                       "is not a setting"):
        get_settings("quick", 2)
    get_settings("quick", 3)  # the 3D table is untouched
