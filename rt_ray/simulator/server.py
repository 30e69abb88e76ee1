"""The offline teacher: a real OpenAI-compatible HTTP server (aiohttp) with tunable latency,
wrong answers and injected faults.

    rt-ray teacher-sim --port 8765 --latency-s 0.2 --fault-rate 0.2 --log-file sim.jsonl

Routes: ``POST /v1/completions``, ``POST /v1/chat/completions``, ``GET /v1/models``, the Files and
Batch APIs (simulator/batches.py); for tests, ``GET /sim/requests`` (every request and batch line
served, in order) and ``GET /sim/stats`` (counts).
It is what the pipeline talks to by default, over HTTP, exactly as it talks to OpenAI.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from rt_ray.simulator.answer_key import AnswerKey
from rt_ray.simulator.batches import BatchState, add_batch_routes
from rt_ray.simulator.responses import STATE, error_response
from rt_ray.simulator.solvers import complete

FAULT_KINDS = ("rate_limit", "server_error", "unavailable", "hang", "truncated_json", "drop_connection")


@dataclass
class SimulatorSettings:
    model: str = "teacher-sim"
    latency_s: float = 0.05
    latency_jitter_s: float = 0.0
    wrong_rate: float = 0.2
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = FAULT_KINDS
    retry_after_ms: int = 200
    hang_s: float = 30.0
    api_key: str | None = None  # when set, requests must carry it as a bearer token
    seed: int = 0
    log_file: Path | None = None
    batch_delay_s: float = 1.0  # from batches.create to its output file
    batch_fail_rate: float = 0.0  # share of batch lines that go to the error file
    batch_expire_first: int = 0  # this many batches expire with half their lines done
    batch_api_429s: int = 0  # this many of the first upload calls, and of the first create calls, get a 429
    # A custom task's files, read as its answer key (answer_key.py): their questions get rationales that
    # end in their gold answers (wrong_rate of them in a wrong one).
    answer_key: tuple[str, ...] = ()
    answer_type: str = "text"
    fields: dict = field(default_factory=dict)


@dataclass
class SimulatorState:
    settings: SimulatorSettings
    rng: random.Random = field(init=False)
    key: AnswerKey | None = field(init=False)
    log: list[dict] = field(default_factory=list)
    batches: BatchState = field(default_factory=BatchState)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.settings.seed)
        answer_key = self.settings.answer_key
        self.key = AnswerKey.read(list(answer_key), self.settings.answer_type, self.settings.fields) if answer_key else None

    def record(self, entry: dict) -> None:
        self.log.append(entry)
        if self.settings.log_file is not None:
            with open(self.settings.log_file, "a") as handle:
                handle.write(json.dumps(entry) + "\n")


def count_tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def _truncate(text: str, max_tokens: int) -> tuple[str, str]:
    if count_tokens(text) <= max_tokens:
        return text, "stop"
    return text[: max_tokens * 4], "length"


async def _inject_fault(kind: str, request: web.Request, state: SimulatorState, body: dict) -> web.StreamResponse:
    settings = state.settings
    if kind == "rate_limit":
        headers = {"Retry-After": str(math.ceil(settings.retry_after_ms / 1000)), "retry-after-ms": str(settings.retry_after_ms)}
        return error_response(429, "simulated rate limit", headers)
    if kind == "server_error":
        return error_response(500, "simulated server error")
    if kind == "unavailable":
        return error_response(503, "simulated overload")
    if kind == "hang":
        await asyncio.sleep(settings.hang_s)
        return error_response(504, "simulated hang ended")
    if kind == "truncated_json":
        text = json.dumps(body)
        return web.Response(text=text[: len(text) // 2], content_type="application/json")
    # drop_connection: close the socket without an HTTP response
    if request.transport is not None:
        request.transport.close()
    raise ConnectionResetError("simulated dropped connection")


def _prompts_of(payload: dict, chat: bool) -> list[str]:
    """The request's prompts: chat's last user message, or completions' string or list of strings."""
    if chat:
        messages = payload.get("messages") or []
        users = [m.get("content", "") for m in messages if m.get("role") == "user"]
        return [users[-1] if users else ""]
    prompt = payload.get("prompt", "")
    return [str(p) for p in prompt] if isinstance(prompt, list) and prompt else [str(prompt)]


