"""Batch mode (``teacher.mode: batch``): the teacher cache is filled through the provider's Batch API
(files of requests, results within ``teacher.batch_completion_window``, at ``prices[model].batch_discount``),
then the ordinary teacher pass judges and writes everything from the cache without sending a request.

    outcome = fill_cache_by_batches(cfg, questions, api_key)   # step 1, then step 2 unless answer_from: rationale

Every batch submitted is written to ``<generation.output_dir>/batches.json`` the moment it exists (and
its input carries ``metadata.rt_ray_input``, found again by listing batches should the process die
between the two), so a run killed while a batch is in flight resumes by polling that batch, never by
submitting it again. Lines that failed, and those an expired batch left undone, go again in a new
batch (only those), up to ``teacher.max_retries`` times; the budget cap reserves a batch's worst case
before submitting it.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import openai
from pydantic import SecretStr

from rt_ray.artifacts import write_json
from rt_ray.config import RtRayConfig, TeacherConfig
from rt_ray.progress import bar, say
from rt_ray.tasks.base import Sample
from rt_ray.teacher.accounting import CallStats, cost_usd
from rt_ray.teacher.batch_files import (
    BatchLine, answer_lines, endpoint, file_bytes, rationale_keys, rationale_lines, samples_of_output, split_into_files,
)  # fmt: skip
from rt_ray.teacher.cache import ResponseCache
from rt_ray.teacher.client import FATAL_STATUSES, TeacherFatalError, TeacherRequestFailed, backoff_delay, retry_after_seconds
from rt_ray.teacher.teach import SamplingPlan

LEDGER = "batches.json"
MANIFESTS = "batch_manifests"
TERMINAL = ("completed", "failed", "expired", "cancelled")


@dataclass
class BatchOutcome:
    stats: CallStats
    batch_ids: list[str]
    stopped_for_budget: bool


@dataclass
class Ledger:
    """The batches this output folder has submitted, saved atomically after every change."""

    path: Path
    entries: list[dict] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> "Ledger":
        return cls(path, json.loads(path.read_text()) if path.is_file() else [])

    def save(self) -> None:
        write_json(self.path, self.entries)

    def in_flight(self) -> list[dict]:
        return [entry for entry in self.entries if not entry.get("collected")]


def fill_cache_by_batches(cfg: RtRayConfig, questions: list[Sample], api_key: SecretStr | None) -> BatchOutcome:
    out = Path(cfg.generation.output_dir)
    (out / MANIFESTS).mkdir(parents=True, exist_ok=True)
    run = _BatchRun(cfg, ResponseCache(cfg.teacher.cache_dir), Ledger.load(out / LEDGER), out / MANIFESTS,
                    openai.OpenAI(base_url=cfg.teacher.base_url, api_key=api_key.get_secret_value() if api_key else "no-key",
                                  max_retries=0, timeout=cfg.teacher.request_timeout_s))  # fmt: skip
    left = run.ledger.in_flight()
    if left:
        say(f"teacher stage: polling {len(left)} batch(es) a stopped run left in flight (nothing is submitted twice)")
        run.wait_and_collect(left)
    plan = SamplingPlan.from_config(cfg.generation, cfg.task)
    steps: list[tuple[str, Callable[[], list[BatchLine]]]] = [("rationales", lambda: run.rationale_lines(questions, plan))]
    if plan.answer_from == "second_call":
        steps.append(("answers", lambda: run.answer_lines(questions, plan)))
    stopped = False
    for step, lines_of in steps:
        for attempt in range(cfg.teacher.max_retries + 1):
            lines = lines_of()
            if not lines:
                break
            submitted, stopped = run.submit(step, lines, retry=attempt > 0)
            run.wait_and_collect(submitted)
            if stopped:
                break
        if stopped:
            break
    return BatchOutcome(run.stats, [entry["batch_id"] for entry in run.ledger.entries], stopped)


class _BatchRun:
    def __init__(self, cfg: RtRayConfig, cache: ResponseCache, ledger: Ledger, manifests: Path, client: openai.OpenAI):
        self.cfg, self.teacher = cfg, cfg.teacher
        self.cache, self.ledger, self.manifests, self.client = cache, ledger, manifests, client
        self.price = cfg.teacher.prices.get(cfg.teacher.model)
        self.stats = CallStats()
        self._rng = random.Random(0)

    def is_cached(self, key: str) -> bool:
        return key in self.cache

    def rationale_lines(self, questions: list[Sample], plan: SamplingPlan) -> list[BatchLine]:
        return rationale_lines([q.question for q in questions], self.teacher, plan.degree, plan.rationale_temperature,
                               plan.max_tokens_rationale, self.is_cached, plan.style)  # fmt: skip

    def answer_lines(self, questions: list[Sample], plan: SamplingPlan) -> list[BatchLine]:
        """Step 2 for every rationale step 1 has delivered."""
        pairs = []
        for sample in questions:
            keys = rationale_keys(sample.question, self.teacher, plan.degree, plan.rationale_temperature, plan.max_tokens_rationale,
                                  plan.style)  # fmt: skip
            found = [self.cache.get(key) for key in keys]
            pairs.append((sample.question, [hit["text"] for hit in found if hit is not None]))
        return answer_lines(pairs, self.teacher, plan.max_tokens_answer, self.is_cached, plan.style)

    def submit(self, step: str, lines: list[BatchLine], retry: bool) -> tuple[list[dict], bool]:
        """Each input file as a batch, while the budget allows its worst case; (entries, stopped for budget)."""
        cap = self.teacher.max_cost_usd
        reserved = 0.0
        entries = []
        for chunk in split_into_files(lines, self.teacher):
            worst = sum(line.worst_cost(self.price) for line in chunk)
            if cap is not None and self.stats.cost_usd + reserved + worst > cap:
                say(f"teacher stage: the next batch could cost ${worst:.4f}, past teacher.max_cost_usd={cap}; not submitted")
                return entries, True
            reserved += worst
            entries.append(self._submit_file(step, chunk, worst))
            self.stats.requests += len(chunk)
            self.stats.prompts_sent += sum(len(line.prompts) for line in chunk)
            if retry:
                self.stats.retries += len(chunk)
        return entries, False

    def _submit_file(self, step: str, chunk: list[BatchLine], worst: float) -> dict:
        content = file_bytes(chunk, self.teacher)
        digest = hashlib.sha256(content).hexdigest()[:24]
        manifest = {line.custom_id: list(line.targets) for line in chunk}
        prompts = {line.custom_id: [hashlib.sha256(p.encode()).hexdigest() for p in line.prompts] for line in chunk}
        write_json(self.manifests / f"{digest}.json", {"targets": manifest, "prompt_sha256": prompts})
        (self.manifests / f"{digest}.jsonl").write_bytes(content)  # the input as sent (vLLM's run-batch reads it too)
        batch = self._already_submitted(digest)
        if batch is None:
            uploaded = self._retrying(lambda: self.client.files.create(file=(f"rt-ray-{step}-{digest}.jsonl", content), purpose="batch"))
            batch = self._retrying(lambda: self.client.batches.create(
                input_file_id=uploaded.id, endpoint=endpoint(self.teacher),  # type: ignore[arg-type]
                completion_window=self.teacher.batch_completion_window,  # type: ignore[arg-type]
                metadata={"rt_ray_input": digest}))  # fmt: skip
        entry = {"batch_id": batch.id, "step": step, "input": digest, "lines": len(chunk), "worst_cost_usd": round(worst, 6),
                 "collected": False}  # fmt: skip
        self.ledger.entries.append(entry)
        self.ledger.save()
        return entry

    def _already_submitted(self, digest: str) -> Any:
        """A live batch of exactly this input that a killed process created but did not record."""
        known = {entry["batch_id"] for entry in self.ledger.entries}
        page = self._retrying(lambda: self.client.batches.list(limit=100))
        for batch in page.data:
            if (batch.metadata or {}).get("rt_ray_input") == digest and batch.id not in known and batch.status not in ("failed", "cancelled", "expired"):
                return batch
        return None

    def wait_and_collect(self, entries: list[dict]) -> None:
        if not entries:
            return
        pending = list(entries)
        total = sum(entry["lines"] for entry in entries)
        with bar("teacher batches", total=total) as progress:
            while pending:
                done, states = 0, []
                for entry in list(pending):
                    batch = self._retrying(lambda: self.client.batches.retrieve(entry["batch_id"]))
                    counts = batch.request_counts
                    done += (counts.completed + counts.failed) if counts else 0
                    states.append(batch.status)
                    if batch.status in TERMINAL:
                        self._collect(entry, batch)
                        pending.remove(entry)
                finished = sum(e["lines"] for e in entries if e not in pending)
                progress.update(completed=max(done, finished), detail=f"{len(pending)} batch(es) running: {', '.join(sorted(set(states)))}")
                if pending:
                    time.sleep(self.teacher.batch_poll_s)

    def _collect(self, entry: dict, batch: Any) -> None:
        manifest = json.loads((self.manifests / f"{entry['input']}.json").read_text())
        delivered = {}
        if batch.output_file_id:
            text = self._retrying(lambda: self.client.files.content(batch.output_file_id).text)
            delivered = samples_of_output(text, chat=self.teacher.api == "chat")
        discount = self.price.batch_discount if self.price is not None else 1.0
        for custom_id, (samples, usage) in delivered.items():
            targets = manifest["targets"].get(custom_id)
            if targets is None or len(samples) != len(targets):
                continue  # not ours, or short: its samples go again
            shas = manifest["prompt_sha256"][custom_id]
            per_prompt = max(1, len(targets) // len(shas))
            for index, (key, sample) in enumerate(zip(targets, samples)):
                sample["prompt_sha256"] = shas[min(index // per_prompt, len(shas) - 1)]
                self.cache.put(key, sample)
            prompt_tokens, completion_tokens = usage.get("prompt_tokens", 0) or 0, usage.get("completion_tokens", 0) or 0
            self.stats.prompt_tokens += prompt_tokens
            self.stats.completion_tokens += completion_tokens
            self.stats.cost_usd += cost_usd(prompt_tokens, completion_tokens, self.price) * discount
        self.stats.failed_requests += entry["lines"] - len(delivered)
        entry.update(collected=True, status=batch.status, delivered=len(delivered))
        self.ledger.save()

    def _retrying(self, call: Callable[[], Any]) -> Any:
        """A Files/Batch API call with the online path's retries: backoff with jitter, Retry-After honoured."""
        last: Exception | None = None
        for attempt in range(self.teacher.max_retries + 1):
            retry_after = None
            try:
                return call()
            except openai.APIStatusError as error:
                if error.status_code in FATAL_STATUSES:
                    raise TeacherFatalError(f"teacher at {self.teacher.base_url} refused the Batch API: HTTP {error.status_code}") from None
                last, retry_after = error, retry_after_seconds(error)
            except (openai.APIConnectionError, openai.APITimeoutError) as error:
                last = error
            if attempt < self.teacher.max_retries:
                time.sleep(backoff_delay(attempt, self.teacher.backoff_base_s, self.teacher.backoff_max_s, retry_after, self._rng))
        raise TeacherRequestFailed(f"Batch API call failed after {self.teacher.max_retries} retries: {last}", "retries_exhausted")


def describe(cfg: TeacherConfig) -> str:
    return f"batch mode ({cfg.batch_completion_window} window, polled every {cfg.batch_poll_s:g} s)"
