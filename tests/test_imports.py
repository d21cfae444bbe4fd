"""The import graph of steer_audio: no cycle among the imports a module runs when it is imported (module and
class level, `if TYPE_CHECKING:` blocks excepted), and none either when the imports inside functions are
counted too; the model registry and the families package do not import each other; every module imports."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "steer_audio"


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_pkg: bool, lazy: bool) -> set[str]:
    """steer_audio modules imported by `tree`; with `lazy`, also the imports inside functions."""
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                continue
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and not lazy:
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    root = base[: len(base) - (child.level - 1)]
                    target = ".".join(root + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                found.add(target)
                found.update(f"{target}.{a.name}" for a in child.names)
            visit(child)

    visit(tree)
    out = set()
    for name in found:
        # importing a.b.c runs a, a.b and a.b.c
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            cand = ".".join(parts[:i])
            if cand in MODULES and cand != module:
                out.add(cand)
    return out


def _graph(lazy: bool) -> dict[str, set[str]]:
    g = {}
    for mod, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        g[mod] = _imports(tree, mod, path.name == "__init__.py", lazy)
    return g


def _cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            strong(v)
    return out


def _parents(mod: str) -> set[str]:
    parts = mod.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def _cycles_without_packages(g: dict[str, set[str]]) -> list[list[str]]:
    # an edge to a package that contains the importer is how Python imports a submodule, not a cycle
    return _cycles({m: {t for t in ts if t not in _parents(m)} for m, ts in g.items()})


def test_the_graph_sees_the_imports():
    g = _graph(lazy=False)
    assert "steer_audio.models.arch" in g["steer_audio.capture.trace"]
    assert "steer_audio.errors" in g["steer_audio.models.hub"]
    # and the checker finds a cycle when there is one
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]


def test_no_import_cycle_at_import_time():
    assert _cycles_without_packages(_graph(lazy=False)) == []


def test_no_import_cycle_counting_imports_inside_functions():
    assert _cycles_without_packages(_graph(lazy=True)) == []


def test_registry_and_families_do_not_import_each_other():
    g = _graph(lazy=True)
    fam = {m for m in MODULES if m.startswith("steer_audio.models.families")}
    assert not (g["steer_audio.models.registry"] & fam)
    for m in fam:
        assert "steer_audio.models.registry" not in g[m], m
    assert g["steer_audio.models.hub"] <= {"steer_audio.errors", "steer_audio"}


#: private names one module of a package may share with another of the same package: (importer, module, name)
#: (none now: steer/forward.py's `_gather`, reached by steer/avs.py, is the public `gather_candidates`)
ALLOWED_PRIVATE: set[tuple[str, str, str]] = set()


def test_no_private_name_reached_through():
    """No `from x import _name` from another module (the registry's `_missing_weights` was reached that
    way by families.py), except the pairs of ALLOWED_PRIVATE inside one package."""
    bad = []
    for mod, path in MODULES.items():
        pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                root = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                target = ".".join(root + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("steer_audio"):
                continue
            target_pkg = (
                target if MODULES.get(target, Path()).name == "__init__.py" else target.rsplit(".", 1)[0]
            )
            for a in node.names:
                private = a.name.startswith("_") and not a.name.startswith("__")
                allowed = (mod, target, a.name) in ALLOWED_PRIVATE and target_pkg == pkg
                if private and not allowed:
                    bad.append(f"{mod}: from {target} import {a.name}")
    assert bad == []


@pytest.mark.parametrize(
    "mod",
    sorted(m for m in MODULES if ".remote." not in m and not m.endswith(("ray_backend", "cpu_actor"))),
)
def test_every_module_imports(mod):
    importlib.import_module(mod)
