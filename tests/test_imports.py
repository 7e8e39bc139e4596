"""The project's modules import one another without circles (DESIGN.md: imports run downward
only). Imports inside functions count too: a circle hidden in a function is still a circle."""
import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bench", "datasets", "ground", "reports", "strategies")


def import_graph() -> nx.DiGraph:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = path
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                # `from datasets import cache` imports the module datasets.cache, not the package
                found = [f"{node.module}.{a.name}" for a in node.names]
                targets = [t for t in found if t in modules] or [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            graph.add_edges_from((name, t) for t in targets if t in modules and t != name)
    return graph


def test_no_module_imports_itself_through_others():
    circles = [sorted(c) for c in nx.strongly_connected_components(import_graph()) if len(c) > 1]
    assert circles == []


def test_the_graph_sees_a_circle_where_there_is_one():
    graph = import_graph()
    assert graph.has_edge("bench.pretext", "datasets.spec")  # imported inside axial_slices
    assert graph.has_edge("datasets.build", "datasets.cache")  # `from datasets import cache`
    graph.add_edge("bench.flops", "bench.pretext")
    assert any(len(c) > 1 for c in nx.strongly_connected_components(graph))


def test_the_harness_does_not_reach_up_into_the_reports():
    # The CLI composes the two (`bench run` ends with the report); nothing below it may.
    graph = import_graph()
    upward = sorted((a, b) for a, b in graph.edges
                    if a.startswith("bench") and b.startswith("reports") and a != "bench.cli")
    assert upward == []
    assert graph.has_edge("bench.cli", "reports")  # the one composition the rule allows


def test_the_folders_import_one_way():
    # ground <- datasets, strategies <- bench <- reports (the CLI aside, see above): datasets
    # and strategies import only the ground floor, which imports nothing of ours.
    graph = import_graph()
    package = {name: name.split(".")[0] for name in graph}
    reaches = {(package[a], package[b]) for a, b in graph.edges if package[a] != package[b]}
    assert {b for a, b in reaches if a == "ground"} == set()
    assert {b for a, b in reaches if a == "datasets"} == {"ground"}
    assert {b for a, b in reaches if a == "strategies"} == {"ground"}
    assert {("bench", "datasets"), ("bench", "strategies"), ("bench", "ground")} <= reaches
    assert nx.is_directed_acyclic_graph(nx.DiGraph(
        (a, b) for a, b in reaches if (a, b) != ("bench", "reports")))
