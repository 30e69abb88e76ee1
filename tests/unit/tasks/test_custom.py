"""A custom task: the team's own file read, every row checked, in each format and answer type."""

import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rt_ray.config import ConfigError, TaskConfig, parse_config
from rt_ray.tasks import load_task_data
from rt_ray.tasks.answers import extract_answer, is_correct
from rt_ray.tasks.base import TaskDataError
from rt_ray.tasks.custom import gold_answer, read_custom
from rt_ray.prompts import ANSWER_TRIGGERS_BY_TYPE, prompt_style
from rt_ray.simulator.answer_key import AnswerKey, KeyEntry, vary, wrong_answer
from rt_ray.simulator.solvers import complete, read_prompt


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def custom(path, answer_type="number", **more) -> TaskConfig:
    return TaskConfig(name="custom", path=path, answer_type=answer_type, **more)


@pytest.mark.parametrize(("raw", "answer_type", "choices", "gold"), [
    ("1,234", "number", [], "1234"), ("-3.50", "number", [], "-3.5"), ("$12", "number", [], "12"), ("12 apples", "number", [], None),
    ("Yes", "yes_no", [], "yes"), ("false", "yes_no", [], "no"), ("maybe", "yes_no", [], None),
    ("b", "choice", ["red", "blue"], "B"), ("(A)", "choice", ["red", "blue"], "A"), ("Blue", "choice", ["red", "blue"], "B"),
    ("C", "choice", ["red", "blue"], None), ("green", "choice", ["red", "blue"], None),
    ("Paris.", "text", [], "Paris"), ("New York", "text", [], None),
])  # fmt: skip
def test_a_gold_answer_is_read_by_its_type_or_refused(raw, answer_type, choices, gold):
    assert gold_answer(raw, answer_type, choices)[0] == gold


