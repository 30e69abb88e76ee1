"""A persistent, content-addressed cache of teacher samples: a rerun or resume never pays twice.

    cache = ResponseCache(".rt_ray_cache/teacher")
    key = sample_key(model="gpt-4o-mini", prompt=p, params={"temperature": 0.7, ...}, sample_index=3)
    cache.get(key) or cache.put(key, {"text": "...", ...})

One small JSON file per sample, written atomically (temp file + rename), so a process killed
mid-write leaves either the whole entry or none, several processes may share the folder, and a
shared filesystem (NFS) serves a multi-node cluster.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def sample_key(model: str, prompt: str, params: dict[str, Any], sample_index: int) -> str:
    """The D samples of a prompt are indexes 0..D-1 of one pool, so D=4 is inside D=8."""
    material = json.dumps(
        {"model": model, "prompt": prompt, "params": params, "sample_index": sample_index}, sort_keys=True
    )
    return hashlib.sha256(material.encode()).hexdigest()


class ResponseCache:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            return json.loads(self._path(key).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def put(self, key: str, value: dict[str, Any]) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "w") as handle:
            json.dump(value, handle)
        os.replace(tmp, path)

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("??/*.json"))
