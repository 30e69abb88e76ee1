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


@pytest.mark.parametrize("folder", ["tracking", "student"])
def test_the_rule_would_see_a_forbidden_import(folder, tmp_path, monkeypatch):
    fake = tmp_path / "rt_ray" / folder
    fake.mkdir(parents=True)
    (fake / "bad.py").write_text("from rt_ray.teacher.pipeline import generate\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path / "rt_ray")
    assert offenders(folder, ("teacher",)) == [f"rt_ray/{folder}/bad.py imports rt_ray.teacher.pipeline"]