def test_every_problem_is_one_line_naming_file_line_and_field_and_no_sample_comes_back(tmp_path):
    path = tmp_path / "q.jsonl"
    rows = [{"q": "How many legs have 2 cats?", "a": "8"}, {"q": "", "a": "1"}, {"q": "Apples?", "a": "12 apples"}, {"a": "3"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{not json\n")
    with pytest.raises(TaskDataError) as raised:
        read_custom(path, "number", {"question": "q", "answer": "a"}, "all")
    lines = str(raised.value).splitlines()
    assert lines[0] == f"4 problems in {path}; no teacher request was sent:"
    assert lines[1:] == [
        f"{path} line 2: question is empty",
        f"{path} line 3: answer '12 apples' is not a number (task.answer_type: number)",
        f"{path} line 4: no field 'q' (task.fields maps question and answer to columns)",
        f"{path} line 5: not valid JSON (Expecting property name enclosed in double quotes)",
    ]


def test_more_than_twenty_problems_show_twenty_and_a_count(tmp_path):
    path = write_jsonl(tmp_path / "q.jsonl", [{"question": f"q{i}", "answer": "x"} for i in range(25)])
    with pytest.raises(TaskDataError) as raised:
        read_custom(path, "number", {}, "all")
    lines = str(raised.value).splitlines()
    assert len(lines) == 1 + 20 + 1 and lines[-1] == "... and 5 more problems"


def test_duplicates_are_dropped_and_the_summary_says_how_many(tmp_path):
    path = write_jsonl(tmp_path / "q.jsonl", [{"question": "2+2?", "answer": "4"}] * 3 + [{"question": "3+3?", "answer": "6"}])
    data = load_task_data(custom(path, train_ratio=0.5))
    assert sorted(s.question for s in data.train + data.test) == ["2+2?", "3+3?"]
    assert data.notes == [f"task file {path}: 4 rows read, 2 kept, dropped: 2 duplicate questions"]


def test_csv_choice_rows_with_context_and_a_json_list_of_choices(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text('passage,ask,options,key\nTom has a red hat.,What colour is the hat?,"[""red"", ""blue""]",red\n'
                    'Sky.,What colour is the sky?,green | blue,B\n')  # fmt: skip
    rows = read_custom(path, "choice", {"question": "ask", "answer": "key", "choices": "options", "context": "passage"}, "all")
    first, second = rows.samples
    assert first.question == "Tom has a red hat. What colour is the hat? Answer choices: (A) red, (B) blue."
    assert (first.answer, first.choices, second.answer, second.choices) == ("A", ["red", "blue"], "B", ["green", "blue"])


def test_parquet_and_a_json_array_read_as_jsonl_does(tmp_path):
    records = [{"question": "1+1?", "answer": 2}, {"question": "2+5?", "answer": 7.0}]
    pq.write_table(pa.Table.from_pylist(records), tmp_path / "q.parquet")
    (tmp_path / "q.json").write_text(json.dumps(records))
    for name in ("q.parquet", "q.json"):
        assert [(s.question, s.answer) for s in read_custom(tmp_path / name, "number", {}, "all").samples] == [("1+1?", "2"), ("2+5?", "7")]


def test_openai_chat_lines_give_instructions_question_answer_and_a_worked_solution(tmp_path):
    def chat(question, answer):
        return {"messages": [{"role": "system", "content": "You are a careful clerk."}, {"role": "user", "content": question},
                             {"role": "assistant", "content": answer}]}  # fmt: skip

    path = write_jsonl(tmp_path / "chat.jsonl", [chat("3 boxes of 4 pens?", "Each box has 4, so 3 boxes hold 12."), chat("2+2?", "4")])
    rows = read_custom(path, "number", {}, "all")
    assert rows.instructions == "You are a careful clerk."
    assert [(s.question, s.answer) for s in rows.samples] == [("3 boxes of 4 pens?", "12"), ("2+2?", "4")]
    assert rows.rationales == {"3 boxes of 4 pens?": "Each box has 4, so 3 boxes hold 12."}


def test_a_test_file_is_the_test_split_and_an_edited_row_changes_the_fingerprint(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", [{"question": f"{i}+1?", "answer": str(i + 1)} for i in range(5)])
    test = write_jsonl(tmp_path / "test.jsonl", [{"question": "9+1?", "answer": "10"}])
    data = load_task_data(custom(train, test_path=test))
    assert len(data.train) == 5 and [s.question for s in data.test] == ["9+1?"]
    overlapping = write_jsonl(tmp_path / "overlap.jsonl", [{"question": "9+1?", "answer": "10"}, {"question": "0+1?", "answer": "1"}])
    held = load_task_data(custom(train, test_path=overlapping))
    assert [s.question for s in held.train] == [f"{i}+1?" for i in range(1, 5)] and "1 training questions are also in" in held.notes[-1]
    before = data.fingerprint()
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    (moved / "train.jsonl").write_bytes(train.read_bytes())
    assert load_task_data(custom(moved / "train.jsonl", test_path=test)).fingerprint() == before, "the same rows from another path"
    write_jsonl(train, [{"question": f"{i}+1?", "answer": str(i + 1 if i else 7)} for i in range(5)])
    assert load_task_data(custom(train, test_path=test)).fingerprint() != before


def test_a_custom_task_without_path_or_type_and_custom_keys_on_another_task_are_one_line_each():
    for tree, needle in (({"name": "custom", "answer_type": "number"}, "task.name custom needs task.path"),
                         ({"name": "custom", "path": "q.jsonl"}, "task.name custom needs task.answer_type"),
                         ({"name": "coin_flip", "path": "q.jsonl"}, "task.path is for task.name custom")):  # fmt: skip
        with pytest.raises(ConfigError, match=needle) as raised:
            parse_config({"task": tree})
        assert "\n" not in str(raised.value) and "Value error" not in str(raised.value)


def test_the_teacher_asks_for_a_custom_answer_by_its_type_after_the_instructions():
    style = prompt_style(TaskConfig(name="custom", path="q.jsonl", answer_type="number", instructions="Be brief."))
    prompt = style.answer("2+2?", " Two and two make four.")
    assert prompt.startswith("Be brief.\n\nQ: 2+2?\nA: Let's think step by step.")
    assert prompt.endswith(ANSWER_TRIGGERS_BY_TYPE["number"])
    step = read_prompt(prompt)
    assert (step.kind, step.question, step.rationale) == ("answer", "2+2?", " Two and two make four.")
    assert prompt_style(TaskConfig(name="coin_flip")).answer("q", " r").endswith("\nTherefore, the answer is")


def test_the_answer_key_returns_worked_solutions_varied_and_ending_in_gold_or_a_wrong_answer_of_the_type(tmp_path):
    path = write_jsonl(tmp_path / "q.jsonl", [{"question": "3 boxes of 4 pens?", "answer": "12",
                                               "solution": "First, each box has 4 pens. So 3 boxes hold 3 * 4 = 12 pens."},
                                              {"question": "2+2?", "answer": "4"}])  # fmt: skip
    key = AnswerKey.read([str(path)], "number", {"rationale": "solution"})
    style = prompt_style(TaskConfig(name="custom", path=path, answer_type="number"))
    rationales = complete(style.rationale("3 boxes of 4 pens?"), 8, random.Random(0), 0.0, key)
    assert len(set(rationales)) > 1 and all("3 * 4 = 12 pens" in r for r in rationales)
    assert all(is_correct(extract_answer(r, "number", "answer is"), "12", "number") for r in rationales)
    templated = complete(style.rationale("2+2?"), 4, random.Random(0), 1.0, key)
    assert not any(is_correct(extract_answer(r, "number", "answer is"), "4", "number") for r in templated)
    stated = complete(style.answer("2+2?", templated[0]), 1, random.Random(0), 0.0, key)[0]
    assert extract_answer(stated, "number") == extract_answer(templated[0], "number", "answer is")


@pytest.mark.parametrize("entry", [KeyEntry("7", "number", (), None), KeyEntry("yes", "yes_no", (), None),
                                   KeyEntry("B", "choice", ("x", "y", "z"), None), KeyEntry("abc", "text", (), None)])  # fmt: skip
def test_a_wrong_answer_is_of_the_type_and_never_the_gold(entry):
    for seed in range(20):
        wrong = wrong_answer(entry, random.Random(seed))
        assert wrong != entry.answer and gold_answer(wrong, entry.answer_type, list(entry.choices))[0] == wrong


def test_varying_a_solution_keeps_its_numbers():
    text = "First, take 3. Then add 4. So it is 7"
    for seed in range(5):
        varied = vary(text, random.Random(seed))
        assert [c for c in varied if c.isdigit()] == ["3", "4", "7"] and varied.endswith(".")


def test_a_chat_teacher_gets_a_custom_tasks_instructions_as_the_system_message_and_the_papers_prompts_as_they_were():
    from rt_ray.config import TeacherConfig
    from rt_ray.prompts import chat_messages, rationale_prompt
    from rt_ray.teacher.batch_files import BatchLine

    style = prompt_style(TaskConfig(name="custom", path="q.jsonl", answer_type="number", instructions="Be brief.\n\nUse digits."))
    prompt = style.rationale("2+2?")
    assert chat_messages(prompt) == [{"role": "system", "content": "Be brief.\n\nUse digits."},
                                     {"role": "user", "content": "Q: 2+2?\nA: Let's think step by step."}]  # fmt: skip
    paper = rationale_prompt("A question.\n\nQ: with a Q inside?")
    assert chat_messages(paper) == [{"role": "user", "content": paper}]
    line = BatchLine("id", (prompt,), 1, 0.0, 16, ("key",))
    assert line.request(TeacherConfig(api="chat"))["body"]["messages"] == chat_messages(prompt)
