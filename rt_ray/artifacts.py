"""What passes between stages, defined once: both the writing and the reading stage import it.

    stats = read_finished_generation(cfg.generation.output_dir)   # the teacher's output set, finished
    model, tokenizer, meta = load_student("runs/x/student/model")  # a student model folder

The teacher's output set (``generation.output_dir``): ``stats.json`` (``status`` running | failed |
interrupted while it is not finished; complete | complete_with_failures when it is), ``rationales.jsonl``,
``filtered.jsonl`` / ``filtered.parquet`` (what students train on) and ``failures.jsonl``. Written by
the teacher stage; read by the student, sweep and experiment stages.

A student model folder: Hugging Face weights and tokenizer plus ``rt_ray_student.json`` (arch,
format, task, default_max_tokens, ...), in a local folder or at an object-store URI. Written by the
student stage; read by evaluation, Serve and tracking (which logs it to MLflow without importing the student stage).
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

from rt_ray.errors import MissingInput, UserError

TERMINAL_STATUSES = {"complete", "complete_with_failures"}
STATS_FILE = "stats.json"
FILTERED_FILE = "filtered.jsonl"
META_FILE = "rt_ray_student.json"
# A LoRA student exported as its adapter (student.lora.export: adapter): peft's adapter files, and
# for a student without a hub name (a tiny one) its untrained base model in BASE_DIR.
ADAPTER_CONFIG = "adapter_config.json"
BASE_DIR = "base"


class GenerationNotFinished(UserError, RuntimeError):
    """A student stage was pointed at teacher output that is running, failed or stopped."""


def write_json(path: Path, value: dict | list) -> None:
    """Atomically: a reader sees the old file or the new one, never half of one."""
    tmp = path.with_suffix(path.suffix + ".partial")
    tmp.write_text(json.dumps(value, indent=2))
    os.replace(tmp, path)


@contextmanager
def replacing(path: Path, mode: str = "w") -> Iterator[IO]:
    """A file written under a temporary name and moved into place only when the block succeeds."""
    tmp = path.with_suffix(path.suffix + ".partial")
    with open(tmp, mode) as handle:
        yield handle
    os.replace(tmp, path)


def write_jsonl(path: Path, records) -> None:
    with replacing(path) as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")


def read_jsonl(path: Path, missing_ok: bool = False) -> list[dict]:
    """The records of a JSON-lines file rt-ray wrote; [] for a missing file when ``missing_ok``."""
    if missing_ok and not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def append_jsonl(path: Path, record: dict) -> None:
    """One record at the end of a JSON-lines log (a line is written whole or, after a crash, is the last)."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def record_schema():
    """The Arrow schema of a teacher record (one rationale, judged), as filtered.parquet stores it.
    Fixed here rather than inferred, so that parquet written in chunks has one schema."""
    import pyarrow as pa

    return pa.schema([
        ("question_id", pa.string()), ("question", pa.string()), ("answer", pa.string()),
        ("answer_type", pa.string()), ("choices", pa.string()), ("sample_index", pa.int64()),
        ("rationale", pa.string()), ("rationale_finish_reason", pa.string()), ("teacher_answer", pa.string()),
        ("predicted", pa.string()), ("correct", pa.bool_()),
    ])  # fmt: skip


def file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()  # streamed: a set may be gigabytes


def read_finished_generation(output_dir: Path) -> dict:
    """The stats of a finished generation run, or a clear error for a running, failed or stopped one."""
    stats_path = Path(output_dir) / STATS_FILE
    if not stats_path.is_file():
        raise MissingInput(f"no teacher output in {output_dir}: run `rt-ray generate` first")
    stats = json.loads(stats_path.read_text())
    if stats.get("status") not in TERMINAL_STATUSES:
        raise GenerationNotFinished(
            f"teacher output in {output_dir} is not finished (status {stats.get('status')!r}); rerun `rt-ray generate`"
        )
    return stats


def auto_model_class(arch: str):
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    return AutoModelForCausalLM if arch == "decoder" else AutoModelForSeq2SeqLM


def load_student(path: str | Path):
    """(model, tokenizer, meta) of a student model folder, local or at a URI (downloaded once per node);
    an adapter folder's model comes with its adapter folded into the base, so every reader
    (evaluation, Serve, MLflow) gets plain weights."""
    from transformers import AutoTokenizer

    from rt_ray.storage import fetched

    path = fetched(path)
    meta_path = path / META_FILE
    if not meta_path.is_file():
        raise MissingInput(f"{path} is not a trained rt-ray student (no {META_FILE}); run `rt-ray train` first")
    meta = json.loads(meta_path.read_text())
    tokenizer = AutoTokenizer.from_pretrained(path)
    if (path / ADAPTER_CONFIG).is_file():
        return merged_adapter_model(path, meta), tokenizer, meta
    model = auto_model_class(meta["arch"]).from_pretrained(path)
    return model, tokenizer, meta


def merged_adapter_model(path: Path, meta: dict):
    """An adapter folder's base (its base/ folder, or the hub model its spec names) with the adapter folded in."""
    from peft import PeftModel

    base = path / BASE_DIR if (path / BASE_DIR).is_dir() else meta["spec"]["pretrained"]
    return PeftModel.from_pretrained(auto_model_class(meta["arch"]).from_pretrained(base), path).merge_and_unload()