def _response_body(payload: dict, prompts: list[str], texts: list[str], chat: bool, model: str) -> dict:
    """texts: each prompt's n choices in turn; as OpenAI numbers them, prompt i's are i*n .. i*n+n-1."""
    max_tokens = int(payload.get("max_tokens") or 256)
    choices, completion_tokens = [], 0
    for index, text in enumerate(texts):
        text, finish = _truncate(text, max_tokens)
        completion_tokens += count_tokens(text)
        if chat:
            choices.append({"index": index, "message": {"role": "assistant", "content": text}, "finish_reason": finish})
        else:
            choices.append({"index": index, "text": text, "logprobs": None, "finish_reason": finish})
    prompt_tokens = sum(count_tokens(prompt) for prompt in prompts)
    return {
        "id": f"sim-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion" if chat else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _answer(payload: dict, prompts: list[str], chat: bool, state: SimulatorState) -> dict:
    n = int(payload.get("n") or 1)
    texts = [text for prompt in prompts for text in complete(prompt, n, state.rng, state.settings.wrong_rate, state.key)]
    return _response_body(payload, prompts, texts, chat, payload.get("model") or state.settings.model)


def _authorized(request: web.Request, settings: SimulatorSettings) -> bool:
    return settings.api_key is None or request.headers.get("Authorization") == f"Bearer {settings.api_key}"


def make_handler(chat: bool):
    async def handle(request: web.Request) -> web.StreamResponse:
        state: SimulatorState = request.app[STATE]
        settings = state.settings
        arrived = time.time()
        if not _authorized(request, settings):
            return error_response(401, "invalid api key")
        try:
            payload = await request.json()
        except json.JSONDecodeError:
            return error_response(400, "body is not JSON")
        prompts = _prompts_of(payload, chat)
        n = int(payload.get("n") or 1)
        fault = None
        if state.rng.random() < settings.fault_rate and settings.fault_kinds:
            fault = state.rng.choice(settings.fault_kinds)
        state.record({"t": arrived, "path": request.path, "prompt": prompts[0], "prompts": prompts, "n": n,
                      "temperature": payload.get("temperature"), "fault": fault})
        latency = settings.latency_s + state.rng.uniform(0, settings.latency_jitter_s)
        await asyncio.sleep(latency)
        body = _answer(payload, prompts, chat, state)
        if fault is not None:
            return await _inject_fault(fault, request, state, body)
        return web.json_response(body)

    return handle


async def list_models(request: web.Request) -> web.Response:
    settings = request.app[STATE].settings
    if not _authorized(request, settings):
        return error_response(401, "invalid api key")
    return web.json_response({"object": "list", "data": [{"id": settings.model, "object": "model", "owned_by": "rt-ray"}]})


async def sim_requests(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].log)


async def sim_stats(request: web.Request) -> web.Response:
    log = request.app[STATE].log
    faults = Counter(entry["fault"] for entry in log if entry["fault"])
    online = [entry for entry in log if entry["path"] != "batch"]
    served = [entry for entry in log if not entry["fault"]]
    samples = sum(entry["n"] * len(entry["prompts"]) for entry in served)
    prompts = sum(len(entry["prompts"]) for entry in online)
    batches = request.app[STATE].batches
    return web.json_response({"requests": len(online), "prompts": prompts, "faults": dict(faults), "samples_served": samples,
                              "batches_created": batches.batches_created, "batch_lines": batches.lines_served,
                              "batch_api_429s": batches.throttled})  # fmt: skip


def make_app(settings: SimulatorSettings) -> web.Application:
    app = web.Application(client_max_size=16 * 2**20)
    app[STATE] = SimulatorState(settings)
    app.router.add_post("/v1/completions", make_handler(chat=False))
    app.router.add_post("/v1/chat/completions", make_handler(chat=True))
    app.router.add_get("/v1/models", list_models)
    add_batch_routes(app, lambda body, url: _answer(body, _prompts_of(body, url.endswith("chat/completions")),
                                                    url.endswith("chat/completions"), app[STATE]))  # fmt: skip
    app.router.add_get("/sim/requests", sim_requests)
    app.router.add_get("/sim/stats", sim_stats)
    return app


def serve(settings: SimulatorSettings, host: str = "127.0.0.1", port: int = 8765) -> None:
    web.run_app(make_app(settings), host=host, port=port, print=None, access_log=None, backlog=1024)
