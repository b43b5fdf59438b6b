"""The package's import graph: no cycles, no import from a higher floor, no hidden imports.

Imports are read from the source (``ast``), function-level ones included, so an import
inside a function cannot hide a circle. The floor plan is the one drawn in
docs/architecture.md ("Floor plan"); a new module must be given a floor here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "tomosynth"

#: floor -> modules (package-relative names; "" is the package itself). A module may import
#: modules on its own floor or below, never above.
FLOORS: dict[int, tuple[str, ...]] = {
    0: ("", "errors", "jobs", "sizing", "plan", "config_checks", "metrics", "models", "train"),
    1: (
        "resample",
        "device",
        "losses",
        "metrics.stats",
        "metrics.kid",
        "metrics.image",
        "metrics.features",
        "metrics.fid",
        "metrics.frd",
        "metrics.frechet",
        "metrics.geometry",
        "metrics.pool",
        "metrics.spectral",
        "recon.parallel",
        "recon.prep",
    ),
    2: (
        "manifest",
        "io",
        "io.atomic",
        "io.jsonio",
        "io.threads",
        "io.h5chunks",
        "io.dxchange",
        "io.readorder",
        "io.stacks",
    ),
    3: ("checkpoint", "provenance", "resume", "summary", "preprocess", "sr_data", "scan_checks"),
    4: (
        "recon",
        "recon.geometry",
        "recon.filters",
        "recon.torch_fbp",
        "recon.fourier",
        "recon.external",
        "recon.backends",
        "recon.center",
        "recon.memory",
        "recon.chunks",
        "simulate",
        "models.srcnn",
        "models.srgan",
        "models.wgan_gp",
        "metrics.bone",
        "metrics.bone_stream",
        "metrics.bone_tables",
        "metrics.morphology",
        "metrics.distance",
        "metrics.degrade",
        "metrics.sr",
        "metrics.compute",
        "metrics.study",
        "metrics.criteria",
        "metrics.study_sets",
    ),
    5: (
        "train.common",
        "train.srcnn",
        "train.srgan",
        "train.srgan_guard",
        "train.srgan_volume",
        "train.wgan_gp",
        "study",
    ),
    6: ("upscale", "cli", "plots", "plots.*"),
}

#: Packages a package must not reach, whatever the floors: figures draw, they do not train
#: or run networks.
FORBIDDEN = {"plots": ("train", "models")}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The package-relative module of an imported dotted name, or None if outside."""
    if name != "tomosynth" and not name.startswith("tomosynth."):
        return None
    rel = name.removeprefix("tomosynth").removeprefix(".")
    while rel not in MODULES:
        rel = rel.rpartition(".")[0]
    return rel


def _within(module: str, package: str) -> bool:
    """`module` is `package` or lies inside it ("" is the whole package)."""
    return package == "" or module == package or module.startswith(f"{package}.")


def imports(module: str) -> list[tuple[str, int, bool]]:
    """``(imported module, line, at module level)`` of every tomosynth import of a module."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ["tomosynth", *filter(None, package.split("."))]
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from pkg import sub` imports the submodule when it is one
            names = [f"{target}.{alias.name}" for alias in node.names] + [target]
        resolved = {r for r in map(_resolve, names) if r is not None and r != module}
        # `from tomosynth.x import y` names both tomosynth.x.y (a function) and tomosynth.x
        deepest = {r for r in resolved if not any(o != r and _within(o, r) for o in resolved)}
        found += [(r, node.lineno, id(node) in top) for r in sorted(deepest)]
    return found


def floor_of(module: str) -> int:
    for floor, members in FLOORS.items():
        for member in members:
            if module == member or (member.endswith(".*") and module.startswith(member[:-1])):
                return floor
    raise AssertionError(f"tomosynth.{module} has no floor: add it to FLOORS (and the docs)")


def _edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module in MODULES:
        graph[module] = {
            target
            for target, _, _ in imports(module)
            # importing a submodule runs its parent packages' __init__ (floor 0 or own floor)
            if not module.startswith(f"{target}.") or target == ""
        }
    return graph


def test_every_module_has_a_floor():
    for module in MODULES:
        floor_of(module)


def test_no_import_from_a_higher_floor():
    problems = [
        f"tomosynth.{m} (floor {floor_of(m)}) imports tomosynth.{t} (floor {floor_of(t)})"
        for m in MODULES
        for t, _, _ in imports(m)
        if floor_of(t) > floor_of(m)
    ]
    assert not problems, "\n".join(problems)


def test_forbidden_packages():
    problems = [
        f"tomosynth.{m} imports tomosynth.{t}"
        for m in MODULES
        for t, _, _ in imports(m)
        for pkg, banned in FORBIDDEN.items()
        if (m == pkg or m.startswith(f"{pkg}."))
        and any(t == b or t.startswith(f"{b}.") for b in banned)
    ]
    assert not problems, "\n".join(problems)


def test_tomosynth_imports_at_module_level():
    """An import inside a function hides a dependency from the reader and from the floors."""
    hidden = [
        f"tomosynth/{MODULES[m].relative_to(PACKAGE)}:{line} imports tomosynth.{t}".rstrip(".")
        for m in MODULES
        for t, line, top in imports(m)
        if not top
    ]
    assert not hidden, "\n".join(hidden)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph` as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_no_import_cycle():
    cycle = find_cycle(_edges())
    assert cycle is None, "import cycle: " + " -> ".join(f"tomosynth.{m}" for m in cycle)


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
        ({"a": {"b"}, "b": {"b2"}, "b2": {"b"}}, ["b", "b2", "b"]),
    ],
)
def test_find_cycle_on_known_graphs(graph, expected):
    assert find_cycle(graph) == expected


def test_reader_sees_function_level_and_relative_imports(tmp_path):
    """The parser finds a circle hidden in a function, as the one between bone and
    morphology was."""
    pkg = tmp_path / "tomosynth"
    (pkg / "metrics").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "metrics" / "__init__.py").write_text("")
    (pkg / "metrics" / "a.py").write_text("from tomosynth.metrics.b import f\n")
    (pkg / "metrics" / "b.py").write_text("def f():\n    from .a import g\n")
    global PACKAGE, MODULES
    saved = PACKAGE, MODULES
    PACKAGE = pkg
    try:
        MODULES = _modules()
        assert imports("metrics.b") == [("metrics.a", 2, False)]
        assert imports("metrics.a") == [("metrics.b", 1, True)]
        assert find_cycle(_edges()) == ["metrics.a", "metrics.b", "metrics.a"]
    finally:
        PACKAGE, MODULES = saved
