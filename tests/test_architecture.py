"""The package's import rules, read from the source (imports inside functions included).

Layers, highest first; a module may import its own layer and the layers below it, never above:
entry modules and the command line, then the Spark bindings, the experiments, the report, the cores,
and the base (errors, hashing). No import cycle between modules, and only `pipeline.spark` imports pyspark.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "pipeline"
ENTRY_MODULES = ("pipeline.train", "pipeline.evaluate", "pipeline.vocabulary", "pipeline.coverage",
                 "pipeline.experiment")
LAYERS = (  # highest first
    ("pipeline.cli", *ENTRY_MODULES),
    ("pipeline.spark",),
    ("pipeline.experiments",),
    ("pipeline.report",),
    ("pipeline.text", "pipeline.vocab", "pipeline.image", "pipeline.semantic", "pipeline.clip", "pipeline.run",
     "pipeline.crawl"),
    ("pipeline", "pipeline.errors", "pipeline.hashing"),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, modules: set[str]) -> set[str]:
    """The modules of `modules` that an import statement in the file names, wherever the statement is.

    `from package import name` names the submodule when `name` is one, else the package itself.
    """
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                names.add(submodule if submodule in modules else node.module)
    return names & modules if modules else names


def package_graph() -> dict[str, set[str]]:
    """Each module of the package with the modules of the package it imports."""
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: imported(path, set(paths)) - {name} for name, path in paths.items()}


def layer_of(module: str) -> int:
    """The layer of the longest prefix that names the module (pipeline itself is the base)."""
    best, found = -1, len(LAYERS) - 1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, found = len(prefix), index
    return found


def test_no_module_imports_a_layer_above_its_own():
    upward = sorted(f"{source} -> {target}" for source, targets in package_graph().items() for target in targets
                    if layer_of(target) < layer_of(source))
    assert upward == []


def test_no_import_cycles():
    graph = package_graph()
    cycles, state = [], {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                cycles.append(" -> ".join(trail[trail.index(target):] + [target]))
            elif target not in state:
                visit(target, trail + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_only_the_spark_bindings_import_pyspark():
    users = sorted(module_name(path) for path in PACKAGE.rglob("*.py")
                   if any(name.split(".")[0] == "pyspark" for name in imported(path, set()))
                   and not module_name(path).startswith("pipeline.spark"))
    assert users == []


def test_the_rules_see_a_forbidden_import(tmp_path):
    """The checks above read real import statements: a core importing a Spark binding is caught."""
    assert layer_of("pipeline.text.ingest") > layer_of("pipeline.spark.ingest")
    assert layer_of("pipeline.hashing") > layer_of("pipeline.text.balancing")
    source = tmp_path / "core.py"
    source.write_text("def f():\n    from pipeline.spark.session import get_spark\n")
    assert imported(source, {"pipeline.spark.session"}) == {"pipeline.spark.session"}
