"""The metric validation suite: its degradations, its pass rule both ways, the memorization flag,
`bench validate-metrics` at smoke size, and the 3D noise-against-anatomy cases at quick size."""

import numpy as np
import pandas as pd
import pytest
import torch

from bench.cli import main
from bench.device import seeded_generator
from bench.metrics import degrade
from bench.metrics.memorization import copies, memorization, nearest_distances
from bench.metrics.registry import REGISTRY, Reference, Sample
from bench.metrics.validate import CASES, SEPARATION, judge

pytestmark = pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning",
                                        "ignore:invalid value encountered:RuntimeWarning")


def _raw(metric: str, check: str, means: list[float], sd: float, draws: int = 4) -> list[tuple]:
    rng = np.random.default_rng(0)
    rows = []
    for level, mean in enumerate(means):
        for draw in range(draws):
            rows.append((metric, check, level, float(level), draw, mean + sd * rng.standard_normal()))
    return rows


def _judged(rows: list[tuple], metric: str = "fid") -> pd.DataFrame:
    raw = pd.DataFrame(rows, columns=["metric", "check", "level", "strength", "draw", "value"])
    return judge(raw, [REGISTRY[metric]]).set_index("check")


def test_pass_rule_both_ways():
    rows = (_raw("fid", "blur", [1, 2, 3, 4, 5], 0.01)       # ordered, far: pass
            + _raw("fid", "noise", [1, 2, 1.5, 4, 5], 0.01)  # not monotone: fail
            + _raw("fid", "shift", [1, 1.1, 1.2, 1.3, 1.4], 0.5)  # ordered but within the noise
            + _raw("fid", "contrast", [5, 4, 3, 2, 1], 0.01))  # better as it degrades: fail
    real = [r for r in _raw("fid", "real", [1.0], 0.1)]
    rows += real + [(m, "untrained", 1, 1.0, d, 1.0 + 10 * 0.1 * SEPARATION) for m, *_, d, _ in real]
    rows += [(m, "checkerboard", 1, 1.0, d, 1.05) for m, *_, d, _ in real]
    table = _judged(rows)
    assert table.loc["blur", "passed"] and table.loc["blur", "rho"] == pytest.approx(1)
    assert not table.loc["noise", "passed"] and table.loc["noise", "rho"] < 1
    assert not table.loc["shift", "passed"] and table.loc["shift", "separation"] < SEPARATION
    assert not table.loc["contrast", "passed"] and table.loc["contrast", "separation"] < 0
    assert table.loc["untrained", "passed"] and not table.loc["checkerboard", "passed"]
    assert table.loc["blur", "required"] and table.loc["untrained", "required"]


def test_pass_rule_is_paired_within_draws():
    """Split noise moves every level of a draw alike and is paired out; a degradation whose
    paired differences scatter as widely as their mean fails however its means line up."""
    split = [0.0, 8.0, -6.0, 3.0, -5.0]  # which subjects form the halves: the same in a draw
    rows = []
    for draw, offset in enumerate(split):
        for level in range(5):
            rows.append(("fid", "dropped_modes", level, float(level), draw,
                         10 + offset + 2 * level + 0.1 * ((draw + level) % 3)))
            # the same means, but each draw's increment a different multiple of the mean
            rows.append(("fid", "shift", level, float(level), draw,
                         10 + offset + 2 * level * (0.2 + 0.9 * draw)))
    table = _judged(rows)
    assert table.loc["dropped_modes", "passed"] and table.loc["dropped_modes", "separation"] > 20
    unpaired_sd = np.std([10 + o for o in split], ddof=1)
    assert 8 / unpaired_sd < SEPARATION  # the old yardstick would have failed it
    assert table.loc["shift", "rho"] == pytest.approx(1)
    assert not table.loc["shift", "passed"] and table.loc["shift", "separation"] < SEPARATION


def test_direction_follows_the_metric():
    """Coverage falls as images degrade: a falling curve passes, a rising one fails."""
    rows = (_raw("coverage", "duplicated", [0.9, 0.7, 0.5, 0.3, 0.1], 0.01)
            + _raw("coverage", "dropped_modes", [0.1, 0.3, 0.5, 0.7, 0.9], 0.01))
    table = _judged(rows, "coverage")
    assert table.loc["duplicated", "passed"] and not table.loc["dropped_modes", "passed"]


