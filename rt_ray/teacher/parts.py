"""A teacher run's progress on disk: part files of finished questions, merged into the outputs at the end.

    parts = Parts(out / "parts", {"teacher_fingerprint": ..., "degree": 8, "questions": 100000})
    done = parts.open()                  # indexes of questions an interrupted run already finished
    parts.write(entries)                 # one part file, written whole or not at all
    for entry in parts.merged(): ...     # every question's latest entry, in question order
    parts.clear()                        # once the outputs are assembled

An entry is one question: ``{"index", "status", "error", "row", "lines", "kept"}`` (``row``: the
question's fields for failures.jsonl, ``lines``: its judged rationales as output lines, ``kept``: which
passed the filter). Parts are JSON lines sorted by index,
named ``part-<attempt>-<seq>.jsonl``, so a later attempt's entry for a question supersedes an earlier one
(a question that failed is tried again by the next run). The driver flushes a part every few thousand
questions or seconds, which keeps its memory flat whatever the run's size, and the merge reads one line
per part at a time.
"""

from __future__ import annotations

import heapq
import json
import shutil
from pathlib import Path
from typing import Iterator

from rt_ray.artifacts import replacing, write_json

MANIFEST = "manifest.json"


class Parts:
    def __init__(self, directory: Path, manifest: dict):
        self.directory = Path(directory)
        self.manifest = manifest
        self.attempt = 0
        self._written = 0

    def open(self) -> set[int]:
        """Indexes of the questions finished (status ok) by an earlier, interrupted attempt of this same
        run; parts of a different run (other teacher inputs, degree or questions) are removed."""
        manifest_path = self.directory / MANIFEST
        previous = json.loads(manifest_path.read_text()) if manifest_path.is_file() else None
        if previous is None or {k: v for k, v in previous.items() if k != "attempts"} != self.manifest:
            self.clear()
            previous = {"attempts": 0}
        self.directory.mkdir(parents=True, exist_ok=True)
        self.attempt = previous.get("attempts", 0) + 1
        write_json(manifest_path, {**self.manifest, "attempts": self.attempt})
        done: set[int] = set()
        for entry in self._entries(self._paths()):
            if entry["status"] == "ok":
                done.add(entry["index"])
            else:
                done.discard(entry["index"])
        return done

    def write(self, entries: list[tuple[int, str]]) -> None:
        """One part from ``(index, entry as a JSON line)`` pairs (callers serialize, the driver only writes)."""
        if not entries:
            return
        self._written += 1
        path = self.directory / f"part-{self.attempt:04d}-{self._written:06d}.jsonl"
        with replacing(path) as handle:
            for _, line in sorted(entries, key=lambda pair: pair[0]):
                handle.write(line + "\n")

    def merged(self) -> Iterator[dict]:
        """Each question's latest entry, in index order, reading one line per part at a time."""
        paths = self._paths()
        streams = [self._entries([path], rank) for rank, path in enumerate(paths)]
        merged = heapq.merge(*streams, key=lambda pair: (pair[1]["index"], pair[0]))
        pending = None
        for _, entry in merged:
            if pending is not None and pending["index"] != entry["index"]:
                yield pending
            pending = entry  # the same index again: a later attempt's entry wins
        if pending is not None:
            yield pending

    def clear(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def _paths(self) -> list[Path]:
        return sorted(self.directory.glob("part-*.jsonl"))  # attempt, then sequence: oldest first

    @staticmethod
    def _entries(paths: list[Path], rank: int | None = None) -> Iterator:
        for path in paths:
            with open(path) as handle:
                for line in handle:
                    entry = json.loads(line)
                    yield entry if rank is None else (rank, entry)
