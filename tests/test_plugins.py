import textwrap

import pytest

import strategies
from bench.cli import main
from bench.plugins import load_plugin, load_plugins
from ground.errors import BenchError

PLUGIN = textwrap.dedent('''
    from strategies import Strategy, register_strategy, transfer_report

    @register_strategy("{name}")
    class Mine(Strategy):
        description = "test plugin"

        def initialize(self, G, D, pretexts):
            return transfer_report()
''')


def test_plugin_from_a_file(tmp_path, capsys):
    path = tmp_path / "my_plugin.py"
    path.write_text(PLUGIN.format(name="from-file"))
    assert load_plugin(str(path)) == ["from-file"]
    assert strategies.strategy_origin("from-file") == f"plugin {path}"
    assert main(["list", "strategies", "--plugin", str(path)]) == 0  # re-import is harmless
    assert "from-file" in capsys.readouterr().out


def test_plugin_from_a_module_path(tmp_path, monkeypatch):
    pkg = tmp_path / "labstrategies"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "mine.py").write_text(PLUGIN.format(name="from-module"))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_plugin("labstrategies.mine") == ["from-module"]
    assert strategies.strategy_origin("from-module") == "module labstrategies.mine"


def test_plugin_from_an_entry_point(tmp_path, monkeypatch):
    (tmp_path / "epstrategy.py").write_text(PLUGIN.format(name="from-entry-point"))
    dist = tmp_path / "epstrategy-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: epstrategy\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[bench.strategies]\nmine = epstrategy\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "from-entry-point" in load_plugins([])
    assert strategies.strategy_origin("from-entry-point") == "entry point mine (epstrategy)"


def test_plugin_that_fails_to_import_names_itself(tmp_path, capsys):
    path = tmp_path / "broken.py"
    path.write_text("import not_a_module_anywhere\n")
    with pytest.raises(BenchError, match=r"plugin .*broken.py failed to import: ModuleNotFoundError"):
        load_plugin(str(path))
    assert main(["list", "strategies", "--plugin", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "broken.py" in err


def test_plugin_that_registers_nothing_or_is_missing(tmp_path):
    path = tmp_path / "empty.py"
    path.write_text("x = 1\n")
    with pytest.raises(BenchError, match="registered no new strategy or metric"):
        load_plugin(str(path))
    with pytest.raises(BenchError, match="does not exist"):
        load_plugin(str(tmp_path / "absent.py"))


def test_registering_a_non_strategy_or_a_taken_name_fails(tmp_path):
    path = tmp_path / "clash.py"
    path.write_text(PLUGIN.format(name="scratch"))
    with pytest.raises(BenchError, match="registered twice"):
        load_plugin(str(path))
    with pytest.raises(BenchError, match="must subclass"):
        strategies.register_strategy("odd")(object)


METRIC_PLUGIN = '''
from bench.metrics.registry import HIGHER, Metric, register

register(Metric("brightness", "mean brain brightness", lambda ref, x: float(x.images.mean()),
                worse=HIGHER, must_order=("contrast",), curve=True))
'''


@pytest.mark.slow
def test_a_metric_plugin_reaches_rows_curves_and_the_report(tmp_path, run_env):
    """One registry entry in a plugin file: computed at every evaluation and at the end, and
    shown in the report under its label."""
    import csv
    import json
    from bench.cli import main
    plugin = tmp_path / "brightness.py"
    plugin.write_text(METRIC_PLUGIN)
    out = tmp_path / "run"
    assert main(["run", "--plugin", str(plugin), "--strategy", "scratch", "--task", "phantom-2d",
                 "--profile", "smoke", "--seeds", "1", "--out", str(out), "--no-progress"]) == 0
    row = json.loads((out / "results.jsonl").read_text().splitlines()[0])
    assert isinstance(row["metrics"]["brightness"], float)
    assert "brightness" in row["reference"]["floors"]
    curve = list(csv.DictReader(open(out / row["files"]["curve"])))
    assert all(r["brightness"] for r in curve)
    assert "mean brain brightness" in (out / "report.md").read_text()


def test_a_built_in_strategy_is_one_file_and_joins_the_plan(tmp_path):
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from bench.plan import BASELINE, PLANNED_STRATEGIES
    assert set(PLANNED_STRATEGIES) == set(strategies.list_strategies()) - {BASELINE} - {
        s for s in strategies.list_strategies() if strategies.strategy_origin(s) != "built-in"}
    # A copy of the package with one more file and nothing else changed: the file's strategy is
    # a registered built-in, the plan compares it, and the secondary family grows by two tests.
    repo = Path(__file__).resolve().parents[1]
    shutil.copytree(repo / "strategies", tmp_path / "strategies",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "strategies" / "my_new.py").write_text(PLUGIN.format(name="my-new"))
    code = ("import strategies; from bench.plan import PLANNED_STRATEGIES, family_sizes; "
            "print(strategies.strategy_origin('my-new'), 'my-new' in PLANNED_STRATEGIES, "
            "family_sizes([], 2)['secondary'])")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env={"PYTHONPATH": f"{tmp_path}:{repo}", "PATH": ""}, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr[-2000:]
    from bench.plan import family_sizes
    assert shown.stdout.split() == ["built-in", "True", str(family_sizes([], 2)["secondary"] + 2)]