def test_fid_on_gaussian_clusters_orders_a_graded_shift():
    """Known answer: Gaussian features, graded shifts of their mean; domain = identity."""
    gen = torch.Generator().manual_seed(0)
    s = type("S", (), {"prdc_k": 5, "kid_subsets": 10, "kid_subset_size": 100, "msssim_pairs": 5,
                       "ndb_bins": 4})()
    ref_x = torch.randn(300, 8, generator=gen)
    ref = Reference(ref_x, torch.randn(300, 8, generator=gen), lambda x: x.double(), s)
    fid = REGISTRY["fid"]
    values = [fid.value(ref, Sample(torch.randn(300, 8, generator=gen) + shift))
              for shift in (0.0, 0.25, 0.5, 1.0, 2.0)]
    assert values == sorted(values) and values[-1] > 20 * values[0]


def test_degradations_keep_shape_range_and_are_seeded(smoke_2d):
    _, s, data = smoke_2d
    pool = degrade.Pool(data.val.t1, degrade.mode_coordinate(data.val.t1, data.val.subject),
                        data.train.t1)
    n = len(pool.images) // 2
    for kind in degrade.degradations(s.image_size):
        strongest = kind.levels[-1]
        a = kind.apply(pool, n, strongest, seeded_generator(1))
        b = kind.apply(pool, n, strongest, seeded_generator(1))
        assert a.shape == (n, *pool.images.shape[1:]) and torch.equal(a, b), kind.name
        assert a.min() >= -1 and a.max() <= 1, kind.name
        assert not torch.equal(a, degrade.undegraded(pool, n, seeded_generator(1))), kind.name
    for fake in (degrade.voxel_shuffle, degrade.checkerboard):
        x = fake(pool, n, seeded_generator(2))
        real = degrade.undegraded(pool, n, seeded_generator(2))
        outside = ~degrade.brain_mask(real)  # the background stays; only the brain changes
        assert torch.equal(x[outside], real[outside]) and not torch.equal(x, real)


def test_dropped_modes_never_draw_the_top_modes():
    images = torch.arange(40.0).div(40).view(40, 1, 1, 1).expand(40, 1, 8, 8).contiguous()
    modes = torch.arange(40.0).flip(0)  # image i has mode 39 - i: the top modes are images 0..
    pool = degrade.Pool(images, modes, images)
    x = degrade.drop_modes(pool, 20, 0.5, seeded_generator(0))
    drawn = sorted(int(v * 40) for v in x[:, 0, 0, 0])
    assert len(set(drawn)) == 20 and min(drawn) >= 20


def test_2d_modes_are_levels_within_each_subject():
    subjects = torch.tensor([3, 3, 3, 7, 7, 7])
    level = degrade.mode_coordinate(torch.zeros(6, 1, 4, 4), subjects)
    assert level.tolist() == [0, 0.5, 1, 0, 0.5, 1]


def test_memorization_flags_copies_and_not_new_images():
    gen = torch.Generator().manual_seed(0)
    train, held, new = (torch.randn(n, 16, generator=gen) for n in (500, 200, 200))
    held_nn = nearest_distances(held, train)
    copied = train[:200] + 1e-3 * torch.randn(200, 16, generator=gen)
    assert copies(nearest_distances(copied, train), held_nn)
    assert not copies(nearest_distances(new, train), held_nn)
    assert memorization(nearest_distances(copied, train), held_nn)["share"] == 1.0
    half = torch.cat([copied[:100], new[:100]])
    assert memorization(nearest_distances(half, train), held_nn)["ratio"] < 0.5


def test_cli_smoke_writes_table_values_and_figure(run_env, tmp_path, capsys):
    out = tmp_path / "validate"
    code = main(["validate-metrics", "--profile", "smoke", "--no-inception", "--no-progress",
                 "--out", str(out), "--draws", "3"])
    printed = capsys.readouterr()
    assert code in (0, 1)  # smoke sets are too small to pass; the table must still be complete
    for task in ("phantom-2d", "phantom-3d"):
        table = pd.read_csv(out / task / "validation.csv")
        assert set(table["metric"]) >= {"fid", "kid_mean", "coverage", "memorized"}
        checks = set(table["check"])
        assert checks >= {k.name for k in degrade.degradations(16)} | set(CASES)
        required = table[table["required"]]
        assert set(required.loc[required["metric"] == "msssim", "check"]) == {"duplicated"}
        values = pd.read_csv(out / task / "values.csv")
        assert values["draw"].nunique() == 3 and (out / task / "validation.png").stat().st_size > 0
        assert f"## {task}" in printed.out
    if code == 1:
        assert "failed validation" in printed.err


