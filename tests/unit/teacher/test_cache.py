"""The teacher cache's storage: segments shared by processes, killed writers, the old layout."""

from __future__ import annotations

import json
import multiprocessing
import os

from rt_ray.teacher.cache import ResponseCache, sample_key

PARAMS = {"api": "completions", "temperature": 0.7, "max_tokens": 128}


def write_entries(root: str, prefix: str, count: int) -> None:
    cache = ResponseCache(root)
    for i in range(count):
        cache.put(sample_key("m", f"{prefix}-{i}", PARAMS, 0), {"text": f"{prefix} {i}"})
        if i % 50 == 0:
            cache.get(sample_key("m", f"other-{i}", PARAMS, 0))  # lookups while others write


def test_several_processes_write_at_once_and_every_entry_is_read_back(tmp_path):
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=write_entries, args=(str(tmp_path), f"w{n}", 300)) for n in range(3)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(60)
        assert writer.exitcode == 0
    cache = ResponseCache(tmp_path)
    assert len(cache) == 900 and cache.files() == 3, "one segment per writing process, not one file per sample"
    assert all(cache.get(sample_key("m", f"w{n}-{i}", PARAMS, 0)) == {"text": f"w{n} {i}"} for n in range(3) for i in range(300))


def test_a_writer_killed_mid_append_leaves_every_complete_entry_readable(tmp_path):
    write_entries(str(tmp_path), "done", 20)
    (segment,) = (tmp_path / "segments").glob("*.log")
    partial = f"{sample_key('m', 'cut', PARAMS, 0)}\t" + json.dumps({"text": "half a line"})[:9]
    with open(segment, "a") as handle:
        handle.write(partial)  # what a SIGKILL during os.write can leave: no newline
    cache = ResponseCache(tmp_path)
    assert len(cache) == 20 and cache.get(sample_key("m", "cut", PARAMS, 0)) is None
    cache.put(sample_key("m", "after", PARAMS, 0), {"text": "new"})  # a new process writes its own segment
    assert ResponseCache(tmp_path).get(sample_key("m", "after", PARAMS, 0)) == {"text": "new"}


def test_a_reader_sees_what_another_process_wrote_after_it_opened(tmp_path, monkeypatch):
    import rt_ray.teacher.cache as cache_module

    monkeypatch.setattr(cache_module, "REFRESH_AFTER_S", 0.0)
    reader = ResponseCache(tmp_path)
    key = sample_key("m", "late", PARAMS, 0)
    assert reader.get(key) is None
    ResponseCache(tmp_path).put(key, {"text": "late"})
    assert reader.get(key) == {"text": "late"}


def test_d4_is_inside_d8(tmp_path):
    cache = ResponseCache(tmp_path)
    for index in range(4):
        cache.put(sample_key("m", "q", PARAMS, index), {"text": str(index)})
    reopened = ResponseCache(tmp_path)
    found = [reopened.get(sample_key("m", "q", PARAMS, index)) for index in range(8)]
    assert [f["text"] for f in found[:4]] == ["0", "1", "2", "3"] and found[4:] == [None] * 4


def test_a_cache_in_the_old_one_file_per_sample_layout_is_still_read(tmp_path):
    key = sample_key("m", "old", PARAMS, 0)
    (tmp_path / key[:2]).mkdir()
    (tmp_path / key[:2] / f"{key}.json").write_text(json.dumps({"text": "from before"}))
    cache = ResponseCache(tmp_path)
    assert cache.get(key) == {"text": "from before"} and len(cache) == 1
    assert dict(cache.items()) == {key: {"text": "from before"}}
    assert os.path.isdir(tmp_path / "segments")


def test_membership_sees_segments_other_writers_and_the_old_layout(tmp_path, monkeypatch):
    import rt_ray.teacher.cache as cache_module

    monkeypatch.setattr(cache_module, "REFRESH_AFTER_S", 0.0)
    cache = ResponseCache(tmp_path)
    mine, theirs, old = (sample_key("m", name, PARAMS, 0) for name in ("mine", "theirs", "old"))
    cache.put(mine, {"text": "x"})
    ResponseCache(tmp_path).put(theirs, {"text": "y"})
    (tmp_path / old[:2]).mkdir(exist_ok=True)
    (tmp_path / old[:2] / f"{old}.json").write_text("{}")
    assert mine in cache and theirs in cache and old in cache
    assert sample_key("m", "never", PARAMS, 0) not in cache


def test_segments_are_indexed_in_chunks_whatever_the_line_lengths(tmp_path, monkeypatch):
    monkeypatch.setattr("rt_ray.teacher.cache.SCAN_CHUNK_BYTES", 100)  # lines span and exceed chunks
    writer = ResponseCache(tmp_path)
    values = {sample_key("m", f"p{i}", {}, 0): {"text": "x" * (i * 37)} for i in range(12)}
    for key, value in values.items():
        writer.put(key, value)
    writer.close()
    segment = next((tmp_path / "segments").glob("*.log"))
    with open(segment, "ab") as handle:
        handle.write(b"f" * 64 + b'\t{"text": "cut sh')  # a partial last line, longer than a chunk
    reader = ResponseCache(tmp_path)
    assert len(reader) == 12
    assert all(reader.get(key) == value for key, value in values.items())


def test_the_first_line_of_a_key_wins_within_a_segment_and_across_scans(tmp_path, monkeypatch):
    key, other = sample_key("m", "p", PARAMS, 0), sample_key("m", "q", PARAMS, 0)
    (tmp_path / "segments").mkdir()
    segment = tmp_path / "segments" / "a.log"
    segment.write_bytes(f'{key}\t{{"text": "first"}}\n{other}\t{{"text": "o"}}\n{key}\t{{"text": "second"}}\n'.encode())
    cache = ResponseCache(tmp_path)
    assert cache.get(key) == {"text": "first"} and cache.get(other) == {"text": "o"}
    with open(segment, "ab") as handle:
        handle.write(f'{key}\t{{"text": "third"}}\n'.encode())
    cache._refresh()
    assert cache.get(key) == {"text": "first"} and len(cache) == 2
