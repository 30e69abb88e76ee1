"""What `pip install -e .` alone (no extras) must give: every rt_ray module imports, every command's
--help runs. CI runs this in a fresh virtual environment before the test extras are installed, so a
runtime dependency declared only in an extra fails here.

    python .ci/check_install.py
"""

from __future__ import annotations

import importlib
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import rt_ray
from rt_ray.cli import app


def main() -> int:
    failures = []
    modules = sorted(m.name for m in pkgutil.walk_packages(rt_ray.__path__, prefix="rt_ray."))
    for name in ["rt_ray", *modules]:
        try:
            importlib.import_module(name)
        except Exception as error:  # noqa: BLE001 - report every module, not the first
            failures.append(f"import {name}: {type(error).__name__}: {error}")
    # The environment's own script: the one this interpreter's install put beside it.
    program = shutil.which("rt-ray", path=str(Path(sys.executable).parent)) or shutil.which("rt-ray")
    if program is None:
        failures.append("the rt-ray command is not on PATH")
    commands = sorted(c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands)
    for command in commands if program else []:
        done = subprocess.run([program, command, "--help"], capture_output=True, text=True, timeout=120)
        if done.returncode != 0 or "Usage" not in done.stdout:
            failures.append(f"rt-ray {command} --help: exit {done.returncode}: {(done.stderr or done.stdout)[-500:]}")
    print(f"imported {len(modules) + 1} modules, ran --help of {len(commands)} commands: {len(failures)} failed")
    for failure in failures:
        print(f"  {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
