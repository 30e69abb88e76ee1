"""Tasks read from local JSON/JSONL files, or from the Hugging Face hub when online.

Each task names its files under ``task.data_dir/<task>/`` and the fields it reads; ``task.fields``
overrides a field name (``question``, ``answer``, ``body``, ``options``, ``choices``), with dotted
paths into nested records and list indexes (``lSolutions.0``, ``question.stem``).

| task | files | fields (defaults) |
|---|---|---|
| gsm8k | train.jsonl, test.jsonl | question; answer (text after ``####``) |
| svamp | SVAMP.json | body ``Body`` + question ``Question``; answer ``Answer`` |
| multiarith, addsub, single_eq | <Name>.json | question ``sQuestion``; answer ``lSolutions.0`` |
| aqua | train.json, test.json (JSONL) | question; options (``["A)21", ...]``); answer ``correct`` |
| commonsense_qa | train_rand_split.jsonl, dev_rand_split.jsonl | question ``question.stem``; choices ``question.choices``; answer ``answerKey`` |
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rt_ray.tasks.answers import AnswerType
from rt_ray.tasks.base import Sample, TaskDataError, format_choices


@dataclass(frozen=True)
class FileTaskSpec:
    answer_type: AnswerType
    fields: dict[str, str]
    all_file: str | None = None  # one file, split by seed
    train_file: str | None = None  # or the dataset's own split
    test_file: str | None = None
    hub: tuple[str, str | None] | None = None  # (dataset name, config name)
    hub_fields: dict[str, str] | None = None


FILE_TASKS: dict[str, FileTaskSpec] = {
    "gsm8k": FileTaskSpec(
        AnswerType.NUMBER,
        {"question": "question", "answer": "answer"},
        train_file="train.jsonl",
        test_file="test.jsonl",
        hub=("gsm8k", "main"),
    ),
    "svamp": FileTaskSpec(
        AnswerType.NUMBER,
        {"body": "Body", "question": "Question", "answer": "Answer"},
        all_file="SVAMP.json",
        hub=("ChilleD/SVAMP", None),
    ),
    "multiarith": FileTaskSpec(
        AnswerType.NUMBER, {"question": "sQuestion", "answer": "lSolutions.0"}, all_file="MultiArith.json"
    ),
    "addsub": FileTaskSpec(AnswerType.NUMBER, {"question": "sQuestion", "answer": "lSolutions.0"}, all_file="AddSub.json"),
    "single_eq": FileTaskSpec(
        AnswerType.NUMBER, {"question": "sQuestion", "answer": "lSolutions.0"}, all_file="SingleEq.json"
    ),
    "aqua": FileTaskSpec(
        AnswerType.CHOICE,
        {"question": "question", "options": "options", "answer": "correct"},
        train_file="train.json",
        test_file="test.json",
        hub=("aqua_rat", "raw"),
    ),
    "commonsense_qa": FileTaskSpec(
        AnswerType.CHOICE,
        {"question": "question.stem", "choices": "question.choices", "answer": "answerKey"},
        train_file="train_rand_split.jsonl",
        test_file="dev_rand_split.jsonl",
        hub=("tau/commonsense_qa", None),
        hub_fields={"question": "question", "choices": "choices", "answer": "answerKey"},
    ),
}


def field_value(record: dict, path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            raise KeyError(path)
    return value


def read_task_file(path: Path) -> list[dict]:
    """A dataset file's records (a JSON list or JSON lines); a missing or unreadable file is the user's to fix."""
    if not path.is_file():
        raise TaskDataError(f"dataset file not found: {path} (set task.data_dir, or task.from_hub: true)")
    text = path.read_text()
    stripped = text.lstrip()
    try:
        if stripped.startswith("["):
            return json.loads(text)
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as err:
        raise TaskDataError(f"{path} is neither a JSON list nor JSON lines: {err}") from None


def _choices_from(raw: Any) -> list[str]:
    """AQuA's ``["A)21", ...]``, CommonsenseQA's ``[{"label", "text"}]`` or the hub's ``{"text": [...]}``."""
    if isinstance(raw, dict) and "text" in raw:
        return [str(t) for t in raw["text"]]
    choices = []
    for item in raw:
        if isinstance(item, dict):
            choices.append(str(item["text"]))
        else:
            text = str(item)
            choices.append(text.split(")", 1)[1].strip() if ")" in text[:3] else text)
    return choices


def _number_answer(raw: Any) -> str:
    text = str(raw)
    if "####" in text:  # GSM8K writes the worked solution, then "#### 72"
        text = text.split("####")[-1]
    text = text.strip().replace(",", "")
    value = float(text)
    return str(int(value)) if value.is_integer() else str(value)


def record_to_sample(task: str, index: int, record: dict, spec: FileTaskSpec, fields: dict[str, str]) -> Sample:
    try:
        question = str(field_value(record, fields["question"])).strip()
        if "body" in fields:
            question = f"{str(field_value(record, fields['body'])).strip()} {question}"
        raw_answer = field_value(record, fields["answer"])
        choices: list[str] = []
        if spec.answer_type is AnswerType.CHOICE:
            choices = _choices_from(field_value(record, fields.get("options") or fields["choices"]))
            question = format_choices(question, choices)
            answer = str(raw_answer).strip().upper()
        else:
            answer = _number_answer(raw_answer)
    except KeyError as err:
        raise TaskDataError(f"{task}: record {index} has no field {err.args[0]!r} (see task.fields)") from None
    except ValueError:
        raise TaskDataError(f"{task}: record {index} answer {raw_answer!r} is not a number") from None
    return Sample(f"{task}-{index}", question, answer, spec.answer_type.value, choices)


def to_samples(task: str, records: list[dict], spec: FileTaskSpec, fields: dict[str, str], offset: int = 0) -> list[Sample]:
    return [record_to_sample(task, offset + i, record, spec, fields) for i, record in enumerate(records)]


def load_from_files(task: str, data_dir: Path, field_map: dict[str, str]):
    spec = FILE_TASKS[task]
    fields = {**spec.fields, **field_map}
    folder = Path(data_dir) / task
    if spec.all_file:
        return to_samples(task, read_task_file(folder / spec.all_file), spec, fields)
    train = read_task_file(folder / spec.train_file)
    test = read_task_file(folder / spec.test_file)
    return to_samples(task, train, spec, fields), to_samples(task, test, spec, fields, offset=len(train))


def load_from_hub(task: str, field_map: dict[str, str]):
    spec = FILE_TASKS[task]
    if spec.hub is None:
        raise TaskDataError(f"{task} has no known Hugging Face dataset; use local files (task.data_dir)")
    try:
        import datasets  # optional: pip install 'rt-ray[hub]'
    except ImportError:
        raise TaskDataError("task.from_hub needs the `datasets` package: pip install 'rt-ray[hub]'") from None
    name, config_name = spec.hub
    loaded = datasets.load_dataset(name, config_name)
    fields = {**spec.fields, **(spec.hub_fields or {}), **field_map}
    if spec.all_file:
        records = [dict(r) for split in loaded.values() for r in split]
        return to_samples(task, records, spec, fields)
    test_split = "test" if "test" in loaded else "validation"
    train = [dict(r) for r in loaded["train"]]
    test = [dict(r) for r in loaded[test_split]]
    return to_samples(task, train, spec, fields), to_samples(task, test, spec, fields, offset=len(train))
