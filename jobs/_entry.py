"""Shared by the job entrypoints: run one ``rt-ray`` command inside a Ray job.

``ray job submit --working-dir .`` starts the entrypoint in the uploaded copy of this checkout, where
``rt_ray`` is importable from the working directory even when the cluster has no rt-ray installed;
the job's driver then joins the cluster through the RAY_ADDRESS that Ray sets for it.
"""

from __future__ import annotations

import sys
from pathlib import Path


def run(command: str) -> None:
    checkout = str(Path(__file__).resolve().parents[1])
    if checkout not in sys.path:
        sys.path.insert(0, checkout)
    from rt_ray.cli import app

    app([command, *sys.argv[1:]], prog_name=f"jobs/{command}.py")
