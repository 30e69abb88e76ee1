"""Symbolic tasks generated with a seed, in the wording of the Zero-shot-CoT paper's datasets."""

from __future__ import annotations

import random

from rt_ray.tasks.answers import AnswerType
from rt_ray.tasks.base import Sample

NAMES = (
    "Alice Bob Claire Dave Erika Frank Gina Hector Ivy Jamal Kara Liam Maya Noah Olga Pedro Quinn Rosa "
    "Sam Tara Uma Victor Wendy Xavier Yara Zane Abby Brent Celia Dmitri Elsa Felix Greta Hugo Ines Jonas "
    "Keiko Lars Mila Nadia Oscar Petra Rafael Sonia Tomas Ursula Vera Walter Ximena Yusuf Zoe Benjamin "
    "Whitney Sherrie Shaunda Marcus Leah Dolores Kenji Priya Arturo Beatrix Cyrus Delia Emmett Fiona"
).split()


def coin_flip_question(people: list[str], flips: list[bool]) -> str:
    steps = " ".join(
        f"{person} flips the coin." if flipped else f"{person} does not flip the coin."
        for person, flipped in zip(people, flips)
    )
    return f'A coin is heads up. {steps} Is the coin still heads up? Note that "flip" here means "reverse".'


def load_coin_flip(num_examples: int, num_items: int, seed: int) -> list[Sample]:
    rng = random.Random(f"coin_flip/{seed}/{num_items}")
    samples = []
    for index in range(num_examples):
        people = rng.sample(NAMES, num_items)
        flips = [rng.random() < 0.5 for _ in people]
        answer = "yes" if sum(flips) % 2 == 0 else "no"
        samples.append(
            Sample(f"coin_flip-{index}", coin_flip_question(people, flips), answer, AnswerType.YES_NO.value)
        )
    return samples


def last_letter_question(names: list[str]) -> str:
    return f'Take the last letters of each words in "{" ".join(names)}" and concatenate them.'


def load_last_letter(num_examples: int, num_items: int, seed: int) -> list[Sample]:
    rng = random.Random(f"last_letter/{seed}/{num_items}")
    samples = []
    for index in range(num_examples):
        names = rng.sample(NAMES, num_items)
        answer = "".join(name[-1] for name in names)
        samples.append(
            Sample(f"last_letter-{index}", last_letter_question(names), answer, AnswerType.TEXT.value)
        )
    return samples
