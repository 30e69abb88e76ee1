"""Batch mode's pure part: request lines from what the cache lacks, files within limits, outputs parsed."""

from __future__ import annotations

import json

import pytest

from rt_ray.config import TeacherConfig
from rt_ray.teacher.batch_files import answer_lines, file_bytes, rationale_lines, samples_of_output, split_into_files
from rt_ray.teacher.cache import sample_key
from rt_ray.prompts import answer_prompt, rationale_prompt

QUESTIONS = [f"A coin is heads up. P{i} flips the coin. Is the coin still heads up?" for i in range(5)]


def test_rationale_lines_ask_only_for_the_missing_samples_n_at_a_time_where_the_endpoint_takes_n():
    cfg = TeacherConfig()
    params = {"api": "completions", "temperature": 0.7, "max_tokens": 128}
    cached = {sample_key(cfg.model, rationale_prompt(QUESTIONS[0]), params, i) for i in range(4)}
    cached.add(sample_key(cfg.model, rationale_prompt(QUESTIONS[1]), params, 0))
    lines = rationale_lines(QUESTIONS, cfg, 4, 0.7, 128, cached.__contains__)
    assert [line.n for line in lines] == [3, 4, 4, 4]
    assert lines[0].targets == tuple(sample_key(cfg.model, rationale_prompt(QUESTIONS[1]), params, i) for i in (1, 2, 3))
    no_n = rationale_lines(QUESTIONS[:1], cfg.model_copy(update={"supports_n": False}), 2, 0.7, 128, lambda key: False)
    assert [line.n for line in no_n] == [1, 1]
    assert rationale_lines(QUESTIONS, cfg, 4, 0.7, 128, lambda key: False) == rationale_lines(QUESTIONS, cfg, 4, 0.7, 128, lambda key: False)


def test_answer_lines_carry_up_to_prompts_per_request_prompts_on_completions_and_one_on_chat():
    pairs = [(QUESTIONS[0], [f" So the answer is {w}." for w in ("yes", "no", "yes", "no", "maybe")])]
    lines = answer_lines(pairs, TeacherConfig(prompts_per_request=2), 32, lambda key: False)
    # Two rationales are word for word the same: their one prompt is asked once.
    assert [len(line.prompts) for line in lines] == [2, 1] and lines[0].prompts[0] == answer_prompt(QUESTIONS[0], " So the answer is yes.")
    request = lines[0].request(TeacherConfig())
    assert request["url"] == "/v1/completions" and request["body"]["prompt"] == list(lines[0].prompts)
    chat = answer_lines(pairs, TeacherConfig(api="chat"), 32, lambda key: False)
    assert [len(line.prompts) for line in chat] == [1, 1, 1]
    assert chat[0].request(TeacherConfig(api="chat"))["body"]["messages"][0]["content"] == chat[0].prompts[0]


def test_files_respect_both_the_line_and_the_byte_limit():
    cfg = TeacherConfig(batch_max_requests=3)
    lines = rationale_lines([f"{q} #{k}" for q in QUESTIONS for k in range(2)], cfg, 2, 0.7, 128, lambda key: False)
    assert [len(f) for f in split_into_files(lines, cfg)] == [3, 3, 3, 1]
    one = len(file_bytes(lines[:1], cfg))
    by_bytes = cfg.model_copy(update={"batch_max_requests": 100, "batch_max_bytes": 2 * one + 10})
    files = split_into_files(lines, by_bytes)
    assert all(len(file_bytes(f, by_bytes)) <= by_bytes.batch_max_bytes for f in files) and sum(map(len, files)) == 10
    with pytest.raises(ValueError, match="batch_max_bytes"):
        split_into_files(lines, cfg.model_copy(update={"batch_max_bytes": 10}))


def test_output_lines_become_samples_in_choice_order_and_failed_lines_are_left_out():
    ok = {"custom_id": "a", "response": {"status_code": 200, "body": {
        "choices": [{"index": 1, "text": " two", "finish_reason": "stop"}, {"index": 0, "text": " one", "finish_reason": "length"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2}}}, "error": None}  # fmt: skip
    failed = {"custom_id": "b", "response": None, "error": {"code": "server_error", "message": "x"}}
    refused = {"custom_id": "c", "response": {"status_code": 429, "body": {}}, "error": None}
    found = samples_of_output("\n".join(json.dumps(line) for line in (ok, failed, refused)) + "\n", chat=False)
    assert list(found) == ["a"]
    samples, usage = found["a"]
    assert [s["text"] for s in samples] == [" one", " two"] and usage["completion_tokens"] == 2
