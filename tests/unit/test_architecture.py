"""The package's dependency rules, read from the source: stages meet only through rt_ray/artifacts.py,
and tracking receives what it logs instead of importing a stage."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "rt_ray"
STAGES = ("teacher", "student", "sweep", "serve", "pipeline", "experiment")


def imported_modules(folder: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted(folder.rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        found[str(path.relative_to(PACKAGE.parent))] = names
    return found


def offenders(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    return [f"{path} imports {name}" for path, names in imported_modules(PACKAGE / folder).items() for name in sorted(names)
            if any(name == f"rt_ray.{stage}" or name.startswith(f"rt_ray.{stage}.") for stage in forbidden)]  # fmt: skip


def test_the_student_stage_does_not_import_the_teacher_stage():
    assert offenders("student", ("teacher",)) == []


def test_tracking_imports_no_stage():
    assert offenders("tracking", STAGES) == []


def test_the_simulator_an_offline_teacher_and_test_double_imports_no_stage():
    assert offenders("simulator", STAGES) == []


@pytest.mark.parametrize("folder", ["tracking", "student"])
def test_the_rule_would_see_a_forbidden_import(folder, tmp_path, monkeypatch):
    fake = tmp_path / "rt_ray" / folder
    fake.mkdir(parents=True)
    (fake / "bad.py").write_text("from rt_ray.teacher.pipeline import generate\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path / "rt_ray")
    assert offenders(folder, ("teacher",)) == [f"rt_ray/{folder}/bad.py imports rt_ray.teacher.pipeline"]


def circles(folder: str) -> list[list[str]]:
    """Import circles among the modules of ``rt_ray/<folder>`` (module-level or not)."""
    package = f"rt_ray.{folder}"
    edges = {path.removesuffix(".py").replace("/", ".").removesuffix(".__init__"): {n for n in names if n.startswith(package)}
             for path, names in imported_modules(PACKAGE / folder).items()}  # fmt: skip
    found, path = [], []

    def visit(module: str) -> None:
        if module in path:
            found.append(path[path.index(module):] + [module])
            return
        path.append(module)
        for target in sorted(edges.get(module, ())):
            visit(target)
        path.pop()

    for module in sorted(edges):
        visit(module)
    return found


def test_the_simulators_modules_import_each_other_without_a_circle():
    assert circles("simulator") == []


def test_the_circle_check_would_see_one(tmp_path, monkeypatch):
    fake = tmp_path / "rt_ray" / "simulator"
    fake.mkdir(parents=True)
    (fake / "a.py").write_text("from rt_ray.simulator.b import x\n")
    (fake / "b.py").write_text("def f():\n    from rt_ray.simulator.a import y\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path / "rt_ray")
    assert ["rt_ray.simulator.a", "rt_ray.simulator.b", "rt_ray.simulator.a"] in circles("simulator")
