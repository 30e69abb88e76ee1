import dataclasses
import json

import pytest

from rt_ray.config import TaskConfig
from rt_ray.tasks import get_task, load_task_data
from rt_ray.tasks.base import TaskDataError, seeded_split
from rt_ray.tasks.generated import load_coin_flip, load_last_letter
from tests.conftest import TEST_DATA


def test_coin_flip_gold_is_the_parity_of_flips():
    for sample in load_coin_flip(50, 4, seed=0):
        flips = sample.question.count(" flips the coin.")
        assert sample.question.count("flip the coin.") + flips == 4
        assert sample.answer == ("yes" if flips % 2 == 0 else "no")


def test_coin_flip_is_seeded_and_sized():
    assert load_coin_flip(20, 6, seed=1) == load_coin_flip(20, 6, seed=1)
    assert load_coin_flip(20, 6, seed=1) != load_coin_flip(20, 6, seed=2)
    assert all(s.question.count("the coin.") == 6 for s in load_coin_flip(5, 6, seed=0))


def test_last_letter_gold_concatenates_last_letters():
    sample = load_last_letter(1, 4, seed=3)[0]
    words = sample.question.split('"')[1].split()
    assert len(words) == 4
    assert sample.answer == "".join(w[-1] for w in words)


def test_seeded_split_is_stable_and_disjoint():
    samples = load_coin_flip(100, 4, seed=0)
    train, test = seeded_split(samples, 0.7, seed=0)
    assert (len(train), len(test)) == (70, 30)
    assert seeded_split(samples, 0.7, seed=0) == (train, test)
    assert not {s.id for s in train} & {s.id for s in test}
    assert seeded_split(samples, 0.7, seed=1)[0] != train


def test_tracking_shuffled_objects_loads_the_bigbench_file_with_shuffled_choices(bigbench_dir):
    data = load_task_data(TaskConfig(name="tracking_shuffled_objects", bigbench_dir=bigbench_dir))
    assert (len(data.train), len(data.test)) == (525, 225)  # the paper's sizes
    sample = data.train[0]
    assert "\nWhich choice is true? Answer choices: (A) " in sample.question
    assert len(sample.choices) == 3 and sample.answer in "ABC"
    raw = json.loads((bigbench_dir / "tracking_shuffled_objects_three.json").read_text())["examples"]
    index = int(sample.id.rsplit("-", 1)[1])
    right = next(text for text, score in raw[index]["target_scores"].items() if score == 1)
    assert sample.choices["ABC".index(sample.answer)] == right.rstrip(".")


def test_date_understanding_and_strategy_qa_sizes_match_the_paper(bigbench_dir):
    date = load_task_data(TaskConfig(name="date_understanding", bigbench_dir=bigbench_dir))
    assert (len(date.train), len(date.test)) == (258, 111)
    assert all(s.answer in "ABCDEF"[: len(s.choices)] and 2 <= len(s.choices) <= 6 for s in date.train)
    strategy = load_task_data(TaskConfig(name="strategy_qa", bigbench_dir=bigbench_dir))
    assert (len(strategy.train), len(strategy.test)) == (1603, 687)
    assert {s.answer for s in strategy.train} == {"yes", "no"}


def test_missing_bigbench_file_names_the_path(tmp_path):
    with pytest.raises(TaskDataError, match="task.bigbench_dir"):
        load_task_data(TaskConfig(name="strategy_qa", bigbench_dir=tmp_path))


@pytest.mark.parametrize(
    "task, first_answer, answer_type",
    [("gsm8k", "72", "number"), ("svamp", "8", "number"), ("multiarith", "5", "number"),
     ("addsub", "9", "number"), ("single_eq", "18.5", "number"), ("aqua", "C", "choice"),
     ("commonsense_qa", "A", "choice")],
)  # fmt: skip
def test_file_tasks_load_with_their_field_mapping(task, first_answer, answer_type):
    data = load_task_data(TaskConfig(name=task, data_dir=TEST_DATA, train_ratio=0.5))
    everything = data.train + data.test
    first = min(everything, key=lambda s: int(s.id.rsplit("-", 1)[1]))
    assert first.answer == first_answer
    assert first.answer_type == answer_type
    assert first.question and "Answer choices: (A)" in first.question if answer_type == "choice" else True


def test_gsm8k_keeps_its_own_split():
    data = load_task_data(TaskConfig(name="gsm8k", data_dir=TEST_DATA))
    assert [s.id for s in data.test] == ["gsm8k-2"]


def test_field_map_overrides_a_field_name_and_reports_a_missing_one(tmp_path):
    (tmp_path / "svamp").mkdir()
    (tmp_path / "svamp" / "SVAMP.json").write_text(json.dumps([{"Body": "b", "Ask": "q?", "Answer": 3}] * 4))
    data = load_task_data(TaskConfig(name="svamp", data_dir=tmp_path, fields={"question": "Ask"}))
    assert data.train[0].question == "b q?"
    with pytest.raises(TaskDataError, match="no field 'Question'"):
        load_task_data(TaskConfig(name="svamp", data_dir=tmp_path))


def test_missing_dataset_file_names_the_file_and_the_key(tmp_path):
    with pytest.raises(TaskDataError, match=r"gsm8k/train.jsonl.*task.data_dir"):
        load_task_data(TaskConfig(name="gsm8k", data_dir=tmp_path))


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(TaskDataError, match="coin_flip"):
        get_task("coin_flipz")


def test_task_parse_and_judge_round_trip():
    task = get_task("last_letter_concatenation")
    assert task.judge(task.parse(' "ea".'), "ea")
    assert task.judge(task.parse(" e then a --> ea", prefix="-->"), "ea")
    assert not task.judge(task.parse(" e then a --> ae", prefix="-->"), "ea")


def test_a_samples_row_holds_every_field_and_reads_back():
    sample = load_coin_flip(1, 4, seed=0)[0]
    assert set(sample.to_row()) == {f.name for f in dataclasses.fields(sample)}
    assert sample.from_row(sample.to_row()) == sample


@pytest.mark.parametrize("name", ["date_understanding", "tracking_shuffled_objects", "strategy_qa"])
def test_the_papers_bigbench_tasks_load_by_default_from_the_files_the_package_ships(name):
    data = load_task_data(TaskConfig(name=name))  # no bigbench_dir: a user's clone has no ../shared
    assert len(data.train) > 100 and len(data.test) > 40
