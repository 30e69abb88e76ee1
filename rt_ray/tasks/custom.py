"""A team's own task: its questions and gold answers in a file or URI, checked before anything is paid for.

    task:
      name: custom
      path: s3://team-bucket/tickets.jsonl   # .jsonl, .json, .csv, .parquet; OpenAI chat fine-tuning JSONL too
      answer_type: number                    # number | choice | yes_no | text
      fields: {question: q, answer: a}       # and optionally choices, context, rationale
      test_path: data/tickets-test.jsonl     # the team's own test split (else the seeded split)
      instructions: "Answer as a support engineer would."

Every row is read and checked first; each problem is one line naming the file, the row and the field,
and any problem stops the run before the first teacher request (``TaskDataError``, exit 2).
Duplicate questions are dropped, with one line saying how many. A row's worked solution (the
``rationale`` field, or a chat answer longer than its answer) is kept for the offline simulator's
answer key (``answer_key``).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from rt_ray.tasks.answers import CHOICE_LETTERS, extract_answer
from rt_ray.tasks.base import Sample, TaskDataError, format_choices
from rt_ray.tasks.files import field_value
from rt_ray.storage import read_bytes

MAX_PROBLEMS_SHOWN = 20
# A gold number: a sign, a currency sign, thousands separators, decimals, a percent sign; no words ("12 apples").
_GOLD_NUMBER = re.compile(r"^[+-]?[$€£]?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?%?$")
_YES, _NO = {"yes", "true", "y"}, {"no", "false", "n"}


@dataclass(frozen=True)
class Row:
    """One record of a file and where it is (``line 17``, ``row 3``), for the problem lines."""

    where: str
    record: Any


@dataclass
class CustomRows:
    samples: list[Sample] = field(default_factory=list)
    rationales: dict[str, str] = field(default_factory=dict)  # question -> the row's worked solution
    instructions: str = ""  # a chat file's system message
    read: int = 0
    dropped: Counter = field(default_factory=Counter)


def open_bytes(location: str | Path) -> bytes:
    """The file's bytes, from a local path or any URI the storage layer reads (``s3://``, ``gs://``)."""
    try:
        return read_bytes(location)
    except (FileNotFoundError, IsADirectoryError):
        raise TaskDataError(f"task file not found: {location} (task.path)") from None
    except OSError as error:
        raise TaskDataError(f"task file {location} cannot be read: {error}") from None


def iter_rows(location: str | Path) -> Iterator[Row]:
    """Records of a JSONL, JSON array, CSV or Parquet file; an unreadable line is a Row whose record is an error."""
    name = str(location).lower()
    data = open_bytes(location)
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        for index, record in enumerate(pq.read_table(io.BytesIO(data)).to_pylist(), start=1):
            yield Row(f"row {index}", record)
        return
    text = data.decode("utf-8-sig", errors="replace")
    if name.endswith(".csv"):
        reader = csv.DictReader(io.StringIO(text))
        for record in reader:
            yield Row(f"line {reader.line_num}", record)
        return
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as error:
            raise TaskDataError(f"{location} is not a valid JSON array: {error}") from None
        for index, record in enumerate(records, start=1):
            yield Row(f"record {index}", record)
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                yield Row(f"line {number}", json.loads(line))
            except json.JSONDecodeError as error:
                yield Row(f"line {number}", ValueError(f"not valid JSON ({error.msg})"))


def is_chat_record(record: Any) -> bool:
    return isinstance(record, dict) and isinstance(record.get("messages"), list)


def chat_to_record(record: dict) -> tuple[dict, str]:
    """OpenAI's chat fine-tuning line as (question/answer record, system message): the last user message
    is the question, the last assistant message the answer."""
    by_role: dict[str, list[str]] = {}
    for message in record["messages"]:
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            by_role.setdefault(str(message.get("role")), []).append(message["content"])
    question = (by_role.get("user") or [""])[-1]
    answer = (by_role.get("assistant") or [""])[-1]
    return {"question": question, "answer": answer}, (by_role.get("system") or [""])[0]


def gold_number(raw: str) -> str | None:
    text = raw.strip()
    if not _GOLD_NUMBER.match(text):
        return None
    value = float(text.lstrip("+-").strip("$€£%").replace(",", "")) * (-1 if text.startswith("-") else 1)
    return str(int(value)) if value.is_integer() else str(value)


def parse_choices(raw: Any) -> list[str]:
    """A list, a JSON list in a string (a CSV cell), or ``a | b | c``."""
    if isinstance(raw, str):
        stripped = raw.strip()
        if stripped.startswith("["):
            raw = json.loads(stripped)
        else:
            raw = [part for part in stripped.split("|")]
    return [str(item.get("text", "") if isinstance(item, dict) else item).strip() for item in raw]


def gold_answer(raw: str, answer_type: str, choices: list[str]) -> tuple[str | None, str]:
    """(the gold answer in the form the judge compares, or None with why it is not of ``answer_type``)."""
    text = raw.strip()
    if answer_type == "number":
        return gold_number(text), f"{text!r} is not a number"
    if answer_type == "yes_no":
        word = text.lower().strip(".!")
        return ("yes" if word in _YES else "no" if word in _NO else None), f"{text!r} is not yes or no"
    if answer_type == "choice":
        letter = text.strip("()").upper()
        if len(letter) == 1 and letter in CHOICE_LETTERS[: len(choices)]:
            return letter, ""
        for index, choice in enumerate(choices):
            if choice.lower() == text.lower():
                return CHOICE_LETTERS[index], ""
        return None, f"{text!r} is neither a letter A-{CHOICE_LETTERS[max(len(choices) - 1, 0)]} nor one of the choices"
    word = text.strip("\"'`.,;:!?()[]{}")
    if not word or any(ch.isspace() for ch in word):
        return None, f"{text!r} is not one word (a text answer is judged as one word)"
    return word, ""


