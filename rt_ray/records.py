"""Finished-stage records: which config made a stage's output, so a rerun can reuse it.

    record = read_record(folder, fingerprint)     # the outcome, or None: missing, unfinished or stale
    forget_record(folder)                         # the first thing a stage run again on request does
    write_record(folder, fingerprint, outcome)    # the last thing a stage does

Records live in the stage's local folder (for an output URI, its staging copy on this node:
rt_ray/storage.py), so a rerun on the node reuses the work.

A stage writes its record only after everything else it writes, so a record means a whole output;
the fingerprint (``RtRayConfig.fingerprint_of``) chains to the stage's inputs, so a changed value
upstream makes every record after it stale.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from rt_ray.storage import local_dir

RECORD_FILE = "rt_ray_stage.json"


def read_record(folder: str | Path, fingerprint: str) -> dict | None:
    path = local_dir(folder) / RECORD_FILE
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    return record["outcome"] if record.get("fingerprint") == fingerprint else None


def forget_record(folder: str | Path) -> None:
    """A stage asked to run again forgets its old outcome first, so that if it is interrupted, the
    resumed run does not mistake the old outcome for the new one."""
    (local_dir(folder) / RECORD_FILE).unlink(missing_ok=True)


def write_record(folder: str | Path, fingerprint: str, outcome: dict) -> None:
    path = local_dir(folder) / RECORD_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps({"fingerprint": fingerprint, "outcome": outcome}, indent=2, default=str))
    os.replace(partial, path)
