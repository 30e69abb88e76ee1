"""The simulator's answer key: any custom task answered offline from the task's own file.

    key = AnswerKey.read(["data/tickets.jsonl"], "number", {"question": "q", "answer": "a"})
    key.rationales(question, 4, rng, wrong_rate=0.2)    # worked solution (varied), or a templated one

A row with a worked solution gets that solution back, its connectives varied across the D samples,
ending in the gold answer; a row without one gets a short templated rationale. With probability
``wrong_rate`` a rationale ends in a wrong answer of the right type instead, as a real teacher's
sometimes does. The file is read with the custom task's own reader, so the questions match the
prompts the teacher stage sends, character for character.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from rt_ray.tasks.answers import CHOICE_LETTERS
from rt_ray.tasks.custom import read_custom

# Connectives a worked solution may use, each with wordings that say the same.
_CONNECTIVES = [
    ("So ", ("So ", "Thus ", "Hence ")),
    ("Then ", ("Then ", "Next, ", "After that, ")),
    ("First, ", ("First, ", "To begin, ", "Start with this: ")),
]
_OPENERS = ("", "Let's work through it. ", "We go step by step. ", "Reading the question carefully: ")
_TEMPLATES = (
    "The question asks for one thing; taking its facts in order, it comes to {answer}.",
    "Putting the facts of the question together gives {answer}.",
    "Weighing what the question states, the result is {answer}.",
)


@dataclass(frozen=True)
class KeyEntry:
    answer: str
    answer_type: str
    choices: tuple[str, ...]
    solution: str | None


class AnswerKey:
    def __init__(self, entries: dict[str, KeyEntry]):
        self.entries = entries

    @classmethod
    def read(cls, paths: list[str], answer_type: str, fields: dict[str, str]) -> "AnswerKey":
        entries: dict[str, KeyEntry] = {}
        for path in paths:
            rows = read_custom(path, answer_type, fields, "key")
            for sample in rows.samples:
                entries[sample.question] = KeyEntry(sample.answer, answer_type, tuple(sample.choices), rows.rationales.get(sample.question))
        return cls(entries)

    def get(self, question: str) -> KeyEntry | None:
        return self.entries.get(question)

    def rationale(self, entry: KeyEntry, rng: random.Random, wrong_rate: float) -> str:
        answer = wrong_answer(entry, rng) if rng.random() < wrong_rate else entry.answer
        body = vary(entry.solution, rng) if entry.solution else rng.choice(_TEMPLATES).format(answer=spoken(answer, entry))
        return f" {rng.choice(_OPENERS)}{body} So the answer is {spoken(answer, entry)}."

    def rationales(self, entry: KeyEntry, n: int, rng: random.Random, wrong_rate: float) -> list[str]:
        texts: list[str] = []
        for _ in range(n):
            text = self.rationale(entry, rng, wrong_rate)
            for _ in range(10):  # distinct while the wording allows
                if text not in texts:
                    break
                text = self.rationale(entry, rng, wrong_rate)
            texts.append(text)
        return texts


def vary(solution: str, rng: random.Random) -> str:
    """The worked solution with its connectives reworded at random (the steps and numbers unchanged)."""
    text = solution.strip()
    for original, wordings in _CONNECTIVES:
        text = re.sub(rf"(?<![A-Za-z]){re.escape(original)}", lambda _: rng.choice(wordings), text)
    return text if text.endswith((".", "!", "?")) else f"{text}."


def spoken(answer: str, entry: KeyEntry) -> str:
    if entry.answer_type == "choice":
        index = CHOICE_LETTERS.index(answer)
        return f"({answer}) {entry.choices[index]}" if index < len(entry.choices) else f"({answer})"
    if entry.answer_type == "text":
        return f'"{answer}"'
    return answer


def wrong_answer(entry: KeyEntry, rng: random.Random) -> str:
    """An answer of the entry's type that is not its gold one."""
    if entry.answer_type == "number":
        value = float(entry.answer)
        wrong = value + rng.choice([-1, 1]) * rng.randint(1, max(2, int(abs(value) * 0.5) or 2))
        return str(int(wrong)) if wrong.is_integer() else f"{wrong:g}"
    if entry.answer_type == "yes_no":
        return "no" if entry.answer == "yes" else "yes"
    if entry.answer_type == "choice":
        others = [letter for letter in CHOICE_LETTERS[: len(entry.choices)] if letter != entry.answer]
        return rng.choice(others)
    return entry.answer[::-1] if entry.answer[::-1] != entry.answer else f"{entry.answer}x"
