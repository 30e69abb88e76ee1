import orjson

from rt_ray.teacher.parts import Parts, part_entry

MANIFEST = {"teacher_fingerprint": "abc", "degree": 2, "questions": 6}


def entry(index: int, status: str = "ok") -> tuple[int, bytes]:
    samples = [orjson.dumps({"sample_index": i}) for i in range(2)] if status == "ok" else []
    return index, part_entry(index, status, "" if status == "ok" else "boom", [i == 0 for i in range(len(samples))],
                             orjson.dumps({"question_id": f"q{index}"}), samples)  # fmt: skip


def records(index: int) -> list[bytes]:
    return [b'{"question_id":"q%d","sample_index":%d}\n' % (index, i) for i in range(2)]


def test_parts_merge_in_question_order_whatever_order_they_were_written(tmp_path):
    parts = Parts(tmp_path / "parts", MANIFEST)
    assert parts.open() == set()
    parts.write([entry(4), entry(0)])
    parts.write([entry(3), entry(1), entry(5)])
    parts.write([entry(2)])
    merged = list(parts.merged())
    assert [e["index"] for e in merged] == [0, 1, 2, 3, 4, 5]
    assert merged[3]["lines"] == records(3), "each record: its question's fields, then its sample's"
    assert merged[3]["kept"] == [True, False]


def test_a_resumed_run_skips_what_finished_and_retries_what_failed(tmp_path):
    first = Parts(tmp_path / "parts", MANIFEST)
    first.open()
    first.write([entry(0), entry(1, "failed"), entry(2)])
    second = Parts(tmp_path / "parts", MANIFEST)
    assert second.open() == {0, 2}, "a failed question is tried again"
    second.write([entry(1), entry(3)])
    merged = list(second.merged())
    assert [(e["index"], e["status"]) for e in merged] == [(0, "ok"), (1, "ok"), (2, "ok"), (3, "ok")]


def test_a_question_that_did_not_finish_keeps_its_fields_for_failures_jsonl(tmp_path):
    parts = Parts(tmp_path / "parts", MANIFEST)
    parts.open()
    parts.write([entry(1, "failed"), entry(0)])
    assert [(e["status"], e["lines"], e["question"]) for e in parts.merged()] == [
        ("ok", records(0), b'{"question_id":"q0"}'), ("failed", [], b'{"question_id":"q1"}')]  # fmt: skip


def test_parts_of_another_run_are_removed(tmp_path):
    first = Parts(tmp_path / "parts", MANIFEST)
    first.open()
    first.write([entry(0)])
    other = Parts(tmp_path / "parts", {**MANIFEST, "degree": 4})
    assert other.open() == set()
    assert list(other.merged()) == []


def test_a_part_is_written_whole_or_not_at_all(tmp_path):
    parts = Parts(tmp_path / "parts", MANIFEST)
    parts.open()
    parts.write([entry(0)])
    # A writer killed mid-part leaves only its temporary file, which no reader looks at.
    (tmp_path / "parts" / "part-0001-000002.jsonl.partial").write_bytes(entry(1)[1][:20])
    again = Parts(tmp_path / "parts", MANIFEST)
    assert again.open() == {0}
    assert [e["index"] for e in again.merged()] == [0]