def test_cli_refuses_too_few_draws(run_env, tmp_path, capsys):
    assert main(["validate-metrics", "--profile", "smoke", "--draws", "2", "--out",
                 str(tmp_path)]) == 2
    assert "--draws 2" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_3d_domain_fid_tells_noise_from_anatomy_at_quick_size(cache_dir):
    """The leading 3D metric at the quick profile's encoder: every fake case far from real."""
    import datasets
    from bench.metrics.domain import get_domain_features
    from bench.metrics.validate import run_suite
    from bench.profiles import get_settings
    s = get_settings("quick", 3)
    data = datasets.build_task_data(datasets.get_task("phantom-3d"), s.image_size, cache_dir, 0,
                                    progress=False)
    domain = get_domain_features(data, s, cache_dir, "cpu", "fp32", progress=False)
    result = run_suite(data, s, domain, None, draws=3, progress=False, names=["fid"])
    fid = result.table[(result.table["metric"] == "fid")].set_index("check")
    for case in CASES:
        assert fid.loc[case, "passed"], (case, fid.loc[case, "separation"])


def test_a_registered_metric_is_validated(smoke_2d, cache_dir):
    """One registry entry, e.g. from a plugin, is all the suite needs."""
    from bench.metrics import registry
    from bench.metrics.domain import get_domain_features
    from bench.metrics.validate import run_suite
    _, s, data = smoke_2d
    registry.register(registry.Metric(
        "brain_mean", "mean intensity", lambda ref, x: float(x.images.mean()),
        worse=registry.LOWER, must_order=("contrast",)))
    domain = get_domain_features(data, s, cache_dir, "cpu", "fp32", progress=False)
    result = run_suite(data, s, domain, None, draws=3, progress=False, names=["brain_mean"])
    mine = result.table[result.table["metric"] == "brain_mean"].set_index("check")
    assert mine.loc["contrast", "required"] and mine.loc["contrast", "passed"]
    assert not mine.loc["blur", "required"]


def test_a_chosen_subset_of_checks_runs_with_floor_and_ceiling(smoke_2d, cache_dir):
    from bench.metrics.domain import get_domain_features
    from bench.metrics.validate import run_suite
    _, s, data = smoke_2d
    domain = get_domain_features(data, s, cache_dir, "cpu", "fp32", progress=False)
    result = run_suite(data, s, domain, None, draws=3, progress=False, names=["fid"],
                       checks=["dark_box"])
    assert set(result.raw["check"]) == {"real", "dark_box", "untrained"}
    assert set(result.positions["check"]) == {"dark_box", "untrained"}
    assert "duplicated (strongest)" not in set(result.states["set"])


