"""The GPU check's offline bundle (bench/gpu/bundle.py): parts that fit a device call, Ray's wheel
repacked so that pip still installs it, and the closure check that names what is missing."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("gpu_bundle", REPO / "bench/gpu/bundle.py")
bundle = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bundle)


def wheel_of(path: Path, size: int) -> Path:
    path.write_bytes(b"x" * size)
    return path


def test_parts_hold_every_wheel_and_none_is_over_the_limit(tmp_path):
    wheels = [wheel_of(tmp_path / f"w{i}-1-py3-none-any.whl", size) for i, size in enumerate([50, 30, 25, 20, 5, 5])]
    parts = bundle.parts_by_size(wheels, 60)
    assert sorted(w.name for part in parts for w in part) == sorted(w.name for w in wheels)
    assert all(sum(w.stat().st_size for w in part) <= 60 for part in parts)
    assert len(parts) == 3  # 135 bytes need at least 3 parts of 60


def test_a_wheel_larger_than_a_part_is_refused_by_name(tmp_path):
    with pytest.raises(SystemExit, match="big-1-py3-none-any.whl alone is"):
        bundle.parts_by_size([wheel_of(tmp_path / "big-1-py3-none-any.whl", 100)], 60)


def test_the_repacked_wheel_lacks_the_unused_files_and_pip_installs_it(tmp_path):
    original = tmp_path / "demo_pkg-1.0-py3-none-any.whl"
    files = {"demo_pkg/__init__.py": "VALUE = 1\n", "demo_pkg/jars/big.jar": "j" * 1000,
             "demo_pkg-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: demo-pkg\nVersion: 1.0\n",
             "demo_pkg-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}  # fmt: skip
    with zipfile.ZipFile(original, "w") as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)
        wheel.writestr("demo_pkg-1.0.dist-info/RECORD", "".join(f"{name},,\n" for name in files) + "demo_pkg-1.0.dist-info/RECORD,,\n")
    out = tmp_path / "out"
    out.mkdir()
    repacked = bundle.repack_without(original, ("demo_pkg/jars/",), out)
    with zipfile.ZipFile(repacked) as wheel:
        assert "demo_pkg/jars/big.jar" not in wheel.namelist()
        assert "jars" not in wheel.read("demo_pkg-1.0.dist-info/RECORD").decode()
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--target", str(site), str(repacked)],
                   check=True)  # fmt: skip
    assert (site / "demo_pkg/__init__.py").is_file() and not (site / "demo_pkg/jars").exists()


def test_the_closure_check_names_what_is_missing_or_the_wrong_version(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("pytest>=1  # installed, with its own requirements\n")
    assert bundle.unmet(requirements) == []
    requirements.write_text("pytest<1\nno-such-package-rt-ray>=1\n")
    problems = bundle.unmet(requirements)
    assert any(p.startswith("pytest ") and "needs pytest<1" in p for p in problems)
    assert any(p.startswith("no-such-package-rt-ray is missing") for p in problems)


def test_the_closure_check_follows_a_packages_own_requirements(tmp_path, monkeypatch):
    """A requirement met at the top but one of whose own requirements is not: the check names it and who needs it."""
    site = tmp_path / "site"
    info = site / "demo_top-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: demo-top\nVersion: 1.0\nRequires-Dist: no-such-dependency-rt-ray>=2\n"
                                   "Requires-Dist: also-absent-rt-ray; extra == 'unused'\n")  # fmt: skip
    monkeypatch.syspath_prepend(str(site))
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("demo-top\n")
    assert bundle.unmet(requirements) == ["no-such-dependency-rt-ray is missing (needed by demo-top 1.0: no-such-dependency-rt-ray>=2)"]
