"""The package's import rules, read from its source: nothing below the predictor imports it, only training/
imports Lightning, and no module imports itself back through others."""
import ast
import importlib
import warnings
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "automm_lite"
# Above the predictor: the public face (lazy), the reports and searches built on Predictor, the command line.
ABOVE = ("automm_lite", "automm_lite.predictor", "automm_lite.cli", "automm_lite.demo", "automm_lite.batch")
ABOVE_PACKAGES = ("automm_lite.reports", "automm_lite.search")
# Old paths kept for one release: they forward to the new module by name, warn, and import nothing themselves.
# (old module, new module, a name it forwards there)
MOVED = [("automm_lite.distill.report", "automm_lite.reports.distill_table", "our_recipe"),
         ("automm_lite.distill.tasks", "automm_lite.reports.tasks", "TASKS"),
         ("automm_lite.models.zoo", "automm_lite.checkpoints.zoo", "resolve_checkpoint"),
         ("automm_lite.models.zoo", "automm_lite.checkpoints.layers", "build_layer_student"),
         ("automm_lite.models.pruning", "automm_lite.checkpoints.pruning", "prune_encoder")]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set:
    """Every module ``path`` imports, at the top or inside a function, with relative imports resolved."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from . import text` is a module
    return found


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {name: {m for m in imports_of(path) if m in MODULES and m != name} for name, path in MODULES.items()}


def is_above_the_predictor(name: str) -> bool:
    return name in ABOVE or name.startswith(tuple(f"{p}." for p in ABOVE_PACKAGES)) or name in ABOVE_PACKAGES


def test_the_rules_see_the_imports_they_check():
    assert "automm_lite.predictor" in GRAPH["automm_lite.reports.distill_table"]  # a function-local import
    assert "automm_lite.data.tokens" in GRAPH["automm_lite.models.text"]  # a relative one
    assert "lightning" in imports_of(MODULES["automm_lite.training.system"])


def test_nothing_below_the_predictor_imports_it():
    offenders = sorted(name for name, imported in GRAPH.items()
                       if "automm_lite.predictor" in imported and not is_above_the_predictor(name))
    assert not offenders, offenders


def test_only_training_imports_lightning():
    offenders = sorted(name for name, path in MODULES.items()
                       if any(m.split(".")[0] in ("lightning", "pytorch_lightning") for m in imports_of(path))
                       and not name.startswith("automm_lite.training."))
    assert not offenders, offenders


def test_the_checkpoints_sit_below_the_models():
    """models/ holds the networks and reads its weights from checkpoints/, never the other way round."""
    offenders = sorted(name for name, imported in GRAPH.items() if name.startswith("automm_lite.checkpoints")
                       and any(m.startswith("automm_lite.models") for m in imported))
    assert not offenders, offenders


def test_no_module_imports_itself_back():
    """No circle among the modules (the lazy public face, ``automm_lite/__init__``, is the entry, not a step)."""
    graph = {name: imported - {"automm_lite"} for name, imported in GRAPH.items() if name != "automm_lite"}
    circles, state = [], {}

    def visit(name, trail):
        state[name] = "open"
        for other in sorted(graph[name]):
            if state.get(other) == "open":
                circles.append(trail[trail.index(other):] + [other])
            elif other not in state:
                visit(other, trail + [other])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not circles, circles


def test_each_stage_folder_holds_a_few_files_and_says_what_it_is():
    for folder in sorted(p for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()):
        modules = [p for p in folder.glob("*.py") if p.name != "__init__.py"]
        assert 3 <= len(modules) <= 7, (folder.name, len(modules))
        assert ast.get_docstring(ast.parse((folder / "__init__.py").read_text())), folder.name


@pytest.mark.parametrize("old,new,name", MOVED)
def test_moved_modules_still_answer_at_their_old_path_with_a_warning(old, new, name):
    assert not GRAPH[old], GRAPH[old]  # they forward by name and import nothing of the package
    with pytest.warns(DeprecationWarning, match=new):
        forwarded = getattr(importlib.import_module(old), name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert forwarded is getattr(importlib.import_module(new), name)