def _text(record: dict, fields: dict[str, str], name: str, required: bool) -> str | None:
    column = fields.get(name, name)
    try:
        value = field_value(record, column)
    except KeyError:
        if required:
            raise
        return None
    return "" if value is None else str(value).strip()


def check_row(row: Row, answer_type: str, fields: dict[str, str], origin: str,
              chat: bool = False) -> tuple[Sample | None, str | None, str]:  # fmt: skip
    """(the row's sample, its worked solution, "") or (None, None, the problem line)."""
    where = f"{origin} {row.where}"
    record = row.record
    if isinstance(record, Exception):
        return None, None, f"{where}: {record}"
    if not isinstance(record, dict):
        return None, None, f"{where}: not a record with fields (got {type(record).__name__})"
    try:
        question, raw_answer = _text(record, fields, "question", True), _text(record, fields, "answer", True)
    except KeyError as missing:
        return None, None, f"{where}: no field {missing.args[0]!r} (task.fields maps question and answer to columns)"
    if not question:
        return None, None, f"{where}: question is empty"
    if not raw_answer:
        return None, None, f"{where}: answer is empty"
    choices: list[str] = []
    if answer_type == "choice":
        try:
            choices = parse_choices(field_value(record, fields.get("choices", "choices")))
        except KeyError:
            return None, None, f"{where}: no field {fields.get('choices', 'choices')!r} for the choices of a choice task"
        except (ValueError, TypeError, AttributeError):
            return None, None, f"{where}: choices are not a list"
        if len(choices) < 2 or len(choices) > len(CHOICE_LETTERS) or not all(choices):
            return None, None, f"{where}: choices must be 2-{len(CHOICE_LETTERS)} non-empty texts"
    rationale = _text(record, fields, "rationale", False) or None
    answer, why = gold_answer(raw_answer, answer_type, choices)
    if answer is None and chat and len(raw_answer.split()) > 1:
        # A chat answer that explains itself: its answer is the last one it states, its text a worked solution.
        answer = extract_answer(raw_answer, answer_type, prefix="\x00", choices=choices or None)
        rationale = rationale or raw_answer
    if answer is None:
        return None, None, f"{where}: answer {why} (task.answer_type: {answer_type})"
    context = _text(record, fields, "context", False)
    if context:
        question = f"{context} {question}"
    if choices:
        question = format_choices(question, choices)
    return Sample("", question, answer, answer_type, choices), rationale, ""


def read_custom(location: str | Path, answer_type: str, fields: dict[str, str], split: str) -> CustomRows:
    """Every row of one file checked; raises TaskDataError listing the problems (the first 20 and a count)."""
    return check_rows(iter_rows(location), str(location), answer_type, fields, split)


def check_rows(source: Iterable[Row], location: str, answer_type: str, fields: dict[str, str], split: str) -> CustomRows:
    rows, problems, seen = CustomRows(), [], set()
    system_messages: set[str] = set()
    for row in source:
        rows.read += 1
        record, chat = row.record, is_chat_record(row.record)
        if chat:
            record, system = chat_to_record(record)
            system_messages.add(system)
        sample, rationale, problem = check_row(Row(row.where, record), answer_type, {} if chat else fields, location, chat)
        if sample is None:
            problems.append(problem)
            continue
        if sample.question in seen:
            rows.dropped["duplicate question"] += 1
            continue
        seen.add(sample.question)
        rows.samples.append(Sample(f"custom-{split}-{len(rows.samples)}", sample.question, sample.answer, answer_type, sample.choices))
        if rationale:
            rows.rationales[sample.question] = rationale
    if len(system_messages) > 1:
        problems.append(f"{location}: the chat rows carry {len(system_messages)} different system messages; "
                        "rt-ray gives the teacher one (set task.instructions)")  # fmt: skip
    rows.instructions = next(iter(system_messages), "")
    if problems:
        shown = problems[:MAX_PROBLEMS_SHOWN]
        more = len(problems) - len(shown)
        tail = [f"... and {more} more problems"] if more else []
        raise TaskDataError("\n".join([f"{len(problems)} problems in {location}; no teacher request was sent:", *shown, *tail]))
    if not rows.samples:
        raise TaskDataError(f"{location} holds no questions (task.path)")
    return rows


def summary_line(location: str | Path, rows: CustomRows) -> str:
    dropped = ", ".join(f"{count} {reason}{'s' if count > 1 else ''}" for reason, count in rows.dropped.items())
    return (f"task file {location}: {rows.read} rows read, {len(rows.samples)} kept"
            f"{f', dropped: {dropped}' if dropped else ''}")  # fmt: skip


def hub_rows(hub: str) -> list[Row]:
    """``name[:config]`` through `datasets`: every split's records (where a hub is reachable)."""
    try:
        import datasets  # optional: pip install 'rt-ray[hub]'
    except ImportError:
        raise TaskDataError("task.hub needs the `datasets` package: pip install 'rt-ray[hub]'") from None
    name, _, config_name = hub.partition(":")
    loaded = datasets.load_dataset(name, config_name or None)
    records = [dict(record) for split in loaded.values() for record in split]
    return [Row(f"record {index}", record) for index, record in enumerate(records, start=1)]
