"""Answer extraction and judging: the one place that turns free text into an answer.

    extract_answer(" So the answer is (C).", "choice", choices=["a", "b", "c"])  # -> "C"
    extract_answer("... --> 18", "number", prefix="-->")                        # -> "18"
    is_correct("18.0", "18", "number")                                          # -> True

Rules follow the paper's code (see docs/fine-tune-cot.md): with no prefix expected, the first
candidate in the text; with a prefix present, the first candidate after it; with the prefix
missing, the last candidate in the whole text.
"""

from __future__ import annotations

import re
from enum import Enum

FT_COT_PREFIX = "-->"


class AnswerType(str, Enum):
    NUMBER = "number"
    CHOICE = "choice"
    YES_NO = "yes_no"
    TEXT = "text"
    DATE = "date"


CHOICE_LETTERS = "ABCDEFGHIJ"
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_YES_NO_PUNCTUATION = re.compile(r"[\"'\n.:,;!?()]")
_DATE = re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{4})\b")
_PAREN_LETTER = re.compile(r"\(([A-J])\)")
# A bare capital letter counts as a choice only when no lowercase word follows it,
# so the article in "A coin is heads up" is not read as choice A.
_BARE_LETTER = re.compile(r"(?<![A-Za-z0-9'])([A-J])(?![A-Za-z0-9'])(?!\s+[a-z])")


_KINDS = {kind.value: kind for kind in AnswerType}


def answer_kind(answer_type: AnswerType | str) -> AnswerType:
    # A dict lookup, not AnswerType(...): it runs several times for every rationale a teacher run judges.
    return _KINDS.get(answer_type) or AnswerType(answer_type)  # the constructor's error for an unknown one


def number_candidates(text: str) -> list[str]:
    return _NUMBER.findall(text.replace(",", ""))


def yes_no_candidates(text: str) -> list[str]:
    cleaned = _YES_NO_PUNCTUATION.sub(" ", text.lower())
    return [token for token in cleaned.split() if token in ("yes", "no")]


def text_candidates(text: str) -> list[str]:
    tokens = (token.strip("\"'`.,;:!?()[]{}“”‘’") for token in text.split())
    return [token for token in tokens if token]


def date_candidates(text: str) -> list[str]:
    return [f"{int(m):02d}/{int(d):02d}/{y}" for m, d, y in _DATE.findall(text)]


def choice_candidates(text: str, choices: list[str] | None = None) -> list[str]:
    """Letters in parentheses first, then standing alone; then the choice texts themselves."""
    allowed = CHOICE_LETTERS[: len(choices)] if choices else "ABCDE"
    letters = [(m.start(), m.group(1)) for m in _PAREN_LETTER.finditer(text) if m.group(1) in allowed]
    if not letters:
        letters = [(m.start(), m.group(1)) for m in _BARE_LETTER.finditer(text) if m.group(1) in allowed]
    if letters:
        return [letter for _, letter in sorted(letters)]
    if not choices:
        return []
    lowered = text.lower()
    found: list[tuple[int, str]] = []
    for letter, choice in zip(CHOICE_LETTERS, choices):
        needle = choice.lower().strip().rstrip(".")
        if not needle:
            continue
        found.extend((m.start(), letter) for m in re.finditer(re.escape(needle), lowered))
    return [letter for _, letter in sorted(found)]


def candidates(text: str, answer_type: AnswerType | str, choices: list[str] | None = None) -> list[str]:
    kind = answer_kind(answer_type)
    if kind is AnswerType.NUMBER:
        return number_candidates(text)
    if kind is AnswerType.CHOICE:
        return choice_candidates(text, choices)
    if kind is AnswerType.YES_NO:
        return yes_no_candidates(text)
    if kind is AnswerType.DATE:
        return date_candidates(text)
    return text_candidates(text)


def extract_answer(
    text: str,
    answer_type: AnswerType | str,
    prefix: str | None = None,
    choices: list[str] | None = None,
) -> str | None:
    """The answer in ``text`` by the paper's position rules, or None when there is no candidate."""
    if prefix is None:
        found = candidates(text, answer_type, choices)
        return found[0] if found else None
    if prefix in text:
        after = text.split(prefix, 1)[1]
        found = candidates(after, answer_type, choices)
        if found:
            return found[0]
    found = candidates(text, answer_type, choices)
    return found[-1] if found else None


def normalize_gold(gold: str, answer_type: AnswerType | str) -> str:
    kind = answer_kind(answer_type)
    gold = str(gold).strip()
    if kind is AnswerType.YES_NO:
        return gold.lower()
    if kind is AnswerType.CHOICE:
        return gold.strip("()").upper()
    if kind is AnswerType.DATE:
        found = date_candidates(gold)
        return found[0] if found else gold
    return gold


def is_correct(predicted: str | None, gold: str, answer_type: AnswerType | str) -> bool:
    if predicted is None:
        return False
    kind = answer_kind(answer_type)
    gold = normalize_gold(gold, kind)
    if kind is AnswerType.NUMBER:
        try:
            return abs(float(predicted) - float(gold.replace(",", ""))) <= 1e-6
        except ValueError:
            return False
    return predicted == gold
