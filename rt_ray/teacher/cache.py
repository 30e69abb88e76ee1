"""A persistent, content-addressed cache of teacher samples: a rerun or resume never pays twice.

    cache = ResponseCache(".rt_ray_cache/teacher")
    key = sample_key(model="gpt-4o-mini", prompt=p, params={"temperature": 0.7, ...}, sample_index=3)
    cache.get(key) or cache.put(key, {"text": "...", ...})

Storage: append-only segment files, one per writing process (``segments/<host>-<pid>-<random>.log``),
one line per sample: ``<key>\\t<json>\\n``. Each process indexes the segments when it opens the cache
(key -> file, offset, length: the values stay on disk) and again, for new lines, when a lookup misses.

Why this layout: the first one (one JSON file per sample) made a million samples a million inodes,
and on the shared filesystem a multi-node cluster needs (NFS, EFS) every create and lookup a network
round trip. Segments make it one file per writer per run; a single writer per file needs no locks
(appends from several NFS clients to one file are not atomic; to different files they are safe);
a process killed mid-append leaves at most one partial last line, which readers skip. SQLite was the
other candidate: its locking is unreliable on NFS, which is where a cluster's cache lives. Caches in
the old layout (``??/<key>.json``) are still read.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterable

import orjson

KEY_LENGTH = 64  # sha256 hex
REFRESH_AFTER_S = 1.0  # a miss rescans the segments at most this often
SCAN_CHUNK_BYTES = 8 << 20


def sample_key(model: str, prompt: str, params: dict[str, Any], sample_index: int) -> str:
    """The D samples of a prompt are indexes 0..D-1 of one pool, so D=4 is inside D=8. The key is
    the sha256 of ``json.dumps({"model", "prompt", "params", "sample_index"}, sort_keys=True)``."""
    return sample_keys(model, prompt, params, [sample_index])[0]


def sample_keys(model: str, prompt: str, params: dict[str, Any], sample_indexes: Iterable[int]) -> list[str]:
    """``sample_key`` for several indexes of one prompt. ``sample_index`` sorts last in the material,
    so everything before it is serialized and hashed once per prompt (a rerun from the cache makes
    D keys a question, and this is most of their cost)."""
    head = json.dumps({"model": model, "params": params, "prompt": prompt}, sort_keys=True)[:-1]
    prefix = hashlib.sha256(head.encode())
    keys = []
    for index in sample_indexes:
        digest = prefix.copy()
        digest.update(f', "sample_index": {int(index)}}}'.encode())
        keys.append(digest.hexdigest())
    return keys


def sampling_params(api: str, temperature: float, max_tokens: int) -> dict[str, Any]:
    """The sampling parameters a cache key holds; the online client and batch mode both key by these."""
    return {"api": api, "temperature": temperature, "max_tokens": max_tokens}


class ResponseCache:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.segments = self.root / "segments"
        self.segments.mkdir(parents=True, exist_ok=True)
        self._index: dict[str, tuple[Path, int, int]] = {}
        self._scanned: dict[Path, int] = {}  # segment -> bytes indexed so far (complete lines only)
        self._readers: dict[Path, int] = {}
        self._writer: tuple[Path, int] | None = None
        self._lock = threading.Lock()
        self._last_refresh = 0.0
        self._refresh()

    def get(self, key: str) -> dict[str, Any] | None:
        found = self._index.get(key)
        if found is None and time.monotonic() - self._last_refresh > REFRESH_AFTER_S:
            self._refresh()  # another process may have written it since
            found = self._index.get(key)
        if found is not None:
            path, offset, length = found
            return orjson.loads(os.pread(self._reader(path), length, offset)[KEY_LENGTH + 1 :])
        return self._legacy_get(key)

    def __contains__(self, key: str) -> bool:
        """Whether a sample is stored, without reading and parsing it."""
        if key not in self._index and time.monotonic() - self._last_refresh > REFRESH_AFTER_S:
            self._refresh()
        return key in self._index or (self.root / key[:2] / f"{key}.json").is_file()

    def put(self, key: str, value: dict[str, Any]) -> None:
        line = key.encode() + b"\t" + orjson.dumps(value) + b"\n"  # orjson escapes newlines inside values
        with self._lock:
            path, fd = self._open_writer()
            offset = os.fstat(fd).st_size
            os.write(fd, line)  # one write of a whole line; a kill leaves at most a partial last line
            self._index[key] = (path, offset, len(line) - 1)
            self._scanned[path] = offset + len(line)

    def items(self):
        """Every (key, sample) stored, segments first, then entries of the old layout not also in them."""
        self._refresh()
        for key in list(self._index):
            yield key, self.get(key)
        for path in self.root.glob("??/*.json"):
            if path.stem not in self._index:
                yield path.stem, self._legacy_get(path.stem)

    def __len__(self) -> int:
        self._refresh()
        legacy = {p.stem for p in self.root.glob("??/*.json")}
        return len(self._index.keys() | legacy)

    def indexed(self) -> int:
        """Samples in the segments as last read; no rescan (``len`` rescans, and counts the old layout too)."""
        return len(self._index)

    def files(self) -> int:
        """Files the cache holds (segments and old-layout entries): what a shared filesystem pays for."""
        return sum(1 for _ in self.segments.glob("*.log")) + sum(1 for _ in self.root.glob("??/*.json"))

    def _open_writer(self) -> tuple[Path, int]:
        if self._writer is None:
            name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.log"
            path = self.segments / name
            self._writer = (path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644))
        return self._writer

    def _reader(self, path: Path) -> int:
        fd = self._readers.get(path)
        if fd is None:
            fd = self._readers[path] = os.open(path, os.O_RDONLY)
        return fd

    def _refresh(self) -> None:
        """Index the complete lines that segments gained since the last scan."""
        with self._lock:
            self._last_refresh = time.monotonic()
            for path in self.segments.glob("*.log"):
                start = self._scanned.get(path, 0)
                if path.stat().st_size <= start:
                    continue
                with open(path, "rb") as handle:
                    handle.seek(start)
                    while chunk := handle.read(SCAN_CHUNK_BYTES):  # chunked: a segment may be gigabytes
                        done = self._index_lines(path, start, chunk)
                        if done == 0 and len(chunk) == SCAN_CHUNK_BYTES:  # one line longer than a chunk
                            done = self._index_lines(path, start, chunk + handle.read())
                        if done == 0:
                            break  # only a partial last line is left
                        start += done
                        handle.seek(start)
                self._scanned[path] = start  # a partial last line is read again once complete

    def _index_lines(self, path: Path, start: int, data: bytes) -> int:
        """Index the complete lines of ``data`` (read from ``path`` at ``start``); the bytes they span.
        (A vectorized numpy scan was tried: no faster, as building the dict's keys is the cost.)"""
        offset = 0
        while (end := data.find(b"\n", offset)) != -1:
            line = data[offset:end]
            if len(line) > KEY_LENGTH and line[KEY_LENGTH : KEY_LENGTH + 1] == b"\t":
                self._index.setdefault(line[:KEY_LENGTH].decode(), (path, start + offset, end - offset))
            offset = end + 1
        return offset

    def _legacy_get(self, key: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.root / key[:2] / f"{key}.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def close(self) -> None:
        with self._lock:
            for fd in self._readers.values():
                os.close(fd)
            self._readers.clear()
            if self._writer is not None:
                os.close(self._writer[1])
                self._writer = None

    def __del__(self) -> None:
        try:
            self.close()
        except (OSError, TypeError, AttributeError):  # at interpreter shutdown: os and logging may be gone, nothing to log to
            pass
