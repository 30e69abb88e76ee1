"""The teacher's outputs assembled from parts: question order, the filter, failures and the parquet copy."""

import json

import orjson
import pyarrow.parquet as pq

from rt_ray.teacher.filtering import question_fields
from rt_ray.teacher.parts import Parts, part_entry
from rt_ray.teacher.pipeline import ParquetFromJsonLines, assemble_outputs

ROW = {"answer": "yes", "answer_type": "yes_no", "choices": "[]"}


def question(index: int, correct: list[bool], status: str = "ok") -> tuple[int, bytes]:
    row = {**ROW, "id": f"q{index}", "question": f"Is {index} even? ü"}
    samples = [{"sample_index": i, "rationale": f"r{index}.{i}", "rationale_finish_reason": "stop", "teacher_answer": "",
                "predicted": "yes" if ok else "no", "correct": ok} for i, ok in enumerate(correct)]  # fmt: skip
    return index, part_entry(index, status, "" if status == "ok" else "HTTP 500", correct,
                             orjson.dumps(question_fields(row)), [orjson.dumps(s) for s in samples])  # fmt: skip


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_outputs_come_out_in_question_order_with_the_filter_applied(tmp_path, monkeypatch):
    monkeypatch.setattr(ParquetFromJsonLines, "CHUNK_BYTES", 300)  # several chunks converted in the thread
    parts = Parts(tmp_path / "parts", {"teacher_fingerprint": "f", "degree": 2, "questions": 5})
    parts.open()
    parts.write([question(3, [True, True]), question(0, [True, False])])
    parts.write([question(1, [], status="failed"), question(4, [False, False]), question(2, [False, True])])
    tally = assemble_outputs(parts, tmp_path)

    rationales = read_jsonl(tmp_path / "rationales.jsonl")
    assert [(r["question_id"], r["sample_index"]) for r in rationales] == [
        ("q0", 0), ("q0", 1), ("q2", 0), ("q2", 1), ("q3", 0), ("q3", 1), ("q4", 0), ("q4", 1)]  # fmt: skip
    filtered = read_jsonl(tmp_path / "filtered.jsonl")
    assert [r["rationale"] for r in filtered] == ["r0.0", "r2.1", "r3.0", "r3.1"]
    assert pq.read_table(tmp_path / "filtered.parquet").to_pylist() == [
        {k: r[k] for k in pq.read_schema(tmp_path / "filtered.parquet").names} for r in filtered]  # fmt: skip
    assert [(f["question_id"], f["status"]) for f in read_jsonl(tmp_path / "failures.jsonl")] == [("q1", "failed")]
    assert (tally.rationales, tally.correct, dict(tally.statuses)) == (8, 4, {"ok": 4, "failed": 1})
    # every answered question's two rationales differ and share no word pair
    assert tally.diversity_stats() == {"diversity_questions": 4, "distinct_rationales_per_question": 2.0, "rationale_lexical_diversity": 1.0}
    assert not list(tmp_path.glob("*.partial"))


def test_a_set_with_nothing_kept_still_has_a_parquet_file_with_the_schema(tmp_path):
    parts = Parts(tmp_path / "parts", {"teacher_fingerprint": "f", "degree": 1, "questions": 1})
    parts.open()
    parts.write([question(0, [False])])
    assemble_outputs(parts, tmp_path)
    table = pq.read_table(tmp_path / "filtered.parquet")
    assert table.num_rows == 0 and "rationale" in table.schema.names
