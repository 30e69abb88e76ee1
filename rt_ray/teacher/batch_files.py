"""Batch mode's pure part: the request lines of a teacher step, input files within the provider's
limits, and the samples in an output file. OpenAI's Batch API and vLLM's ``run-batch`` read the same
JSONL (``custom_id``, ``method``, ``url``, ``body``).

    lines = rationale_lines(questions, teacher_cfg, plan, is_cached)    # only samples not in the cache
    files = split_into_files(lines, max_requests=50_000, max_bytes=200 * 2**20)
    samples = samples_of_output(output_jsonl_text, expected={line.custom_id: len(line.targets) ...})

Each line carries its targets: the cache keys its choices fill, in choice order, so an output (or
a resumed run's manifest) goes straight into the same per-sample cache the online path uses.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Callable, Iterable

from rt_ray.config import Price, TeacherConfig
from rt_ray.teacher.accounting import cost_usd, estimate_prompt_tokens
from rt_ray.teacher.cache import sample_key, sampling_params
from rt_ray.prompts import PAPER_STYLE, PromptStyle, chat_messages


@dataclass(frozen=True)
class BatchLine:
    custom_id: str
    prompts: tuple[str, ...]  # several only for answer extraction on the completions API
    n: int
    temperature: float
    max_tokens: int
    targets: tuple[str, ...]  # cache keys, one per choice, in OpenAI's choice order

    def request(self, cfg: TeacherConfig) -> dict:
        body: dict = {"model": cfg.model, "n": self.n, "temperature": self.temperature, "max_tokens": self.max_tokens}
        if cfg.api == "chat":
            body["messages"] = chat_messages(self.prompts[0])
        else:
            body["prompt"] = list(self.prompts) if len(self.prompts) > 1 else self.prompts[0]
        return {"custom_id": self.custom_id, "method": "POST", "url": endpoint(cfg), "body": body}

    def worst_cost(self, price: Price | None) -> float:
        """The most this line can cost at the batch discount: its prompts plus every choice at max_tokens."""
        if price is None:
            return 0.0
        prompt_tokens = sum(estimate_prompt_tokens(p) for p in self.prompts)
        return cost_usd(prompt_tokens, len(self.targets) * self.max_tokens, price) * price.batch_discount


def endpoint(cfg: TeacherConfig) -> str:
    return "/v1/chat/completions" if cfg.api == "chat" else "/v1/completions"


def _line(prompts: list[str], n: int, temperature: float, max_tokens: int, targets: list[str]) -> BatchLine:
    # The id is the line's content, so the same missing samples make the same line in a rerun.
    material = json.dumps([prompts, n, temperature, max_tokens, targets])
    return BatchLine(hashlib.sha256(material.encode()).hexdigest()[:32], tuple(prompts), n, temperature, max_tokens, tuple(targets))


def rationale_keys(question: str, cfg: TeacherConfig, degree: int, temperature: float, max_tokens: int,
                   style: PromptStyle = PAPER_STYLE) -> list[str]:  # fmt: skip
    """The cache keys of a question's first D rationale samples, as the online client keys them."""
    params = sampling_params(cfg.api, temperature, max_tokens)
    return [sample_key(cfg.model, style.rationale(question), params, i) for i in range(degree)]


def rationale_lines(questions: Iterable[str], cfg: TeacherConfig, degree: int, temperature: float, max_tokens: int,
                    is_cached: Callable[[str], bool], style: PromptStyle = PAPER_STYLE) -> list[BatchLine]:  # fmt: skip
    """Step 1: each question's missing rationale samples (indexes below D), n of them a line where
    the endpoint takes n, one a line where it does not; as the online client asks for them."""
    lines = []
    for question in questions:
        missing = [key for key in rationale_keys(question, cfg, degree, temperature, max_tokens, style) if not is_cached(key)]
        groups = [missing] if cfg.supports_n else [[key] for key in missing]
        lines += [_line([style.rationale(question)], len(group), temperature, max_tokens, group) for group in groups if group]
    return lines


def answer_lines(pairs: Iterable[tuple[str, list[str]]], cfg: TeacherConfig, max_tokens: int,
                 is_cached: Callable[[str], bool], style: PromptStyle = PAPER_STYLE) -> list[BatchLine]:  # fmt: skip
    """Step 2: for each (question, its rationale texts) the missing greedy answer-extraction samples,
    up to prompts_per_request prompts a line on the completions API, one a line on chat."""
    params = sampling_params(cfg.api, 0.0, max_tokens)
    size = cfg.prompts_per_request if cfg.api == "completions" else 1
    lines = []
    for question, rationales in pairs:
        prompts = [style.answer(question, text) for text in rationales]
        missing = [(p, key) for p in dict.fromkeys(prompts) if not is_cached(key := sample_key(cfg.model, p, params, 0))]
        for start in range(0, len(missing), size):
            chunk = missing[start : start + size]
            lines.append(_line([p for p, _ in chunk], 1, 0.0, max_tokens, [key for _, key in chunk]))
    return lines


def split_into_files(lines: list[BatchLine], cfg: TeacherConfig) -> list[list[BatchLine]]:
    """Consecutive lines in files of at most batch_max_requests lines and batch_max_bytes bytes."""
    files: list[list[BatchLine]] = []
    current: list[BatchLine] = []
    size = 0
    for line in lines:
        length = len(json.dumps(line.request(cfg))) + 1
        if length > cfg.batch_max_bytes:
            raise ValueError(f"teacher.batch_max_bytes={cfg.batch_max_bytes} is smaller than one request line ({length} bytes)")
        if current and (len(current) >= cfg.batch_max_requests or size + length > cfg.batch_max_bytes):
            files.append(current)
            current, size = [], 0
        current.append(line)
        size += length
    return files + [current] if current else files


def file_bytes(lines: list[BatchLine], cfg: TeacherConfig) -> bytes:
    return "".join(json.dumps(line.request(cfg)) + "\n" for line in lines).encode()


def samples_of_output(text: str, chat: bool) -> dict[str, tuple[list[dict], dict]]:
    """custom_id -> (its choices as cache samples in index order, usage) for every line that succeeded."""
    found: dict[str, tuple[list[dict], dict]] = {}
    for raw in text.splitlines():
        if not raw.strip():
            continue
        line = json.loads(raw)
        response = line.get("response") or {}
        if line.get("error") or response.get("status_code") != 200:
            continue
        body = response.get("body") or {}
        choices = sorted(body.get("choices") or [], key=lambda choice: choice["index"])
        samples = [{"text": c["message"]["content"] if chat else c["text"], "finish_reason": c.get("finish_reason")} for c in choices]
        if all(sample["text"] is not None for sample in samples):
            found[line["custom_id"]] = (samples, body.get("usage") or {})
    return found
