"""A teacher run's progress on disk: part files of finished questions, merged into the outputs at the end.

    parts = Parts(out / "parts", {"teacher_fingerprint": ..., "degree": 8, "questions": 100000})
    done = parts.open()                  # indexes of questions an interrupted run already finished
    parts.write(entries)                 # one part file, written whole or not at all
    for entry in parts.merged(): ...     # every question's latest entry, in question order
    parts.clear()                        # once the outputs are assembled

A question is a header line, ``{"index", "status", "error", "kept"}``, then a line with its fields
(``filtering.question_fields``: id, question, gold answer), then one line per judged rationale, one per
``kept`` flag (which passed the filter). The question's fields are stored once; reading joins them into
each record (``filtering.record_line``) without parsing the records. The callers build this text
(``part_entry``). Parts hold
questions sorted by index and are named ``part-<attempt>-<seq>.jsonl``, so a later attempt's entry for a
question supersedes an earlier one (a question that failed is tried again by the next run). The driver
flushes a part every few thousand questions or seconds, which keeps its memory flat whatever the run's
size, and the merge reads one question per part at a time.
"""

from __future__ import annotations

import heapq
import json
import shutil
from pathlib import Path
from typing import Iterator

import orjson

from rt_ray.artifacts import replacing, write_json
from rt_ray.teacher.filtering import record_line

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

    def write(self, entries: list[tuple[int, bytes]]) -> None:
        """One part from ``(index, part_entry bytes)`` pairs (callers serialize, the driver only writes)."""
        if not entries:
            return
        self._written += 1
        path = self.directory / f"part-{self.attempt:04d}-{self._written:06d}.jsonl"
        with replacing(path, "wb") as handle:
            handle.write(b"\n".join(text for _, text in sorted(entries, key=lambda pair: pair[0])) + b"\n")

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
        """Entries as dicts: the header's fields, ``question`` (its fields' JSON) and ``lines``, its
        records as the output files' lines (bytes, each with its newline)."""
        for path in paths:
            with open(path, "rb") as handle:
                for header in handle:
                    entry = orjson.loads(header)
                    entry["question"] = question = next(handle)[:-1]
                    # The samples' lines keep their newline: one copy a record, this runs a million times.
                    entry["lines"] = [record_line(question, next(handle)) for _ in entry["kept"]]
                    yield entry if rank is None else (rank, entry)


def part_entry(index: int, status: str, error: str, kept: list[bool], question: bytes, samples: list[bytes],
               failure: str = "") -> bytes:  # fmt: skip
    """A question's text in a part: its header, its fields' JSON and its judged samples' JSON, a line each.
    ``failure``: a failed question's kind (TeacherRequestFailed.KINDS)."""
    header = orjson.dumps({"index": index, "status": status, "error": error, "failure": failure, "kept": kept})
    return b"\n".join([header, question, *samples])
