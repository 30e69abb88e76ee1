"""What the teacher simulator writes: step-by-step rationales for the tasks it can solve.

Pure functions: given a Zero-shot-CoT prompt and a random generator, return a rationale in varied
wording (step 1), or the answer a rationale reached (step 2). With probability ``wrong_rate`` a
rationale makes a mistake inside its reasoning and so reaches a wrong answer, as a real teacher does.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from rt_ray.tasks.answers import CHOICE_LETTERS, extract_answer
from rt_ray.simulator.answer_key import AnswerKey
from rt_ray.prompts import ANSWER_TRIGGERS, INSTRUCTIONS_END, RATIONALE_TRIGGER

_COIN = re.compile(r"A coin is heads up\. (.*) Is the coin still heads up\?", re.S)
_COIN_STEP = re.compile(r"(\w+) (flips|does not flip) the coin\.")
_LETTERS = re.compile(r'Take the last letters of each words in "([^"]+)" and concatenate them\.')
_CHOICES = re.compile(r"\(([A-J])\) (.*?)(?=, \([A-J]\) |\.?$)")
_PLAYERS = ("Alice", "Bob", "Claire")


@dataclass(frozen=True)
class Step:
    """Which of the two Zero-shot-CoT calls a prompt is, and its parts."""

    kind: str  # "rationale" | "answer" | "other"
    question: str
    rationale: str = ""


def read_prompt(prompt: str) -> Step:
    trigger = next((t for t in ANSWER_TRIGGERS if prompt.rstrip().endswith(t)), None)
    if trigger is not None and RATIONALE_TRIGGER in prompt:
        head, rest = prompt.split(RATIONALE_TRIGGER, 1)
        rationale = rest.rsplit(trigger, 1)[0].removesuffix("\n")
        return Step("answer", _question_of(head), rationale)
    if prompt.rstrip().endswith(RATIONALE_TRIGGER):
        return Step("rationale", _question_of(prompt.rsplit(RATIONALE_TRIGGER, 1)[0]))
    return Step("other", prompt)


def _question_of(head: str) -> str:
    head = head.strip()
    if f"{INSTRUCTIONS_END}Q:" in head:  # a custom task's instructions come first
        head = head.split(f"{INSTRUCTIONS_END}Q:", 1)[1]
    elif head.startswith("Q:"):
        head = head[2:]
    if head.endswith("A:"):
        head = head[:-2]
    return head.strip()


def answer_type_of(question: str) -> str:
    if "Answer choices:" in question:
        return "choice"
    if _LETTERS.search(question):
        return "text"
    if _COIN.search(question) or re.match(r"^(Is|Are|Does|Do|Did|Can|Could|Would|Will|Was|Were|Has|Have)\b", question):
        return "yes_no"
    return "number"


def choices_of(question: str) -> list[str]:
    listed = question.split("Answer choices:", 1)[1].strip() if "Answer choices:" in question else ""
    return [text for _, text in _CHOICES.findall(listed)]


# --- coin flip ---------------------------------------------------------------------------------

_START = ["The coin starts heads up.", "At the start, the coin is heads up.", "We begin with the coin heads up."]
_FLIP = [
    "{name} flips the coin, so it is now {side} up.",
    "{name} flips it. Now the coin is {side} up.",
    "After {name} flips the coin, it shows {side}.",
]
_KEEP = [
    "{name} does not flip the coin, so it stays {side} up.",
    "{name} leaves the coin alone; it is still {side} up.",
    "{name} does not flip it, so the coin remains {side} up.",
]


def coin_rationale(question: str, rng: random.Random, wrong: bool) -> str | None:
    match = _COIN.search(question)
    if not match:
        return None
    steps = _COIN_STEP.findall(match.group(1))
    mistake = rng.randrange(len(steps)) if wrong and steps else -1
    heads = True
    lines = [rng.choice(_START)]
    for index, (name, verb) in enumerate(steps):
        flipped = (verb == "flips") != (index == mistake)  # the mistake misreads one step
        heads = heads != flipped
        template = rng.choice(_FLIP if flipped else _KEEP)
        lines.append(template.format(name=name, side="heads" if heads else "tails"))
    final = "yes" if heads else "no"
    closing = rng.choice(["So the answer is {a}.", "The coin ends {side} up, so the answer is {a}."])
    lines.append(closing.format(a=final, side="heads" if heads else "tails"))
    return " " + " ".join(lines)


# --- last letter concatenation -----------------------------------------------------------------

_LETTER_STEP = [
    'The last letter of "{w}" is "{c}".',
    '"{w}" ends with "{c}".',
    'The word "{w}" ends in "{c}".',
]


def _misread(letter: str) -> str:
    """A neighbouring letter: a mistake that always changes the answer."""
    base = ord("a") if letter.islower() else ord("A")
    return chr(base + (ord(letter) - base + 1) % 26) if letter.isalpha() else "x"


def last_letter_rationale(question: str, rng: random.Random, wrong: bool) -> str | None:
    match = _LETTERS.search(question)
    if not match:
        return None
    words = match.group(1).split()
    mistake = rng.randrange(len(words)) if wrong and words else -1
    letters = []
    lines = []
    for index, word in enumerate(words):
        letter = _misread(word[-1]) if index == mistake else word[-1]
        letters.append(letter)
        lines.append(rng.choice(_LETTER_STEP).format(w=word, c=letter))
    answer = "".join(letters)
    closing = rng.choice(['Putting them together gives "{a}".', 'Concatenating them, we get "{a}".'])
    return " " + " ".join(lines + [closing.format(a=answer), f'So the answer is "{answer}".'])


# --- tracking shuffled objects -----------------------------------------------------------------

_SWAP_WORDS = ("swap", "trade", "switch")
_SWAP_LINE = [
    "{a} and {b} swap, so {a} has {x} and {b} has {y}.",
    "After {a} and {b} trade, {a} holds {x} while {b} holds {y}.",
    "{a} and {b} switch: now {a} has {x}, and {b} has {y}.",
]


def _initial_items(question: str, choices: list[str]) -> dict[str, str] | None:
    opening = question.split(":", 1)[1].split("\n", 1)[0] if ":" in question else ""
    starts = sorted((opening.find(f"{name} "), name) for name in _PLAYERS)
    if any(start < 0 for start, _ in starts):
        return None
    holders = {}
    for (start, name), (end, _) in zip(starts, starts[1:] + [(len(opening), "")]):
        clause = opening[start:end]
        item = next((choice for choice in choices if choice and choice in clause), None)
        if item is None:
            return None
        holders[name] = item
    return holders


def shuffled_objects_rationale(question: str, rng: random.Random, wrong: bool) -> str | None:
    if not all(name in question for name in _PLAYERS) or not any(w in question for w in _SWAP_WORDS):
        return None
    choices = choices_of(question)
    holders = _initial_items(question, choices)
    if holders is None:
        return None
    swaps = []
    for sentence in re.findall(r"(?:First|Then|Finally), ([^.]*)\.", question):
        pair = [name for name in re.findall(r"\b(Alice|Bob|Claire)\b", sentence)]
        if len(pair) == 2:
            swaps.append(pair)
    target = re.findall(r"\b(Alice|Bob|Claire)\b", question.split("At the end", 1)[-1])
    if not swaps or not target:
        return None
    mistake = rng.randrange(len(swaps)) if wrong else -1
    lines = [
        rng.choice(["At the start, ", "Initially, "])
        + ", ".join(f"{name} has {item}" for name, item in holders.items())
        + "."
    ]
    for index, (a, b) in enumerate(swaps):
        if index != mistake:  # the mistake forgets one swap
            holders[a], holders[b] = holders[b], holders[a]
        lines.append(rng.choice(_SWAP_LINE).format(a=a, b=b, x=holders[a], y=holders[b]))
    final = holders[target[0]]
    if wrong and final == _correct_final(question, choices, swaps, target[0]):
        final = next(choice for choice in choices if choice != final)
    letter = CHOICE_LETTERS[choices.index(final)]
    lines.append(f"At the end, {target[0]} has {final}, which is choice ({letter}).")
    return " " + " ".join(lines)


def _correct_final(question: str, choices: list[str], swaps: list[list[str]], who: str) -> str:
    holders = _initial_items(question, choices) or {}
    for a, b in swaps:
        holders[a], holders[b] = holders[b], holders[a]
    return holders.get(who, "")


# --- everything else ---------------------------------------------------------------------------


def guess_rationale(question: str, rng: random.Random) -> str:
    """A task the simulator cannot solve: a plausible-looking rationale with a guessed answer."""
    kind = answer_type_of(question)
    if kind == "choice":
        choices = choices_of(question) or ["", "", ""]
        guess = f"({rng.choice(CHOICE_LETTERS[: len(choices)])})"
    elif kind == "yes_no":
        guess = rng.choice(["yes", "no"])
    else:
        guess = str(rng.randint(0, 100))
    opener = rng.choice(["Let me work through the facts.", "First, consider what is asked.", "We need to reason carefully."])
    return f" {opener} Weighing the details, the most likely answer is {guess}."


SOLVERS = (coin_rationale, last_letter_rationale, shuffled_objects_rationale)


def write_rationale(question: str, rng: random.Random, wrong_rate: float) -> str:
    wrong = rng.random() < wrong_rate
    for solver in SOLVERS:
        rationale = solver(question, rng, wrong)
        if rationale is not None:
            return rationale
    return guess_rationale(question, rng)


def write_rationales(question: str, n: int, rng: random.Random, wrong_rate: float) -> list[str]:
    """``n`` rationales, distinct from each other while the wording allows."""
    rationales: list[str] = []
    for _ in range(n):
        candidate = write_rationale(question, rng, wrong_rate)
        for _ in range(30):
            if candidate not in rationales:
                break
            candidate = write_rationale(question, rng, wrong_rate)
        rationales.append(candidate)
    return rationales


def state_answer(question: str, rationale: str, key: AnswerKey | None = None) -> str:
    """Step 2: read off the answer the rationale reached, in the teacher's usual phrasing."""
    entry = key.get(question) if key is not None else None
    kind = entry.answer_type if entry else answer_type_of(question)
    choices = (list(entry.choices) if entry else choices_of(question)) if kind == "choice" else None
    answer = extract_answer(rationale, kind, prefix="\x00", choices=choices)  # absent prefix: last candidate
    if answer is None:
        return " unknown."
    if kind == "choice":
        text = choices[CHOICE_LETTERS.index(answer)] if choices and CHOICE_LETTERS.index(answer) < len(choices) else ""
        return f" ({answer}) {text}.".replace(" .", ".")
    if kind == "text":
        return f' "{answer}".'
    return f" {answer}."


def complete(prompt: str, n: int, rng: random.Random, wrong_rate: float, key: AnswerKey | None = None) -> list[str]:
    step = read_prompt(prompt)
    entry = key.get(step.question) if key is not None else None
    if step.kind == "rationale" and entry is not None:
        return key.rationales(entry, n, rng, wrong_rate)
    if step.kind == "rationale":
        return write_rationales(step.question, n, rng, wrong_rate)
    if step.kind == "answer":
        return [state_answer(step.question, step.rationale, key) for _ in range(n)]
    return [" I can only answer Zero-shot-CoT prompts." for _ in range(n)]
