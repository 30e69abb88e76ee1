"""What every task provides: samples with gold answers, a seeded split, and answer judging."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from typing import Callable

from rt_ray.errors import UserError
from rt_ray.tasks.answers import CHOICE_LETTERS, AnswerType, extract_answer, is_correct


class TaskDataError(UserError, ValueError):
    """A task's data cannot be loaded; the message names the file or field."""


@dataclass(frozen=True)
class Sample:
    id: str
    question: str
    answer: str
    answer_type: str
    choices: list[str] = field(default_factory=list)

    def to_row(self) -> dict:
        # Not dataclasses.asdict (deep copies: 18 us a sample, 1.8 s of a 100k-question teacher run).
        # Ray Data and Parquet handle a JSON string more predictably than ragged lists.
        return {"id": self.id, "question": self.question, "answer": self.answer, "answer_type": self.answer_type,
                "choices": json.dumps(self.choices)}  # fmt: skip

    @staticmethod
    def from_row(row: dict) -> "Sample":
        choices = row.get("choices") or "[]"
        return Sample(
            id=str(row["id"]),
            question=str(row["question"]),
            answer=str(row["answer"]),
            answer_type=str(row["answer_type"]),
            choices=json.loads(choices) if isinstance(choices, str) else list(choices),
        )


@dataclass
class TaskData:
    train: list[Sample]
    test: list[Sample]
    instructions: str = ""  # what a custom task's file says the teacher is to be told (a chat file's system message)
    notes: list[str] = field(default_factory=list)  # what reading the data found (rows read, kept, dropped)

    def fingerprint(self) -> str:
        """A hash of the questions and answers themselves, wherever they were read from: an edited
        row makes a new task, the same file reached by another path the same one."""
        digest = hashlib.sha256(self.instructions.encode())
        for split in (self.train, self.test):
            for sample in split:
                digest.update(json.dumps(sample.to_row(), sort_keys=True).encode())
            digest.update(b"|")
        return digest.hexdigest()[:12]


@dataclass(frozen=True)
class Task:
    name: str
    answer_type: AnswerType
    # Returns every sample, or (train, test) for tasks that ship their own split.
    load: Callable[..., list[Sample] | tuple[list[Sample], list[Sample]]]
    description: str = ""

    def parse(self, text: str, prefix: str | None = None, choices: list[str] | None = None) -> str | None:
        return extract_answer(text, self.answer_type, prefix=prefix, choices=choices)

    def judge(self, predicted: str | None, gold: str) -> bool:
        return is_correct(predicted, gold, self.answer_type)


def seeded_split(samples: list[Sample], train_ratio: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """The paper's split: a seeded permutation, the first ``train_ratio`` share for training."""
    order = list(range(len(samples)))
    random.Random(seed).shuffle(order)
    cut = int(round(len(samples) * train_ratio))
    return [samples[i] for i in order[:cut]], [samples[i] for i in order[cut:]]


def format_choices(question: str, choices: list[str]) -> str:
    listed = ", ".join(f"({letter}) {text}" for letter, text in zip(CHOICE_LETTERS, choices))
    return f"{question} Answer choices: {listed}."
