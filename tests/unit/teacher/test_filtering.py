import json

import orjson

from rt_ray.teacher.accounting import CallStats
from rt_ray.teacher.filtering import Tally, rationale_diversity, keep_correct, question_fields, record_line, sample_records

ROW = {"id": "q1", "question": "Q?", "answer": "yes", "answer_type": "yes_no", "choices": "[]"}


def outcome(*correct, status="ok"):
    return {"status": status, "error": "", "samples": [
        {"sample_index": i, "rationale": f"r{i}", "predicted": "yes" if c else "no", "correct": c}
        for i, c in enumerate(correct)]}  # fmt: skip


def test_each_sample_is_judged_on_its_own_and_duplicates_are_kept():
    records = sample_records(ROW, outcome(True, False, True))
    assert [r["sample_index"] for r in keep_correct(records)] == [0, 2]
    assert all(r["question_id"] == "q1" and r["answer"] == "yes" for r in records)


def test_a_record_line_is_the_records_json_from_its_questions_and_samples():
    row = ROW | {"question": 'He said "no" \u00e9\nthen left', "choices": '["a", "b"]'}
    o = outcome(True, False)
    lines = [record_line(orjson.dumps(question_fields(row)), orjson.dumps(s)) for s in o["samples"]]
    assert lines == [orjson.dumps(r) for r in sample_records(row, o)]
    assert [json.loads(line) for line in lines] == sample_records(row, o)
    assert all(b"\n" not in line for line in lines), "one record a line"


def test_summary_counts_yield_cost_and_status():
    outcomes = [outcome(True, False), outcome(True, True), outcome(status="failed")]
    tally = Tally()
    for o in outcomes:
        records = sample_records(ROW | {"id": str(id(o))}, o)
        tally.add_question(o["status"], len(records), len(keep_correct(records)))
    totals = CallStats(requests=7, cache_hits=2, cost_usd=0.3)
    stats = tally.stats(totals, degree=2, wall_s=1.0)
    assert stats["status"] == "complete_with_failures"
    assert (stats["rationales"], stats["rationales_kept"], stats["questions_failed"]) == (4, 3, 1)
    assert stats["teacher_accuracy"] == 0.75
    assert stats["yield_per_question"] == 1.5
    assert stats["cost_per_kept_rationale_usd"] == 0.1
    assert stats["kept_per_question_histogram"] == {1: 1, 2: 1}


def test_a_budget_stop_is_not_a_finished_run():
    tally = Tally()
    tally.add_question("budget", 0, 0)
    stats = tally.stats(CallStats(), degree=1, wall_s=0.0)
    assert stats["status"] == "stopped_budget"


def test_rationale_diversity_counts_distinct_texts_and_the_mean_pairwise_bigram_distance():
    same = "Alice flips the coin. So it is tails."
    assert rationale_diversity([same, same.upper() + " "]) == (1, 0.0)
    # "a b c" -> {ab, bc}; "a b d" -> {ab, bd}: Jaccard 1/3, distance 2/3; with a third copy of the
    # first: pairs (1,2) 2/3, (1,3) 0, (2,3) 2/3 -> mean 4/9
    distinct, lexical = rationale_diversity(["a b c", "a b d", "a b c"])
    assert distinct == 2 and abs(lexical - 4 / 9) < 1e-12
    tally = Tally()
    tally.add_rationales(["only one"])  # a single rationale says nothing about diversity
    assert tally.diversity_stats() == {}
