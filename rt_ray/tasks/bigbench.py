"""BIG-bench task files (``task.json``): date understanding, shuffled objects, StrategyQA."""

from __future__ import annotations

import json
import random
from pathlib import Path

from rt_ray.tasks.answers import CHOICE_LETTERS, AnswerType
from rt_ray.tasks.base import Sample, TaskDataError, format_choices

BIGBENCH_FILES = {
    "date_understanding": "date_understanding.json",
    "tracking_shuffled_objects": "tracking_shuffled_objects_three.json",
    "strategy_qa": "strategyqa.json",
}


def read_bigbench_examples(path: Path) -> list[dict]:
    if not path.is_file():
        raise TaskDataError(f"BIG-bench file not found: {path} (set task.bigbench_dir)")
    try:
        examples = json.loads(path.read_text())["examples"]
    except (json.JSONDecodeError, KeyError) as err:
        raise TaskDataError(f"{path} is not a BIG-bench task file: {err}") from None
    for index, example in enumerate(examples):
        if "input" not in example or "target_scores" not in example:
            raise TaskDataError(f"{path}: example {index} lacks 'input' or 'target_scores'")
    return examples


def load_bigbench_choice(task: str, bigbench_dir: Path, seed: int = 0) -> list[Sample]:
    """Multiple choice, as the paper writes it: the question, "Which choice is true?", shuffled choices."""
    path = Path(bigbench_dir) / BIGBENCH_FILES[task]
    samples = []
    for index, example in enumerate(read_bigbench_examples(path)):
        options = list(example["target_scores"].items())
        random.Random(f"{task}/{seed}/{index}").shuffle(options)
        choices = [text.strip().rstrip(".") for text, _ in options]
        gold = next(CHOICE_LETTERS[i] for i, (_, score) in enumerate(options) if score == 1)
        question = format_choices(example["input"].strip() + "\nWhich choice is true?", choices)
        samples.append(Sample(f"{task}-{index}", question, gold, AnswerType.CHOICE.value, choices))
    return samples


def load_bigbench_yes_no(task: str, bigbench_dir: Path) -> list[Sample]:
    path = Path(bigbench_dir) / BIGBENCH_FILES[task]
    samples = []
    for index, example in enumerate(read_bigbench_examples(path)):
        gold = next(text for text, score in example["target_scores"].items() if score == 1)
        samples.append(Sample(f"{task}-{index}", example["input"].strip(), gold.lower(), AnswerType.YES_NO.value))
    return samples