def test_cli_refuses_an_unknown_check_or_metric(run_env, tmp_path, capsys):
    for flag, value in (("--checks", "dark_box,blurry"), ("--metrics", "fid,fidd")):
        assert main(["validate-metrics", "--profile", "smoke", flag, value, "--out",
                     str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert f"{flag} {value}: unknown {value.split(',')[1]}" in err and err.count("\n") == 1
    assert not any(tmp_path.iterdir())


def test_one_definition_of_noise_learned_and_collapsed():
    from bench.metrics import states
    assert states.position(10.0, 0.0, 100.0) == pytest.approx(0.1)
    assert states.position(0.5, 0.9, 0.1) == pytest.approx(0.5)  # higher-is-better metrics too
    assert states.position(None, 0.0, 1.0) is None and states.position(1.0, 2.0, 2.0) is None
    just_below = states.NOISE_POSITION * 100 * 0.99
    assert states.noise(just_below, 0.0, 100.0) is False and states.learned(just_below, 0, 100)
    assert states.noise(states.NOISE_POSITION * 100, 0.0, 100.0) is True
    assert states.learned(50.0, 0.0, 100.0) is False and states.learned(None, 0, 1) is None
    assert states.collapsed(0.5, 0.9) is (0.5 < states.COLLAPSE_COVERAGE * 0.9)
    assert states.collapsed(0.89, 0.9) is False and states.collapsed(0.1, None) is None
    # Known modes decide where the task has them, whatever coverage says: a diverse set of poor
    # images (low coverage, every mode) is not collapsed; one on a few modes is.
    assert states.collapsed(0.1, 0.9, modes=17.0, modes_floor=18.0) is False
    assert states.collapsed(0.9, 0.9, modes=4.0, modes_floor=18.0) is True
    assert states.collapsed(0.9, 0.9, modes=None, modes_floor=18.0) is None
    assert states.by_modes(18.0) and not states.by_modes(None) and not states.by_modes(0.0)


def test_one_definition_of_converged():
    from bench.metrics import states
    steps = [0, 100, 200, 300, 400, 500, 600]
    settled = [100, 40, 20, 12.0, 10.0, 10.5, 10.2]  # floor 8, ceiling 108: moves 0.005 late
    assert states.converged(steps, settled, 8.0, 108.0) is True
    moving = [100, 60, 40, 30.0, 20.0, 15.0, 10.0]  # still falling by 0.1 of the span
    assert states.converged(steps, moving, 8.0, 108.0) is False
    assert states.converged(steps[:2], settled[:2], 8.0, 108.0) is None
    assert states.converged(steps, settled, None, 108.0) is None


def _state_raw(checkerboard: float) -> pd.DataFrame:
    rows = []
    for draw in range(3):
        rows += [("fid", "real", 0, 0.0, draw, 1.0 + 0.1 * draw),
                 ("fid", "untrained", 1, 1.0, draw, 100.0 + draw),
                 ("fid", "shuffled", 1, 1.0, draw, 20.0),
                 ("fid", "checkerboard", 1, 1.0, draw, checkerboard),
                 ("coverage", "real", 0, 0.0, draw, 0.8),
                 ("coverage", "duplicated", 0, 0.0, draw, 0.8),
                 ("coverage", "duplicated", 4, 0.9, draw, 0.3)]
    return pd.DataFrame(rows, columns=["metric", "check", "level", "strength", "draw", "value"])


def test_suite_collapse_check_uses_known_modes_where_measured():
    from bench.metrics.validate import state_checks
    raw = _state_raw(checkerboard=10.0)
    modes = pd.DataFrame([("modes_covered", c, level, float(level), d, v) for d in range(3)
                          for c, level, v in (("real", 0, 18.0), ("duplicated", 4, 4.0))],
                         columns=raw.columns)
    # coverage alone would call the strongest duplication healthy; the modes see it collapsed
    raw.loc[(raw["check"] == "duplicated") & (raw["level"] == 4), "value"] = 0.8
    checks = state_checks(pd.concat([raw, modes], ignore_index=True))
    collapsed = checks[checks["state"] == "collapsed"].set_index("set")
    assert collapsed["passed"].all() and collapsed.loc["duplicated (strongest)", "hits"] == 3
    assert not state_checks(raw).set_index(["state", "set"]).loc[
        ("collapsed", "duplicated (strongest)"), "passed"]


def test_positions_place_every_set_between_floor_and_ceiling():
    from bench.metrics.validate import positions
    where = positions(_state_raw(checkerboard=10.0)).set_index("check")
    assert where.loc["untrained", "mean"] == pytest.approx(1.0)
    assert 0.08 < where.loc["checkerboard", "mean"] < 0.1  # (10 - 1.1) / (101 - 1.1), per draw
    assert where.loc["shuffled", "low"] <= where.loc["shuffled", "mean"] <= where.loc["shuffled", "high"]


def test_suite_checks_the_state_thresholds_both_ways():
    from bench.metrics.validate import state_checks
    good = state_checks(_state_raw(checkerboard=10.0))
    assert good["passed"].all() and len(good) == 6
    assert good.set_index(["state", "set"]).loc[("noise", "checkerboard"), "hits"] == 3
    bad = state_checks(_state_raw(checkerboard=1.5))
    noise = bad[bad["state"] == "noise"].set_index("set")
    assert not noise.loc["checkerboard", "passed"] and noise.loc["real", "passed"]


def test_fid_bias_is_fitted_linear_in_one_over_n():
    """Two samples of one Gaussian: FID is pure sample-size bias, and FID-infinity about 0."""
    from bench.metrics.fid import fid_infinity
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randn(800, 8, generator=gen, dtype=torch.float64) for _ in range(2))
    fit = fid_infinity(a, b)
    assert fit["n"] == 800 and fit["bias"] > 0 and abs(fit["fid_inf"]) < 0.2
    shifted = fid_infinity(a, b + 1.0)
    assert shifted["fid_inf"] == pytest.approx(8.0, rel=0.15)  # |mean difference|^2 = 8
    grouped = fid_infinity(a, b, rows_per_sample=4)  # 200 samples of 4 rows each
    assert grouped["n"] == 200


def test_too_few_validation_subjects_is_a_one_line_error(smoke_2d):
    from ground.errors import BenchError
    from bench.metrics.validate import run_suite
    _, s, data = smoke_2d
    one = data.val.subject == data.val.subject[0]
    val = type(data.val)(data.val.t1[one], data.val.t2[one], data.val.subject[one])
    with pytest.raises(BenchError, match="splits the 1 validation subjects .* needs at least 8"):
        run_suite(type(data)(**{**data.__dict__, "val": val}), s, None, progress=False)
